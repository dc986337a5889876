"""Live progress of a running session, drawn from its snapshot (``session.snapshot()``, ``_snapshot``):
a one-line display for terminals (``ProgressLine``: the CLI, the demo, ``rlm_kernel.run()`` on a
terminal) and a widget for notebooks (``ProgressWidget``: ``rlm_kernel.run()`` in a notebook; the
inline status bar of ``%rlm`` is this widget with buttons). ``show_progress`` picks one the way
``tqdm.auto`` does: a widget under an ipykernel shell, a line when stderr is a terminal, and nothing
elsewhere (a pipe or a log file gets no control characters).
"""

from __future__ import annotations

import html
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TextIO, cast

from ._events import Event, Guarded, StateChanged
from ._guards import guard_line
from ._schema import GuardRecord
from ._session import Session
from ._snapshot import Snapshot, Throttle, describe

if TYPE_CHECKING:
    from IPython.core.display_functions import DisplayHandle

# Each state's colour in the notebook (the session id is shown in it).
COLORS = {
    "idle": "#666",
    "running": "#1565c0",
    "paused": "#ef6c00",
    "done": "#2e7d32",
    "failed": "#c0392b",
}
MONO = "font-family: var(--jp-code-font-family, monospace); font-size: 12px"


class Progress(Protocol):
    """A live progress display: ``close()`` draws it a last time and stops following the session."""

    def close(self) -> None: ...


class ProgressLine:
    """Redraws ``\\r``-style on ``stream`` on events (at most ten times a second, the last state
    always) and twice a second for the clock; ``close()`` clears it."""

    def __init__(self, session: Session, stream: TextIO, *, interval: float = 0.5) -> None:
        self._session = session
        self._stream = stream
        self._write = threading.Lock()  # events come from two threads, the ticker from a third
        self._stopped = threading.Event()
        self._throttle = Throttle(self.draw, 0.1)
        self._unsubscribe = session.subscribe(self.on_event)
        self._ticker = threading.Thread(target=self._tick, args=(interval,), daemon=True)
        self._ticker.start()

    def on_event(self, event: Event) -> None:
        """Print a guard's line above the progress line, and redraw."""
        if isinstance(event, Guarded) and event.depth == 0 and not self._stopped.is_set():
            # A line of its own that stays above the progress line: a person should see it.
            with self._write:
                self._stream.write("\r\x1b[K" + guard_line(cast(GuardRecord, event.record)) + "\n")
        self._throttle(force=isinstance(event, StateChanged))

    def render(self, snap: Snapshot | None = None) -> str:
        """The line for ``snap`` (default: the session's snapshot now)."""
        return "rlm " + describe(snap or self._session.snapshot())

    def draw(self) -> None:
        """Redraw the line now."""
        with self._write:
            if self._stopped.is_set():
                return
            self._stream.write("\r\x1b[K" + self.render())
            self._stream.flush()

    def close(self) -> None:
        """Stop, and clear the line."""
        with self._write:
            self._stopped.set()
            self._throttle.close()
            self._unsubscribe()
            self._stream.write("\r\x1b[K")
            self._stream.flush()

    def _tick(self, interval: float) -> None:
        while not self._stopped.wait(interval):
            self.draw()


