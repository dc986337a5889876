"""Test and benchmark helpers: a scripted OpenAI-compatible chat-completions server on loopback, a
headless front end that lets nbclient run cells mode without a browser, real kernels driven over
jupyter_client, in-process sessions on scripted clients, and the helpers scripted runs share (the test
suite's ``conftest`` holds only fixtures)."""

from rlm_kernel.testing._frontend import HeadlessFrontend
from rlm_kernel.testing._helpers import (
    EDITED_STEP,
    ENDPOINT_VARIABLES,
    SECRET,
    child_rlm_sub,
    fence,
    record_edited_session,
    scripted_session,
    settings,
)
from rlm_kernel.testing._kernels import Kernel, KernelRun, configure, kernel_env
from rlm_kernel.testing._server import ChatRequest, Fault, Reply, ScriptedServer

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
    "child_rlm_sub",
    "configure",
    "fence",
    "kernel_env",
    "record_edited_session",
    "scripted_session",
    "settings",
]
