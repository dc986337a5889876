"""A client that serves recorded responses: offline replays and crash recovery cost no tokens.

Every model request is looked up by ``request_key`` (model + messages + parameters), which the
trajectory records for each root turn and each sub-call. Identical requests recorded more than once are
served in the order they were recorded. A request the recording lacks raises ``ReplayMissError`` unless
a live ``fallback`` client is given.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import replace

from .._errors import ReplayMissError
from ._base import Completion, DeltaCallback, Message, ModelClient, request_key


class ReplayClient:
    def __init__(
        self, recorded: Iterable[tuple[str, Completion]], *, fallback: ModelClient | None = None
    ) -> None:
        self._entries: dict[str, deque[Completion]] = {}
        for key, completion in recorded:
            self._entries.setdefault(key, deque()).append(completion)
        self._fallback = fallback
        self._lock = threading.Lock()
        self.misses = 0

    @property
    def endpoint(self) -> str:
        return "replay" if self._fallback is None else f"replay, then {self._fallback.endpoint}"

    def _lookup(self, messages: Sequence[Message], model: str) -> Completion | None:
        key = request_key(model, messages)
        with self._lock:
            queue = self._entries.get(key)
            if queue:
                hit = queue.popleft() if len(queue) > 1 else queue[0]
                return replace(hit, cached=True)
            self.misses += 1
        return None

    def _miss(self, messages: Sequence[Message], model: str) -> ReplayMissError:
        asked = messages[-1]["content"] if messages else ""
        preview = asked if len(asked) <= 160 else asked[:160] + "…"
        return ReplayMissError(
            f"The recording holds no response from {model!r} for this request: {preview!r}",
            fix="The code asked something the recorded session never asked. Configure a model and "
            "replay with --live-fallback to answer it live, or undo the edit",
            endpoint=self.endpoint,
        )

    def complete(
        self, messages: Sequence[Message], *, model: str, on_delta: DeltaCallback | None = None
    ) -> Completion:
        hit = self._lookup(messages, model)
        if hit is not None:
            if on_delta is not None:
                on_delta(hit.text)
            return hit
        if self._fallback is None:
            raise self._miss(messages, model)
        return self._fallback.complete(messages, model=model, on_delta=on_delta)

    async def acomplete(self, messages: Sequence[Message], *, model: str) -> Completion:
        hit = self._lookup(messages, model)
        if hit is not None:
            return hit
        if self._fallback is None:
            raise self._miss(messages, model)
        return await self._fallback.acomplete(messages, model=model)
