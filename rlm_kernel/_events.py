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
    """Thread-safe fan-out of events to listeners; a listener that raises is reported, not fatal."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.listener_errors: list[BaseException] = []

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
    """What live displays show, counted from events: the root's iteration and state, sub-calls started,
    in flight, and the size of the current wave (for a progress bar during ``llm_batch``)."""

    def __init__(self, iteration: int = 0, state: str = "idle") -> None:
        self._lock = threading.Lock()
        self.iteration = iteration
        self.state = state
        self.subcalls = 0
        self.in_flight = 0
        self.wave = 0

    def update(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, IterationStarted) and event.depth == 0:
                self.iteration = event.iteration
            elif isinstance(event, StateChanged) and event.depth == 0:
                self.state = event.new
            elif isinstance(event, SubcallStarted):
                self.subcalls += 1
                self.in_flight += 1
                self.wave = max(self.wave, self.in_flight)
            elif isinstance(event, SubcallFinished):
                self.in_flight -= 1
                if self.in_flight == 0:
                    self.wave = 0
