"""The names an RLM's code can use, bound into its namespace and kept there.

Small models overwrite helpers (``def FINAL(x): return x``) or rebind ``P``; after every block the
originals are put back and the model is told, so the next step still works.

Besides our own names, the spellings other runtimes' models were trained or prompted on are bound
too (docs/protocol.md): ``context`` is ``P`` (the reference implementation's name),
``llm_query_batched`` is ``llm_batch``, ``rlm_query_batched`` runs several child RLMs, and ``SUBMIT``
is DSPy's way to submit.

Nothing bound into the namespace holds the namespace or the session strongly (``weakly``,
``_NamespaceView``): the namespace is then in no reference cycle of ours, so a finished session and
what its code made (a large allocation before a ``MemoryError``, say) are freed as soon as the last
reference to the session goes, without waiting for the cycle collector.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._final import FinalSlot, make_final, make_final_var, make_submit, new_answer
from ._prompts import ToolSpec
from .errors import ConfigError

if TYPE_CHECKING:
    from ._subcalls import SubcallEngine

RESERVED = (
    "P",
    "context",
    "llm_query",
    "llm_batch",
    "llm_query_batched",
    "rlm_query",
    "rlm_query_batched",
    "FINAL",
    "FINAL_VAR",
    "SUBMIT",
    "answer",
    "SHOW_VARS",
)

T = TypeVar("T")


def weakly(method: Callable[..., T]) -> Callable[..., T]:
    """``method`` (a bound method) without a strong reference to its object: what the namespace or
    the sub-call engine holds must not keep a session alive in a cycle. Calling it after its
    object is gone is an error that says so."""
    ref = weakref.WeakMethod(method)
    name = method.__name__  # the closure must not hold the method itself

    def call(*args: Any, **kwargs: Any) -> T:
        bound = ref()
        if bound is None:
            raise ReferenceError(f"{name}: the RLM session it belonged to is gone; start a new one")
        return bound(*args, **kwargs)

    # Not functools.wraps: its __wrapped__ would be the bound method, a strong reference.
    call.__name__, call.__qualname__, call.__doc__ = (
        method.__name__,
        method.__qualname__,
        method.__doc__,
    )
    call.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return call


class _NamespaceView(MutableMapping[str, Any]):
    """The namespace as ``Helpers`` holds it, through a weak reference (for ``FINAL_VAR``, which
    lives in the namespace it reads); empty once the helpers are gone."""

    def __init__(self, helpers: Helpers) -> None:
        self._helpers = weakref.ref(helpers)

    def _target(self) -> MutableMapping[str, Any]:
        helpers = self._helpers()
        found = helpers._namespace if helpers is not None else None
        return found if found is not None else {}

    def __getitem__(self, name: str) -> Any:
        return self._target()[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self._target()[name] = value

    def __delitem__(self, name: str) -> None:
        del self._target()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._target())

    def __len__(self) -> int:
        return len(self._target())

    def __contains__(self, name: object) -> bool:
        return name in self._target()


# IPython's own names in a kernel's user_ns: never listed by SHOW_VARS.
_HIDDEN = frozenset({"In", "Out", "exit", "quit", "get_ipython", "__builtins__", "__builtin__"})


def tool_spec(name: str, fn: Callable[..., Any]) -> ToolSpec:
    try:
        signature = str(inspect.signature(fn, eval_str=True))
    except Exception:  # unresolvable string annotations: show them as written
        try:
            signature = str(inspect.signature(fn))
        except (TypeError, ValueError):
            signature = "(...)"
    doc = inspect.getdoc(fn) or ""
    return ToolSpec(name=name, signature=signature, doc=" ".join(doc.split("\n\n")[0].split()))


def normalize_tools(
    tools: Mapping[str, Callable[..., Any]] | list[Callable[..., Any]] | None,
) -> dict[str, Callable[..., Any]]:
    if tools is None:
        return {}
    named = dict(tools) if isinstance(tools, Mapping) else {fn.__name__: fn for fn in tools}
    for name, fn in named.items():
        if name in RESERVED:
            raise ConfigError(
                f"A tool cannot be called {name!r}: that name is one of the RLM helpers",
                fix=f"Rename the tool (helpers: {', '.join(RESERVED)})",
            )
        if not callable(fn):
            raise ConfigError(
                f"Tool {name!r} is a {type(fn).__name__}, not a function",
                fix="Pass functions: tools=[search] or tools={'search': search}",
            )
    return named


class Helpers:
    def __init__(
        self,
        context: object,
        engine: SubcallEngine,
        slot: FinalSlot,
        tools: Mapping[str, Callable[..., Any]],
    ) -> None:
        self._slot = slot
        self._tools = dict(tools)
        self._initial: frozenset[str] = frozenset()
        self._namespace: MutableMapping[str, Any] | None = None
        self._bound: dict[str, Any] = {
            "P": context,
            "context": context,
            "llm_query": engine.llm_query,
            "llm_batch": engine.llm_batch,
            "llm_query_batched": engine.llm_batch,
            "rlm_query": engine.rlm_query,
            "rlm_query_batched": engine.rlm_query_batched,
            "FINAL": make_final(slot),
            "SUBMIT": make_submit(slot),
            "SHOW_VARS": weakly(self.show_vars),
            **self._tools,
        }

    @property
    def specs(self) -> list[ToolSpec]:
        return [tool_spec(name, fn) for name, fn in self._tools.items()]

    def bind(self, namespace: MutableMapping[str, Any]) -> list[str]:
        """Put the helpers in ``namespace``; returns the names that held other values before."""
        self._namespace = namespace
        self._bound["FINAL_VAR"] = make_final_var(self._slot, _NamespaceView(self))
        clobbered = [
            name
            for name, value in self._bound.items()
            if name in namespace and namespace[name] is not value
        ]
        if "answer" in namespace and not _is_answer(namespace["answer"]):
            clobbered.append("answer")
        namespace.update(self._bound)
        namespace["answer"] = new_answer()
        self._initial = frozenset(namespace)
        return clobbered

    def restore(self, namespace: MutableMapping[str, Any]) -> list[str]:
        """Reinstate helpers the code replaced; returns their names."""
        replaced = [name for name, value in self._bound.items() if namespace.get(name) is not value]
        for name in replaced:
            namespace[name] = self._bound[name]
        if not isinstance(namespace.get("answer"), dict):
            namespace["answer"] = new_answer()
            replaced.append("answer")
        return replaced

    def reset_answer(self, namespace: MutableMapping[str, Any]) -> None:
        namespace["answer"] = new_answer()

    def show_vars(self) -> str:
        """List the variables made during this session, with their types."""
        ns = self._namespace or {}
        names = [
            n for n in ns if n not in self._initial and not n.startswith("_") and n not in _HIDDEN
        ]
        if not names:
            text = "No variables yet."
        else:
            text = "Variables: " + ", ".join(f"{n} ({type(ns[n]).__name__})" for n in sorted(names))
        print(text)
        return text


def _is_answer(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"content", "ready"}
