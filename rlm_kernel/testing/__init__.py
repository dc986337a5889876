"""Test and benchmark helpers: a scripted, OpenAI-compatible chat-completions server on loopback."""

from rlm_kernel.testing._server import ChatRequest, Fault, Reply, ScriptedServer

__all__ = ["ChatRequest", "Fault", "Reply", "ScriptedServer"]
