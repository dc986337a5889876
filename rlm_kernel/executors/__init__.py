"""Where iteration code runs: ``namespace`` (in-process, the default) or ``monty`` (a sandbox)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import SandboxToolWarning
from ._base import Echoing, ExecResult, Executor, Sandboxed
from .namespace import NamespaceExecutor

if TYPE_CHECKING:
    from .._config import RLM

__all__ = [
    "Echoing",
    "ExecResult",
    "Executor",
    "NamespaceExecutor",
    "Sandboxed",
    "admitted_tools",
    "bound_capture",
    "executor_note",
    "make_executor",
    "release_executor",
    "scrub_echo",
]


def make_executor(
    config: RLM,
    namespace: MutableMapping[str, Any] | None = None,
    *,
    echo_stdout: TextIO | None = None,
    echo_stderr: TextIO | None = None,
) -> Executor:
    """The executor ``config.executor`` names.

    ``namespace`` is where the namespace executor runs code (the kernel's ``user_ns``, say); a sandbox
    never shares the host's namespace, so the monty executor does not use it.
    """
    if config.executor == "monty":
        # Imported here: pydantic_monty costs ~0.1 s to import and only sandboxed sessions need it.
        from ._monty_pool import SandboxLimits
        from .monty import MontyExecutor

        limits = SandboxLimits(
            timeout=config.iteration_timeout,
            memory_mb=config.monty_memory_mb,
            max_recursion=config.monty_max_recursion,
            max_host_calls=config.monty_max_host_calls,
        )
        return MontyExecutor(
            limits,
            echo_stdout=echo_stdout,
            echo_stderr=echo_stderr,
            capture_limit=config.max_capture_chars,
        )
    return NamespaceExecutor(
        namespace,
        echo_stdout=echo_stdout,
        echo_stderr=echo_stderr,
        capture_limit=config.max_capture_chars,
    )


def bound_capture(executor: Executor, limit: int) -> None:
    """Keep at most ``limit`` characters of each stream per block (``RLM.max_capture_chars``) in an
    executor a front end made itself (the notebook's): ours all have ``capture_limit``."""
    if isinstance(executor, NamespaceExecutor) or hasattr(executor, "capture_limit"):
        executor.capture_limit = limit


def scrub_echo(executor: Executor, scrub: Callable[[str], str]) -> None:
    """Pass the live echo of ``executor`` (a notebook cell's output) through ``scrub`` before it is
    shown; ours are all ``Echoing``, an executor that is not has no echo of ours to scrub."""
    if isinstance(executor, Echoing):
        executor.echo_scrub = scrub


def admitted_tools(
    executor: Executor, tools: dict[str, Callable[..., Any]]
) -> dict[str, Callable[..., Any]]:
    """The tools ``executor`` may expose; a sandbox drops those not marked ``@sandbox_safe``."""
    if not isinstance(executor, Sandboxed):
        return tools
    kept = {name: fn for name, fn in tools.items() if executor.admits_tool(fn)}
    dropped = [name for name in tools if name not in kept]
    if dropped:
        warnings.warn(
            f"Tool(s) {', '.join(dropped)} are not available in the sandbox (RLM.executor = 'monty'): "
            "a tool runs with the host's full rights, so only tools marked with "
            "@rlm_kernel.sandbox_safe are exposed there",
            SandboxToolWarning,
            stacklevel=3,
        )
    return kept


def executor_note(executor: Executor) -> str:
    """The system-prompt section an executor needs (empty for plain Python)."""
    return executor.prompt_note if isinstance(executor, Sandboxed) else ""


def release_executor(executor: Executor) -> None:
    """Free what a sandboxed executor holds between runs (its worker process)."""
    if isinstance(executor, Sandboxed):
        executor.release()
