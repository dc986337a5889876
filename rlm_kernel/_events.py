"""Events a session emits; front ends (panels, progress line, cells driver) are built on these alone.

Events from child RLMs are delivered to the root's listeners too: ``session_id``, ``depth`` and
``parent_call`` say where in the tree they happened, so a front end can nest them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

StateName = Literal["idle", "running", "paused", "done", "failed"]


@dataclass(frozen=True)
class Event:
    """Something that happened in a session (or in one of its child RLMs, at ``depth`` > 0)."""

    session_id: str
    depth: int


@dataclass(frozen=True)
class StateChanged(Event):
    """The session went from state ``old`` to ``new`` (``idle``, ``running``, ``paused``, ``done``,
    ``failed``), and why."""

    old: StateName
    new: StateName
    reason: str = ""


@dataclass(frozen=True)
class IterationStarted(Event):
    """The root model is asked for step ``iteration``."""

    iteration: int


@dataclass(frozen=True)
class ResponseDelta(Event):
    """A piece of the root model's response while it streams (RLM.stream)."""

    iteration: int
    text: str


@dataclass(frozen=True)
class CodeReady(Event):
    """The model's reply for step ``iteration`` is in, with the code blocks it holds (not run yet)."""

    iteration: int
    response: str
    blocks: tuple[str, ...]


@dataclass(frozen=True)
class IterationFinished(Event):
    """Step ``iteration`` ran; ``record`` is its iteration record (docs/formats.md)."""

    iteration: int
    record: dict[str, Any]


@dataclass(frozen=True)
class Guarded(Event):
    """A guard stepped in at ``iteration``; ``record`` is its ``guard`` record (``_guards``)."""

    iteration: int
    record: dict[str, Any]


@dataclass(frozen=True)
class SubcallStarted(Event):
    """A sub-call (``llm_query``, an ``llm_batch`` item, ``rlm_query``) was sent."""

    call_id: str
    kind: str
    model: str
    prompt: str
    batch_size: int


@dataclass(frozen=True)
class SubcallFinished(Event):
    """A sub-call answered or failed; ``record`` is its sub-call record."""

    call_id: str
    record: dict[str, Any]


@dataclass(frozen=True)
class Finished(Event):
    """The session finished its question: the answer (None without one), why, and a message."""

    answer: str | None
    reason: str
    message: str


Listener = Callable[[Event], None]


class Emitter:
    """Thread-safe fan-out of events to listeners; a listener that raises is reported, not fatal.
    ``counts`` counts every event emitted, for the tree's live snapshot."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.listener_errors: list[BaseException] = []
        # Counted whether or not anyone listens (a listener would turn streaming on: ``active``).
        self.counts = LiveCounts()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    @property
    def active(self) -> bool:
        return bool(self._listeners)

    def emit(self, event: Event) -> None:
        self.counts.update(event)
        if not self._listeners:
            return
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception as exc:  # a broken display must never break the session
                self.listener_errors.append(exc)


class LiveCounts:
    """What only the events tell, for live displays (``_snapshot``): sub-calls started, in flight
    (started and not answered, waiting for a concurrency slot included) and the current wave, at all
    depths; the root step last started and whether it is under way. Thread-safe: events come from
    the session's thread and from the sub-call loop's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.subcalls = 0
        self.in_flight = 0
        self.wave = 0
        self.step = 0
        self.underway = False

    def update(self, event: Event) -> None:
        """Count one event."""
        with self._lock:
            if isinstance(event, SubcallStarted):
                self.subcalls += 1
                self.in_flight += 1
                self.wave = max(self.wave, self.in_flight)
            elif isinstance(event, SubcallFinished):
                self.in_flight = max(self.in_flight - 1, 0)
                if self.in_flight == 0:
                    self.wave = 0
            elif event.depth > 0:
                return
            elif isinstance(event, IterationStarted):
                self.step, self.underway = event.iteration, True
            elif isinstance(event, IterationFinished | Finished) or (
                isinstance(event, StateChanged) and event.new != "running"
            ):
                self.underway = False

    def read(self) -> tuple[int, int, int, int, bool]:
        """``(subcalls, in_flight, wave, step, underway)``, read together."""
        with self._lock:
            return self.subcalls, self.in_flight, self.wave, self.step, self.underway
