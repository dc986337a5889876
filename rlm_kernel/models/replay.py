"""Clients that serve a recorded session: offline replays and demos cost no tokens and need no key.

The root model's turns are served in the order they were recorded (a replay re-enacts the session even
if a printed timing differs). Sub-calls are looked up by ``request_key`` (model + messages +
parameters), because the code that makes them runs again for real and may ask them in another order;
identical requests recorded more than once are served in recorded order. A sub-call the recording lacks
raises ``ReplayMissError`` unless a live ``fallback`` client is given. Which answers a recording holds,
in which order, is the records' business (``rlm_kernel._replay.replay_clients``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from ..errors import ReplayMissError
from ._base import (
    Completion,
    DeltaCallback,
    Message,
    ModelClient,
    request_key,
    takes_tools,
    tool_key,
)


class ReplayClient:
    """A model client that answers from a recording: root turns in order (``sequence``), sub-calls by
    request key (``keyed``); what it lacks goes to ``fallback`` or raises ``ReplayMissError``.
    ``speed`` re-enacts the recorded latency, sped up that many times."""

    def __init__(
        self,
        *,
        keyed: Iterable[tuple[str, Completion]] = (),
        sequence: Iterable[Completion] | None = None,
        fallback: ModelClient | None = None,
        speed: float | None = None,
    ) -> None:
        self._speed = speed
        self._entries: dict[str, deque[Completion]] = {}
        for key, completion in keyed:
            self._entries.setdefault(key, deque()).append(completion)
        self._sequence = deque(sequence) if sequence is not None else None
        self._fallback = fallback
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """``replay``, and the fallback's endpoint when there is one."""
        return "replay" if self._fallback is None else f"replay, then {self._fallback.endpoint}"

    def _lookup(
        self,
        messages: Sequence[Message],
        model: str,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> Completion | None:
        with self._lock:
            if self._sequence is not None:
                hit = self._sequence.popleft() if self._sequence else None
            else:
                # A turn of a sub-call's tool loop is keyed with the tools it offered (tool_key).
                key = (
                    request_key(model, messages) if not tools else tool_key(model, messages, tools)
                )
                queue = self._entries.get(key)
                hit = (queue.popleft() if len(queue) > 1 else queue[0]) if queue else None
        if hit is None:
            return None
        if self._speed:
            # Re-enact the recorded pace (sped up ``speed`` times) so a demo feels like the live run.
            time.sleep(hit.latency / self._speed)
        return replace(hit, cached=True)

    def _miss(self, messages: Sequence[Message], model: str) -> ReplayMissError:
        asked = messages[-1]["content"] if messages else ""
        preview = asked if len(asked) <= 160 else asked[:160] + "…"
        what = "more root-model turns than it has" if self._sequence is not None else "this request"
        return ReplayMissError(
            f"The recording holds no response from {model!r} for {what}: {preview!r}",
            fix="The code asked something the recorded session never asked. Configure a model and "
            "replay with a live fallback (`%rlm replay … --live-fallback`, `rlm-kernel replay … "
            "--live-fallback`) to answer it live, or undo the edit",
            endpoint=self.endpoint,
        )

    def complete(
        self, messages: Sequence[Message], *, model: str, on_delta: DeltaCallback | None = None
    ) -> Completion:
        """The recorded answer to this request (streamed to ``on_delta`` in one piece)."""
        hit = self._lookup(messages, model)
        if hit is not None:
            if on_delta is not None:
                on_delta(hit.text)
            return hit
        if self._fallback is None:
            raise self._miss(messages, model)
        return self._fallback.complete(messages, model=model, on_delta=on_delta)

    async def acomplete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> Completion:
        """``complete`` for the sub-call engine's event loop; a tool loop's turn is served with the
        tool calls it recorded, so the tools run again for real, offline."""
        hit = self._lookup(messages, model, tools)
        if hit is not None:
            return hit
        if self._fallback is None:
            raise self._miss(messages, model)
        if tools:
            if not takes_tools(self._fallback):
                raise self._miss(messages, model)
            return await self._fallback.acomplete(messages, model=model, tools=tools)  # type: ignore[call-arg]
        return await self._fallback.acomplete(messages, model=model)
