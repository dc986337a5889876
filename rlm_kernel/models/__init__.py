"""Model clients behind one protocol: the openai SDK, a scripted client, and a replay client.

``OpenAIClient`` is imported on first use (``from rlm_kernel.models import OpenAIClient`` still works):
the ``openai`` SDK takes most of a second to import, and a replay, a scripted run, ``rlm-kernel
--help`` or a kernel that never builds a live client need none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import (
    Completion,
    ConversationKeys,
    Message,
    ModelClient,
    ToolCall,
    Usage,
    UsageSummary,
    call_deadline,
    request_key,
    takes_tools,
    tool_key,
)
from .replay import ReplayClient
from .scripted import ScriptedClient

if TYPE_CHECKING:
    from .openai import OpenAIClient

__all__ = [
    "Completion",
    "ConversationKeys",
    "Message",
    "ModelClient",
    "OpenAIClient",
    "ReplayClient",
    "ScriptedClient",
    "ToolCall",
    "Usage",
    "UsageSummary",
    "call_deadline",
    "request_key",
    "takes_tools",
    "tool_key",
]


def __getattr__(name: str) -> Any:
    """Import the SDK client on first access (PEP 562), so importing the package stays cheap."""
    if name == "OpenAIClient":
        from .openai import OpenAIClient

        return OpenAIClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
