"""The model-client protocol and the value types every client returns.

A client turns a list of chat messages into a ``Completion``. The session and the sub-call engine only
ever see this protocol, so the OpenAI SDK client, the scripted client (tests) and the replay client
(recorded sessions) are interchangeable.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypedDict, runtime_checkable

from .. import _rich
from .. import _stdjson as json


class _ToolParts(TypedDict, total=False):
    tool_calls: list[dict[str, Any]]
    tool_call_id: str


class Message(_ToolParts):
    """One chat message: ``{"role": "system" | "user" | "assistant" | "tool", "content": text}``.

    Only a sub-call's tool loop (``_subtools``) writes the other keys, in the chat-completions form: an
    assistant message that asked for tools carries ``tool_calls``, a ``tool`` message answers the call
    ``tool_call_id`` names."""

    role: str
    content: str


@dataclass(frozen=True)
class ToolCall:
    """A tool the model asked for: ``arguments`` is the JSON text exactly as the model wrote it (it may
    not parse; the tool loop answers that as the tool's error)."""

    id: str
    name: str
    arguments: str

    def to_dict(self) -> dict[str, Any]:
        """The chat-completions form (``tool_calls`` of an assistant message, and of records)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        """The call back from the chat-completions form (an answer's, or ``to_dict``'s)."""
        function = data.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):  # some servers send the object itself
            arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
        return cls(str(data.get("id") or ""), str(function.get("name") or ""), arguments)


@dataclass
class Usage:
    """Token and cost accounting for one call, or a sum of calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float | None = None
    calls: int = 0
    # True when any part of this sum was estimated (chars/4) because the endpoint reported nothing.
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens (cached tokens are part of the prompt's)."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = (
            None
            if self.cost is None and other.cost is None
            else (self.cost or 0.0) + (other.cost or 0.0)
        )
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cost=cost,
            calls=self.calls + other.calls,
            estimated=self.estimated or other.estimated,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form recorded in trajectories."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """The usage back from ``to_dict``'s form; missing fields are zero."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class UsageSummary:
    """Usage by model name, with totals; what a session reports and rolls up from its children."""

    by_model: dict[str, Usage] = field(default_factory=dict)

    def add(self, model: str, usage: Usage) -> None:
        """Count ``usage`` under ``model``."""
        self.by_model[model] = self.by_model.get(model, Usage()) + usage

    def merge(self, other: UsageSummary) -> None:
        """Add every model's usage of ``other`` (a child session's, say) to this summary."""
        # A copy first: a live display merges a summary that a call on another thread may add to.
        for model, usage in list(other.by_model.items()):
            self.add(model, usage)

    @property
    def total(self) -> Usage:
        """The usage of all models together."""
        total = Usage()
        for usage in self.by_model.values():
            total = total + usage
        return total

    def __repr__(self) -> str:
        return _rich.render(self, "text/plain") or f"UsageSummary(by_model={self.by_model!r})"

    def _repr_html_(self) -> str | None:
        return _rich.render(self, "text/html")  # ``_display``: a table by model, with the total

    def _repr_markdown_(self) -> str | None:
        return _rich.render(self, "text/markdown")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form recorded in trajectories: ``by_model`` and ``total``."""
        return {
            "by_model": {m: u.to_dict() for m, u in sorted(self.by_model.items())},
            "total": self.total.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageSummary:
        """The summary back from ``to_dict``'s form (``total`` is recomputed)."""
        return cls({m: Usage.from_dict(u) for m, u in data.get("by_model", {}).items()})


@dataclass(frozen=True)
class Completion:
    """One model answer."""

    text: str
    model: str
    usage: Usage
    latency: float
    finish_reason: str | None = None
    # Served from the sub-call cache or a recording: no tokens were spent for it.
    cached: bool = False
    # The tools the model asked for instead of (or besides) answering; only when it was offered tools.
    tool_calls: tuple[ToolCall, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form recorded in trajectories (a ``model_call`` entry's completion)."""
        data = {
            "text": self.text,
            "model": self.model,
            "usage": self.usage.to_dict(),
            "latency": self.latency,
            "finish_reason": self.finish_reason,
            "cached": self.cached,
        }
        if self.tool_calls:  # absent otherwise: the form of every completion made without tools
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Completion:
        """The completion back from ``to_dict``'s form (what replay serves)."""
        return cls(
            text=data["text"],
            model=data["model"],
            usage=Usage.from_dict(data.get("usage", {})),
            latency=float(data.get("latency", 0.0)),
            finish_reason=data.get("finish_reason"),
            cached=bool(data.get("cached", False)),
            tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ()),
        )


DeltaCallback = Callable[[str], None]


@runtime_checkable
class ModelClient(Protocol):
    """What the session needs from a model endpoint."""

    @property
    def endpoint(self) -> str:
        """A human-readable name of where requests go (a URL without credentials, or 'scripted')."""
        ...

    def complete(
        self, messages: Sequence[Message], *, model: str, on_delta: DeltaCallback | None = None
    ) -> Completion:
        """Ask ``model`` for the next message; ``on_delta`` receives the text as it streams.

        A failure raises a ``ModelError`` subclass that says what to do about it.
        """
        ...

    async def acomplete(self, messages: Sequence[Message], *, model: str) -> Completion:
        """``complete`` as a coroutine, without streaming: how sub-calls are made.

        A client that can call tools takes a keyword ``tools`` besides (chat-completions tool schemas,
        ``{"type": "function", "function": {...}}``) and answers with ``Completion.tool_calls``; it is
        passed only when a sub-call has tools (``sub_tools=``), so clients without it keep working for
        everything else (``takes_tools``).
        """
        ...


def takes_tools(client: ModelClient) -> bool:
    """Whether ``client.acomplete`` takes ``tools=`` (see ``ModelClient.acomplete``)."""
    try:
        parameters = inspect.signature(client.acomplete).parameters
    except (TypeError, ValueError):
        return False
    return "tools" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


# When the calls made now must have ended (``time.monotonic()``), whatever their own timeout says.
# A context variable rather than a parameter of ``complete``/``acomplete``: the protocol stays as
# clients outside rlm_kernel implement it, and a task on the sub-call loop keeps its own value.
_DEADLINE: ContextVar[float | None] = ContextVar("rlm_kernel_call_deadline", default=None)


@contextmanager
def call_deadline(at: float | None) -> Iterator[None]:
    """Model calls made inside end by ``time.monotonic()`` reaching ``at`` at the latest (None: only
    their own ``RLM.request_timeout`` bounds them). How the session's ``RLM.wall_timeout`` reaches a
    call in flight; clients that make no network calls (scripted, replay) have nothing to cut."""
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def current_deadline() -> float | None:
    """The ``call_deadline`` in force here, if any."""
    return _DEADLINE.get()


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def request_key(
    model: str, messages: Sequence[Message], params: Mapping[str, Any] | None = None
) -> str:
    """A stable digest of one request: the sub-call cache key and the replay lookup key."""
    payload = _canonical({"model": model, "messages": list(messages), "params": dict(params or {})})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def tool_key(model: str, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]]) -> str:
    """``request_key`` of one turn of a sub-call's tool loop: the tools offered are part of it."""
    return request_key(model, messages, {"tools": list(tools)})


