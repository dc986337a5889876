"""A session's timeline kept up to date while it runs: redrawn from the session's records so far, with
the drawing a finished session gets (``rlm_kernel.timeline``), so what a person watched live is what
the saved file shows afterwards; only the step in progress, which has no record yet, is one open bar.

Redraws follow the session's events, throttled (``_snapshot.Throttle``, with a trailing draw, so the
state a burst of events ends in is drawn), and happen at once when the session stops, pauses or ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ._events import (
    Event,
    Finished,
    Guarded,
    IterationFinished,
    IterationStarted,
    StateChanged,
    SubcallFinished,
)
from ._snapshot import Throttle
from ._timeline_view import timeline

INTERVAL = 1.0  # seconds between redraws at most; drawing with its SVG takes 40-50 ms (vl-convert)


class Watched(Protocol):
    """What a live timeline reads of a session (``Session`` has it)."""

    @property
    def state(self) -> str: ...

    @property
    def trajectory(self) -> Any: ...

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]: ...


class LiveTimeline:
    """Calls ``show(bundle)`` with the session's timeline MIME bundle as it changes, until closed."""

    def __init__(
        self, session: Watched, show: Callable[[dict[str, Any]], None], interval: float = INTERVAL
    ) -> None:
        self._session = session
        self._show = show
        self._throttle = Throttle(self.draw, interval)
        self._unsubscribe = session.subscribe(self._on_event)

    def draw(self) -> None:
        """Draw the timeline now."""
        self._show(timeline(self._session).bundle())

    def _on_event(self, event: Event) -> None:
        ending = isinstance(event, Finished) or (
            isinstance(event, StateChanged) and event.new in ("paused", "done", "failed")
        )
        if ending and event.depth == 0:
            self._throttle(force=True)
        elif isinstance(
            event, IterationStarted | IterationFinished | Guarded | SubcallFinished | StateChanged
        ):
            self._throttle()

    def close(self) -> None:
        """Stop following the session (a pending redraw is dropped)."""
        self._unsubscribe()
        self._throttle.close()
