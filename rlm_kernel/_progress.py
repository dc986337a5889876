"""A one-line live progress display for terminals: iteration, tokens, sub-calls in flight, time."""

from __future__ import annotations

import threading
import time
from typing import TextIO

from ._events import (
    Event,
    IterationStarted,
    StateChanged,
    SubcallFinished,
    SubcallStarted,
)
from ._session import Session


class ProgressLine:
    """Redraws ``\\r``-style on ``stream`` on every event and twice a second; ``close()`` clears it."""

    def __init__(self, session: Session, stream: TextIO, *, interval: float = 0.5) -> None:
        self._session = session
        self._stream = stream
        self._lock = threading.Lock()
        self._iteration = 0
        self._in_flight = 0
        self._subcalls = 0
        self._state = "starting"
        self._started = time.monotonic()
        self._stopped = threading.Event()
        self._unsubscribe = session.subscribe(self.on_event)
        self._ticker = threading.Thread(target=self._tick, args=(interval,), daemon=True)
        self._ticker.start()

    def on_event(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, IterationStarted) and event.depth == 0:
                self._iteration = event.iteration
            elif isinstance(event, SubcallStarted):
                self._in_flight += 1
                self._subcalls += 1
            elif isinstance(event, SubcallFinished):
                self._in_flight -= 1
            elif isinstance(event, StateChanged) and event.depth == 0:
                self._state = event.new
        self.draw()

    def render(self) -> str:
        cfg = self._session.config
        tokens = self._session.tokens_used
        with self._lock:
            parts = [
                f"rlm {self._state}",
                f"iteration {self._iteration}/{cfg.max_iterations}",
                f"{_compact(tokens)} tokens",
                f"{self._subcalls} sub-calls",
            ]
            if self._in_flight:
                parts.append(f"{self._in_flight} in flight")
        parts.append(f"{time.monotonic() - self._started:.1f} s")
        return " · ".join(parts)

    def draw(self) -> None:
        if self._stopped.is_set():
            return
        self._stream.write("\r\x1b[K" + self.render())
        self._stream.flush()

    def close(self) -> None:
        self._stopped.set()
        self._unsubscribe()
        self._stream.write("\r\x1b[K")
        self._stream.flush()

    def _tick(self, interval: float) -> None:
        while not self._stopped.wait(interval):
            self.draw()


def _compact(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1_000:
        return f"{n / 1_000:.1f}k"
    return str(n)