class ConversationKeys:
    """``request_key`` for the root model's requests, hashing only the messages added since the last.

    The root conversation grows by appending, so hashing it whole every turn grows with the session.
    The canonical payload sorts keys, which puts ``"messages"`` first: the digest of the messages seen
    so far is kept and only the new ones and the closing fields are added to a copy of it. Anything
    other than an append (a rewind, a compaction, a replaced system prompt) starts over. The keys are
    exactly those of ``request_key``.
    """

    def __init__(self) -> None:
        self._start()

    def _start(self) -> None:
        self._seen: list[dict[str, Any]] = []  # copies: a message changed in place is noticed
        self._digest = hashlib.sha256(b'{"messages":[')

    def __call__(self, model: str, messages: Sequence[Message]) -> str:
        known = len(self._seen)
        # The history hands back the very same strings each turn, so this compares mostly by identity.
        if known > len(messages) or any(a != b for a, b in zip(self._seen, messages, strict=False)):
            self._start()
            known = 0
        for message in messages[known:]:
            separator = "," if self._seen else ""
            self._digest.update((separator + _canonical(message)).encode("utf-8"))
            self._seen.append(dict(message))
        digest = self._digest.copy()
        digest.update(f'],"model":{_canonical(model)},"params":{{}}}}'.encode())
        return digest.hexdigest()


def estimate_tokens(text: str) -> int:
    """About four characters per token: the usual estimate when an endpoint reports no usage."""
    return max(1, (len(text) + 3) // 4)


def estimated_usage(messages: Sequence[Message], text: str) -> Usage:
    prompt = sum(len(m["content"]) for m in messages)
    return Usage(
        prompt_tokens=max(1, (prompt + 3) // 4),
        completion_tokens=estimate_tokens(text),
        calls=1,
        estimated=True,
    )
