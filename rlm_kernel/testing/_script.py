"""What a ``ScriptedServer`` answers: the requests it records, the replies and faults a test scripts,
and how a script is read (a list through a shared cursor, or a callable per request)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .. import _stdjson as json

_FAULT_KINDS = frozenset(
    {"status", "timeout", "malformed", "empty_choices", "disconnect", "trickle", "cut"}
)
# What a client that gave up on a timeout fault would have received; answering this instead of
# consulting the script keeps the script's order independent of when the late answer goes out.
LATE_REPLY = "scripted server: late answer after a timeout fault"
# What a trickle fault answers, and what a cut-off stream would have said in full (both leave the
# script alone, as a timeout fault does).
TRICKLED_REPLY = "scripted server: an answer sent one byte at a time"
CUT_REPLY = "scripted server: an answer whose stream is cut off before it finishes. " * 3


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(str(p.get("text", "")) for p in parts)
    return ""  # None, e.g. an assistant message that only carries tool calls


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion request as the server received it."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    params: dict[str, Any]
    headers: dict[str, str]

    @property
    def prompt(self) -> str:
        """Text of the last user message, or "" when there is none."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return _text_of(message.get("content"))
        return ""

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tool schemas the request offered (``tools``), or [] when it offered none."""
        tools = self.params.get("tools")
        return list(tools) if isinstance(tools, list) else []

    @property
    def tool_names(self) -> list[str]:
        """The names of the offered tools, in order."""
        return [str((t.get("function") or {}).get("name")) for t in self.tools]

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """The ``tool`` messages the request carries (each answers a call by ``tool_call_id``)."""
        return [m for m in self.messages if m.get("role") == "tool"]

    @property
    def prompt_chars(self) -> int:
        """Characters of text over all the request's messages."""
        return sum(len(_text_of(m.get("content"))) for m in self.messages)


@dataclass(frozen=True)
class ToolUse:
    """A tool call a ``Reply`` makes: ``arguments`` as an object (sent as its JSON text) or as the raw
    text itself (to send arguments that do not parse); ``id`` defaults to ``call_<n>``, numbered per
    reply."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def to_dict(self, index: int) -> dict[str, Any]:
        """The chat-completions form of the call, the ``index``-th of its reply."""
        arguments = self.arguments
        text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
        return {
            "id": self.id or f"call_{index + 1}",
            "type": "function",
            "function": {"name": self.name, "arguments": text},
        }


@dataclass(frozen=True)
class Reply:
    """A successful answer; token counts left as None are estimated at four characters a token.

    ``tool_calls`` make it a tool-calling answer (finish reason ``tool_calls`` unless another is given;
    ``text`` is then its content, usually empty)."""

    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    cost: float | None = None
    finish_reason: str = "stop"
    tool_calls: tuple[ToolUse, ...] = ()

    def __post_init__(self) -> None:
        if self.tool_calls:
            object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
            if self.finish_reason == "stop":
                object.__setattr__(self, "finish_reason", "tool_calls")

    def calls(self) -> list[dict[str, Any]]:
        """The chat-completions ``tool_calls`` of the answer."""
        return [call.to_dict(i) for i, call in enumerate(self.tool_calls)]


@dataclass(frozen=True)
class Timing:
    """When the server had a request in full and when its answer was written (``time.perf_counter()``).

    ``answered - received`` is the latency the server actually applied: the configured ``latency``
    plus however late the timer fired and the write took.
    """

    model: str
    received: float
    answered: float
    latency: float  # configured (including a timeout fault's delay)

    @property
    def applied(self) -> float:
        return self.answered - self.received


@dataclass(frozen=True)
class Fault:
    """Something going wrong on the server side, answered instead of a reply."""

    kind: str
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0  # a timeout's lateness; a trickle's wait between two bytes
    after: int = 0  # a cut stream's pieces of text before the cut
    abrupt: bool = False  # a cut stream's connection closes mid-message (no last HTTP chunk)

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}, not in {sorted(_FAULT_KINDS)}")

    @classmethod
    def status_code(cls, code: int, retry_after: float | None = None) -> Fault:
        """An HTTP error ``code`` with an OpenAI-style error body, and ``Retry-After`` when given."""
        return cls("status", status=code, retry_after=retry_after)

    @classmethod
    def timeout(cls, delay: float) -> Fault:
        """The answer comes ``delay`` seconds late: longer than ``RLM.request_timeout`` is a timeout."""
        return cls("timeout", delay=delay)

    @classmethod
    def malformed(cls) -> Fault:
        """A 200 answer whose JSON (or stream event) breaks off halfway."""
        return cls("malformed")

    @classmethod
    def empty_choices(cls) -> Fault:
        """A well-formed completion with an empty ``choices`` list."""
        return cls("empty_choices")

    @classmethod
    def disconnect(cls) -> Fault:
        """The connection closed without a byte of answer."""
        return cls("disconnect")

    @classmethod
    def trickle(cls, interval: float = 1.0) -> Fault:
        """A 200 answer (``TRICKLED_REPLY``, streamed or not, as asked) whose head comes at once and
        whose body comes one byte every ``interval`` seconds: never silent for long, never done."""
        return cls("trickle", delay=interval)

    @classmethod
    def cut(cls, after: int = 2, *, abrupt: bool = False) -> Fault:
        """A stream of ``CUT_REPLY`` cut off after ``after`` pieces of text: no finish reason, no
        ``[DONE]``, then the connection closed, after the last HTTP chunk (the message ends cleanly)
        or, ``abrupt``, without it. A non-streamed answer is cut halfway through its body."""
        return cls("cut", after=after, abrupt=abrupt)


Answer: TypeAlias = str | Reply | Fault
Responder: TypeAlias = Callable[[ChatRequest], Answer]
Script: TypeAlias = Responder | Sequence[Answer] | Mapping[str, Responder | Sequence[Answer]]


@dataclass
class Injected:
    fault: Fault
    times: int
    model: str | None  # None matches every model


class ScriptError(Exception):
    """A request the script cannot answer (run out, unknown model): sent back as an HTTP error with
    this ``status``, ``message`` and ``code``."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class Source:
    """One model's script: a callable, or a list read through a cursor shared by all threads."""

    def __init__(self, script: Responder | Sequence[Answer]) -> None:
        if isinstance(script, str | bytes) or not (
            callable(script) or isinstance(script, Sequence)
        ):
            raise TypeError(f"a script must be a callable or a list of answers, not {script!r}")
        self._responder = script if callable(script) else None
        self._items: tuple[Answer, ...] = () if callable(script) else tuple(script)
        self._cursor = 0
        self._lock = threading.Lock()

    def next(self, request: ChatRequest) -> Answer:
        if self._responder is not None:
            return self._responder(request)
        with self._lock:
            self._cursor += 1
            if self._cursor <= len(self._items):
                return self._items[self._cursor - 1]
        what = f"the script for model '{request.model}' ran out after {len(self._items)} responses"
        raise ScriptError(500, f"scripted server: {what}", "script_exhausted")


def usage_of(request: ChatRequest, reply: Reply) -> dict[str, Any]:
    prompt = reply.prompt_tokens
    prompt = max(1, math.ceil(request.prompt_chars / 4)) if prompt is None else prompt
    completion = reply.completion_tokens
    completion = max(1, math.ceil(len(reply.text) / 4)) if completion is None else completion
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
    }
    if reply.cost is not None:
        usage["cost"] = reply.cost  # OpenRouter reports the price of the call here
    return usage


def error_body(message: str, status: int, code: str | None) -> bytes:
    kind = {401: "authentication_error", 429: "rate_limit_error"}.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()
