"""A one-line live progress display for terminals: iteration, tokens, sub-calls in flight, time."""

from __future__ import annotations

import threading
import time
from typing import TextIO, cast

from ._events import (
    Event,
    Guarded,
    LiveCounts,
)
from ._guards import guard_line
from ._schema import GuardRecord
from ._session import Session


class ProgressLine:
    """Redraws ``\\r``-style on ``stream`` on every event and twice a second; ``close()`` clears it."""

    def __init__(self, session: Session, stream: TextIO, *, interval: float = 0.5) -> None:
        self._session = session
        self._stream = stream
        self._counts = LiveCounts(state="starting")
        self._started = time.monotonic()
        self._stopped = threading.Event()
        self._unsubscribe = session.subscribe(self.on_event)
        self._ticker = threading.Thread(target=self._tick, args=(interval,), daemon=True)
        self._ticker.start()

    def on_event(self, event: Event) -> None:
        self._counts.update(event)
        if isinstance(event, Guarded) and event.depth == 0 and not self._stopped.is_set():
            # A line of its own that stays above the progress line: a person should see it.
            self._stream.write("\r\x1b[K" + guard_line(cast(GuardRecord, event.record)) + "\n")
        self.draw()

    def render(self) -> str:
        counts = self._counts
        parts = [
            f"rlm {counts.state}",
            f"iteration {counts.iteration}/{self._session.config.max_iterations}",
            f"{_compact(self._session.tokens_used)} tokens",
            f"{counts.subcalls} sub-calls",
        ]
        if counts.in_flight:
            parts.append(f"{counts.in_flight} in flight")
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
