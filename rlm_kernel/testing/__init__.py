"""Test and benchmark helpers: a scripted OpenAI-compatible chat-completions server on loopback, a
headless front end that lets nbclient run cells mode without a browser, real kernels driven over
jupyter_client, in-process sessions on scripted clients, and the helpers scripted runs share (the test
suite's ``conftest`` holds only fixtures).

``HeadlessFrontend`` is imported on first use (``from rlm_kernel.testing import HeadlessFrontend``
still works): it brings nbformat and IPython, which take over a second to import and which the
in-process tests and the loopback server need none of.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlm_kernel.testing._helpers import (
    EDITED_STEP,
    ENDPOINT_VARIABLES,
    SECRET,
    child_rlm_sub,
    fence,
    record_edited_session,
    run_cli,
    scripted_session,
    settings,
)
from rlm_kernel.testing._kernels import Kernel, KernelRun, configure, kernel_env
from rlm_kernel.testing._server import ChatRequest, Fault, Reply, ScriptedServer, ToolUse

if TYPE_CHECKING:
    from rlm_kernel.testing._frontend import HeadlessFrontend

__all__ = [
    "EDITED_STEP",
    "ENDPOINT_VARIABLES",
    "SECRET",
    "ChatRequest",
    "Fault",
    "HeadlessFrontend",
    "Kernel",
    "KernelRun",
    "Reply",
    "ScriptedServer",
    "ToolUse",
    "child_rlm_sub",
    "configure",
    "fence",
    "kernel_env",
    "record_edited_session",
    "run_cli",
    "scripted_session",
    "settings",
]


def __getattr__(name: str) -> Any:
    """Import the headless front end on first access (PEP 562), so importing the package stays cheap."""
    if name == "HeadlessFrontend":
        from rlm_kernel.testing._frontend import HeadlessFrontend

        return HeadlessFrontend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
