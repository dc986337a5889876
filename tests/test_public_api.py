"""The public API is deliberate: one home for every exception and warning, and a docstring on every
public name.

``rlm_kernel.errors`` holds every exception and warning the package raises or warns: the classes are
found by walking every module of the package, so a new one defined elsewhere fails here. Every name
the public packages export, and every public method and property of the classes among them, has a
docstring of its own (ruff's D1 rules check the public modules; this also covers the classes that
live in private modules, such as ``Session``).
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

import rlm_kernel
import rlm_kernel.errors as errors

# Exceptions that never leave the package, with where they stop. Everything else rlm_kernel defines
# is raised at or warned to a person, and belongs in rlm_kernel.errors. (Names with a leading
# underscore are private and skipped.)
INTERNAL = {
    "rlm_kernel.models._http_clients.LocalRefusal": (
        "an openai.APIConnectionError raised inside the HTTP client so the SDK does not retry; "
        "OpenAIClient turns it into a ModelConnectionError"
    ),
    "rlm_kernel.models._http_clients.WallTimeoutCut": (
        "an openai.APITimeoutError raised inside the HTTP client when wall_timeout runs out, so the "
        "SDK does not retry; OpenAIClient turns it into a ModelConnectionError naming the setting"
    ),
    "rlm_kernel.executors._monty_errors.SandboxError": (
        "MontyExecutor.run turns it into the block's error (error_type 'SandboxError')"
    ),
    "rlm_kernel._ranges.SettingValueError": (
        "a ConfigError carried through traitlets (which rolls back only for a TraitError); RLM "
        "raises the ConfigError it holds"
    ),
    "rlm_kernel.testing._script.ScriptError": (
        "the scripted server answers it as an HTTP error response"
    ),
}

# The packages whose ``__all__`` is the public API.
PUBLIC_PACKAGES = (
    "rlm_kernel",
    "rlm_kernel.errors",
    "rlm_kernel.events",
    "rlm_kernel.executors",
    "rlm_kernel.exporters",
    "rlm_kernel.models",
    "rlm_kernel.testing",
)


def _modules() -> Iterator[ModuleType]:
    yield rlm_kernel
    for info in pkgutil.walk_packages(rlm_kernel.__path__, "rlm_kernel."):
        yield importlib.import_module(info.name)


def _raised_classes() -> dict[str, type[BaseException | Warning]]:
    """Every exception and warning class rlm_kernel defines, by its qualified name."""
    found: dict[str, type[BaseException | Warning]] = {}
    for module in _modules():
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException | Warning)
                and obj.__module__ == module.__name__
                and obj.__module__.startswith("rlm_kernel")
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


RAISED = _raised_classes()
PUBLIC_RAISED = {
    name: cls
    for name, cls in RAISED.items()
    if not cls.__name__.startswith("_") and name not in INTERNAL
}


def _own_doc(obj: Any) -> str | None:
    """``obj``'s own docstring: not inherited, nor the signature dataclasses write in its place."""
    if isinstance(obj, property):
        obj = obj.fget
    obj = getattr(obj, "__func__", obj)  # classmethod, staticmethod
    if inspect.isclass(obj):
        doc = vars(obj).get("__doc__")
        if (
            dataclasses.is_dataclass(obj)
            and isinstance(doc, str)
            and doc.startswith(obj.__name__ + "(")
        ):
            return None
    else:
        doc = getattr(obj, "__doc__", None)
    return doc.strip() if isinstance(doc, str) and doc.strip() else None


def _public_names() -> dict[str, Any]:
    """Every class and function exported by a public package, and the public methods and
    properties each exported class defines itself, by ``package.Name[.member]``."""
    found: dict[str, Any] = {}
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if name.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if obj.__name__ != name:
                continue  # an alias: checked under its own name
            found[f"{package}.{name}"] = obj
            if not inspect.isclass(obj) or issubclass(obj, enum.Enum):
                continue
            for attr, value in vars(obj).items():
                member = value.fget if isinstance(value, property) else value
                member = getattr(member, "__func__", member)
                if not attr.startswith("_") and inspect.isfunction(member):
                    found[f"{package}.{name}.{attr}"] = value
    return found


PUBLIC_NAMES = _public_names()


@pytest.mark.parametrize("name", sorted(PUBLIC_RAISED))
def test_every_exception_and_warning_is_in_rlm_kernel_errors(name: str) -> None:
    cls = PUBLIC_RAISED[name]
    assert getattr(errors, cls.__name__, None) is cls, (
        f"{name} is raised or warned but not importable from rlm_kernel.errors: define it there"
    )
    assert cls.__name__ in errors.__all__


def test_rlm_kernel_errors_exports_its_classes_and_only_them() -> None:
    defined = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and obj.__module__ == errors.__name__ and not name.startswith("_")
    }
    assert sorted(errors.__all__) == sorted(defined)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), BaseException | Warning), name


def test_the_hierarchy() -> None:
    """Catching RLMError catches every error, ModelError every endpoint failure, RLMWarning (a
    UserWarning) filters every warning; IterationTimeout gets past ``except Exception``."""
    model_errors = [n for n in errors.__all__ if n.startswith("Model") and n.endswith("Error")]
    assert len(model_errors) == 7
    for name in errors.__all__:
        cls = getattr(errors, name)
        if name == "IterationTimeout":
            assert not issubclass(cls, Exception)
        elif name.endswith("Warning"):
            assert issubclass(cls, errors.RLMWarning)
            assert issubclass(cls, UserWarning)
        else:
            assert issubclass(cls, errors.RLMError)
        if name in model_errors:
            assert issubclass(cls, errors.ModelError)


@pytest.mark.parametrize(
    "name", sorted(n for n, c in RAISED.items() if not c.__name__.startswith("_"))
)
def test_every_exception_and_warning_has_a_docstring(name: str) -> None:
    assert _own_doc(RAISED[name]), f"{name} has no docstring"


@pytest.mark.parametrize("name", sorted(PUBLIC_NAMES))
def test_every_public_name_has_a_docstring(name: str) -> None:
    assert _own_doc(PUBLIC_NAMES[name]), f"{name} has no docstring"


def test_one_name_for_the_settings() -> None:
    assert not hasattr(rlm_kernel, "RLMConfig")
    assert "RLMConfig" not in rlm_kernel.__all__


def test_the_package_re_exports_the_common_errors_from_rlm_kernel_errors() -> None:
    exported = [n for n in rlm_kernel.__all__ if n.endswith("Error")]
    assert "RLMError" in exported
    for name in exported:
        assert getattr(rlm_kernel, name) is getattr(errors, name)


def test_the_mcp_server_spec_is_public_and_costs_no_mcp_import() -> None:
    """``rlm_kernel.MCPServer`` is the one public type for MCP servers as tools (``tools=``,
    ``sub_tools=``); the mcp SDK is imported only when a session starts a server."""
    assert "MCPServer" in rlm_kernel.__all__
    assert "MCPServerError" in rlm_kernel.__all__
    spec = rlm_kernel.MCPServer(command=["python", "server.py"])
    assert spec.label == "python server.py"
