"""How the monty executor words what happened: limit breaches, error hints, and ``Out:`` values.

Every breach is one line that says what happened, names the setting that controls it and what the
model can do instead; the same text reaches the person through the iteration's record.
"""

from __future__ import annotations

from pydantic_monty import MontyClassProxy, MontyStdTypeProxy

from ._monty_pool import SandboxLimits
from .namespace import _safe_repr

RESTORED = "The sandbox went back to its state before this block."


class SandboxError(Exception):
    """The sandbox could not be started or restored; the message is meant for the model and person."""


_REPR_LIMIT = 10_000


def breach_message(exc: BaseException, limits: SandboxLimits) -> tuple[str, str] | None:
    """``(error_type, error)`` when ``exc`` is a sandbox limit being hit, else None.

    monty raises these uncatchably inside the sandbox, and after a time limit it makes no promise about
    the sandbox's heap (a memory breach on a global can also leave it stuck), so the block is undone.
    """
    text = str(exc)
    if isinstance(exc, TimeoutError) and "limit exceeded" in text:
        return "IterationTimeout", (
            f"IterationTimeout: the code ran longer than {limits.timeout or 0:g} s and was stopped "
            f"(RLM.iteration_timeout). {RESTORED} Work on smaller pieces, or batch sub-calls with "
            "llm_batch."
        )
    if isinstance(exc, MemoryError):
        return "MemoryError", (
            f"MemoryError: the code needed more memory than the sandbox allows ({text}; "
            f"RLM.monty_memory_mb = {limits.memory_mb}). {RESTORED} Work on smaller pieces and "
            "keep fewer copies of P."
        )
    if isinstance(exc, RuntimeError) and "suspension limit" in text:
        return "HostCallLimit", (
            f"HostCallLimit: this sandbox made more than {limits.max_host_calls:,} calls to helpers "
            f"and tools (RLM.monty_max_host_calls). {RESTORED} Batch prompts with llm_batch "
            "instead of calling llm_query in a loop."
        )
    return None


def error_hint(exc: BaseException, limits: SandboxLimits) -> str:
    """A line added under a traceback when the error comes from the sandbox rather than the code."""
    text = str(exc)
    if isinstance(exc, NotImplementedError) and "syntax parser" in text:
        return (
            "\nNothing in this block ran: the sandbox runs a subset of Python. Rewrite the block "
            "without that construct."
        )
    if isinstance(exc, NotImplementedError):
        return "\nThis is not supported in the sandbox; do it another way."
    if isinstance(exc, RecursionError):
        return f"\nThe sandbox's recursion limit is {limits.max_recursion:,} (RLM.monty_max_recursion)."
    return ""


def value_repr(value: object) -> str:
    """``repr`` of a trailing expression's value as it came out of the sandbox."""
    if isinstance(value, MontyClassProxy):
        if value.is_dataclass:
            fields = ", ".join(f"{k}={v!r}" for k, v in value.attributes.items())
            text = f"{value.name}({fields})"
        else:
            text = f"<{value.name} object>"
    elif isinstance(value, MontyStdTypeProxy):
        kind = "built-in function" if value.kind == "function" else "class"
        text = f"<{kind} {value.name}>"
    else:
        return _safe_repr(value, _REPR_LIMIT)
    if len(text) > _REPR_LIMIT:
        text = text[:_REPR_LIMIT] + f"… [{len(text) - _REPR_LIMIT} chars more]"
    return text
