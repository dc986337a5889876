"""Declaring a user tool safe to call from sandboxed code (``RLM.executor = 'monty'``).

A tool is host code: called from the sandbox it runs with the host's full rights (files, network,
environment). So the sandbox exposes only the tools a person marked with ``@sandbox_safe``; the others
are left out of the sandbox and out of the model's prompt, with a warning that names them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

_MARK = "__rlm_sandbox_safe__"

F = TypeVar("F", bound=Callable[..., Any])


def sandbox_safe(fn: F) -> F:
    """Mark ``fn`` as safe to call from sandboxed iteration code; returns ``fn`` unchanged.

    Use it as a decorator on functions whose effects you accept from model-written code::

        @rlm_kernel.sandbox_safe
        def search(query: str, k: int = 3) -> list[str]: ...
    """
    try:
        setattr(fn, _MARK, True)
    except (AttributeError, TypeError) as exc:  # builtins and bound methods take no attributes
        raise TypeError(
            f"{fn!r} cannot be marked sandbox-safe (it takes no attributes); wrap it in a def and "
            "mark that function instead"
        ) from exc
    return fn


def is_sandbox_safe(fn: object) -> bool:
    return getattr(fn, _MARK, False) is True