class ProgressWidget:
    """A session's status line (the session id in its state's colour, then ``describe``'s line) and
    a bar for an ``llm_batch`` wave, as ipywidgets, kept current from its snapshot: on a state
    change at once, otherwise at most every 0.25 s (a 64-way batch would send hundreds of widget
    updates a second), the last state always; and every ``tick`` seconds while it runs, for the
    clock. ``widget`` is the row; ``display()`` shows it."""

    def __init__(self, session: Session, *, interval: float = 0.25, tick: float = 1.0) -> None:
        self._session = session
        # Imported here: the RLM kernel loads the notebook layer at start-up, and ipywidgets would
        # add about 40 ms to it (benchmarks/startup.py).
        import ipywidgets as widgets

        self.label = widgets.HTML()
        self.progress = widgets.IntProgress(
            value=0, min=0, max=1, layout=widgets.Layout(width="120px", visibility="hidden")
        )
        self.widget = widgets.HBox([self.label, self.progress])
        self.shown: Snapshot | None = None  # what the widgets show now
        # Called with each snapshot drawn (the status bar sets which of its buttons are enabled).
        self.on_draw: Callable[[Snapshot], None] | None = None
        self._draw_lock = threading.Lock()
        self._handle: DisplayHandle | None = None
        self._shown_widget: Any = None
        self._throttle = Throttle(self.draw, interval)
        self._unsubscribe = session.subscribe(self.on_event)
        self._stopped = threading.Event()
        threading.Thread(target=self._tick, args=(tick,), daemon=True).start()

    def _tick(self, tick: float) -> None:
        while not self._stopped.wait(tick):
            if self._session.state == "running":
                self.draw()

    def on_event(self, event: Event) -> None:
        """Redraw: at once on a state change, else throttled."""
        self._throttle(force=isinstance(event, StateChanged))

    def draw(self) -> Snapshot:
        """Show the session's snapshot now; returns it."""
        with self._draw_lock:
            snap = self._session.snapshot()
            self.label.value = self.text_html(snap)
            self.progress.max = max(snap.wave, 1)
            self.progress.value = snap.answered
            self.progress.layout.visibility = "visible" if snap.wave > 1 else "hidden"
            self.shown = snap
            if self.on_draw is not None:
                self.on_draw(snap)
            return snap

    def plain(self, snap: Snapshot | None = None) -> str:
        """The ``text/plain`` twin: the status line after the session id."""
        snap = snap or self._session.snapshot()
        return f"RLM {snap.session} · {describe(snap)}"

    def text_html(self, snap: Snapshot | None = None) -> str:
        """The ``text/html`` twin, also the label's value: the session id in its state's colour,
        then the status line."""
        snap = snap or self._session.snapshot()
        color = COLORS.get(snap.session_state, "#666")
        return (
            f"<div style='{MONO}; padding: 2px 0'><b style='color:{color}'>RLM "
            f"{html.escape(snap.session)}</b> · {html.escape(describe(snap))}</div>"
        )

    def bundle(self, widget: Any = None) -> dict[str, Any]:
        """``widget``'s (default: the row's) display bundle with the status as its HTML and plain
        twins, which show where widgets do not (a saved notebook, nbconvert, a terminal)."""
        widget = widget or self.widget
        snap = self.shown or self._session.snapshot()
        data: dict[str, Any] = dict(widget._repr_mimebundle_() or {})
        data["text/html"] = self.text_html(snap)
        data["text/plain"] = self.plain(snap)  # the widget's own is its repr: HBox(children=(…
        return data

    def display(self, widget: Any = None) -> None:
        """Show ``widget`` (default: the row), drawn up to date, in the running cell's output."""
        from IPython.core.display_functions import DisplayHandle

        self.draw()
        self._handle = DisplayHandle()
        self._handle.display(self.bundle(widget), raw=True)
        self._shown_widget = widget

    def finish(self) -> None:
        """Draw the state now into the widgets and into the HTML and text twins of the display."""
        self.draw()
        if self._handle is not None:
            self._handle.update(self.bundle(self._shown_widget), raw=True)

    def close(self) -> None:
        """Stop following the session, and ``finish``."""
        self._stopped.set()
        self._throttle.close()
        self._unsubscribe()
        self.finish()


def in_notebook() -> bool:
    """Whether this runs under an ipykernel shell (a notebook, a console on a kernel): the test
    ``tqdm.auto`` makes, without importing IPython where it is not loaded already."""
    ipython = sys.modules.get("IPython")
    zmqshell = sys.modules.get("ipykernel.zmqshell")
    if ipython is None or zmqshell is None:
        return False
    return isinstance(ipython.get_ipython(), zmqshell.ZMQInteractiveShell)


def show_progress(session: Session, stream: TextIO | None = None) -> Progress | None:
    """Follow ``session`` live where a person can see it: a widget in a notebook, a line on
    ``stream`` (default ``sys.stderr``) when it is a terminal; None elsewhere."""
    if in_notebook():
        view = ProgressWidget(session)
        view.display()
        return view
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return ProgressLine(session, stream)
    return None
