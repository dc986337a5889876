"""Test and benchmark helpers: a scripted OpenAI-compatible chat-completions server on loopback, and
a headless front end that lets nbclient run cells mode without a browser."""

from rlm_kernel.testing._frontend import HeadlessFrontend
from rlm_kernel.testing._server import ChatRequest, Fault, Reply, ScriptedServer

__all__ = ["ChatRequest", "Fault", "HeadlessFrontend", "Reply", "ScriptedServer"]
