"""Model clients behind one protocol: the openai SDK, a scripted client, and a replay client."""

from ._base import (
    Completion,
    ConversationKeys,
    Message,
    ModelClient,
    Usage,
    UsageSummary,
    request_key,
)
from .openai import OpenAIClient
from .replay import ReplayClient
from .scripted import ScriptedClient

__all__ = [
    "Completion",
    "ConversationKeys",
    "Message",
    "ModelClient",
    "OpenAIClient",
    "ReplayClient",
    "ScriptedClient",
    "Usage",
    "UsageSummary",
    "request_key",
]
