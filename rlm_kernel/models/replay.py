"""Clients that serve a recorded session: offline replays and demos cost no tokens and need no key.

The root model's turns are served in the order they were recorded (a replay re-enacts the session even
if a printed timing differs). Sub-calls are looked up by ``request_key`` (model + messages +
parameters), because the code that makes them runs again for real and may ask them in another order;
identical requests recorded more than once are served in recorded order. A sub-call the recording lacks
raises ``ReplayMissError`` unless a live ``fallback`` client is given.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any, Protocol

from ..errors import ReplayMissError
from ._base import Completion, DeltaCallback, Message, ModelClient, Usage, request_key


class Recording(Protocol):
    """What a replay reads of a recorded session: its records (``rlm_kernel.Trajectory`` is one).

    The clients sit below the records layer, so they take the records, not the trajectory type."""

    @property
    def records(self) -> list[dict[str, Any]]:
        """The session's records as written, rewinds included (a replay drops what they undo)."""
        ...


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

    def _lookup(self, messages: Sequence[Message], model: str) -> Completion | None:
        with self._lock:
            if self._sequence is not None:
                hit = self._sequence.popleft() if self._sequence else None
            else:
                queue = self._entries.get(request_key(model, messages))
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

    async def acomplete(self, messages: Sequence[Message], *, model: str) -> Completion:
        """``complete`` for the sub-call engine's event loop."""
        hit = self._lookup(messages, model)
        if hit is not None:
            return hit
        if self._fallback is None:
            raise self._miss(messages, model)
        return await self._fallback.acomplete(messages, model=model)


def replay_clients(
    recording: Recording, *, fallback: ModelClient | None = None, speed: float | None = None
) -> tuple[ReplayClient, ReplayClient]:
    """(root client, sub-call client) serving everything ``recording`` recorded."""
    turns: list[Completion] = []
    calls: list[tuple[str, Completion]] = []
    collect_answers(recording.records, turns, calls)
    return (
        ReplayClient(sequence=turns, fallback=fallback, speed=speed),
        ReplayClient(keyed=calls, fallback=fallback, speed=speed),
    )


def collect_answers(
    records: list[dict[str, Any]], turns: list[Completion], calls: list[tuple[str, Completion]]
) -> None:
    """Append the recorded root turns of ``records`` to ``turns``, in the order they were asked (a
    child's turns come inside its parent's iteration), and their sub-call answers to ``calls`` by
    request key. Rewound iterations are left out."""
    for record in _standing(records):
        if record["type"] == "compaction":
            turns.append(recorded_completion(record["summary"], record["model_call"]))
        elif record["type"] == "final" and record.get("forced"):
            forced = record["forced"]
            turns.append(recorded_completion(forced["response"], forced["model_call"]))
        elif record["type"] == "iteration":
            if record["model_call"]["request_key"] is not None:
                turns.append(recorded_completion(record["response"], record["model_call"]))
            for call in record.get("subcalls", []):
                if call.get("child"):
                    collect_answers(call["child"]["records"], turns, calls)
                elif call.get("request_key") and call.get("error") is None:
                    calls.append((call["request_key"], recorded_completion(call["response"], call)))


def _standing(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Records with rewound iterations dropped: what a replay should re-enact."""
    kept: list[dict[str, Any]] = []
    for record in records:
        if record["type"] == "rewind":
            kept = [
                r
                for r in kept
                if r["type"] != "iteration" or r["iteration"] < record["to_iteration"]
            ]
        else:
            kept.append(record)
    return iter(kept)


def recorded_completion(text: str, call: dict[str, Any]) -> Completion:
    """The completion a recorded model call (its ``model_call`` entry, or a sub-call) answered."""
    return Completion(
        text=text,
        model=call["model"],
        usage=Usage.from_dict(call.get("usage", {})),
        latency=float(call.get("latency", 0.0)),
    )
