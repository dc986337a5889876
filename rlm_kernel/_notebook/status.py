"""The session's status bar: state, iteration, tokens, cost, sub-calls in flight, elapsed time, and
Pause / Step / Resume / Stop buttons.

Button clicks arrive as comm messages. While a cell runs they are handled at once when the front end
sends comms over kernel subshells (JupyterLab >= 4.4), otherwise when the kernel is next free; either
way they only set flags on the session, which acts on them at its next safe point.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from IPython.core.display_functions import DisplayHandle

from .._events import Event, LiveCounts, StateChanged
from .._session import Session
from . import _html
from .panels import bundle, show

_COLORS = {
    "idle": "#666",
    "running": "#1565c0",
    "paused": "#ef6c00",
    "done": "#2e7d32",
    "failed": "#c0392b",
}
Action = Callable[[str], None]


class StatusBar:
    """One session's status line and Pause / Step / Resume / Stop buttons, kept current from its
    events; a click calls ``on_action`` with the button's name."""

    def __init__(self, session: Session, on_action: Action) -> None:
        self._session = session
        self._on_action = on_action
        self._counts = LiveCounts(iteration=session.iteration, state=session.state)
        self._started = time.monotonic()
        self._last_draw = 0.0
        # Imported here: the RLM kernel loads this module at start-up, and ipywidgets would add
        # about 40 ms to it (benchmarks/startup.py).
        import ipywidgets as widgets

        self.label = widgets.HTML()
        self.progress = widgets.IntProgress(
            value=0, min=0, max=1, layout=widgets.Layout(width="120px", visibility="hidden")
        )
        self.buttons = {
            name: widgets.Button(description=name.capitalize(), layout=widgets.Layout(width="76px"))
            for name in ("pause", "step", "resume", "stop")
        }
        for name, button in self.buttons.items():
            button.on_click(lambda _b, action=name: self._on_action(action))
        # Where Step / Resume clicked while paused render their iterations.
        self.log = widgets.Output()
        self.widget = widgets.VBox(
            [widgets.HBox([self.label, self.progress, *self.buttons.values()]), self.log]
        )
        self._handle: DisplayHandle | None = None
        session.subscribe(self.on_event)

    def display(self) -> None:
        """Show the bar, drawn up to date, in the running cell's output."""
        self.draw(force=True)
        self._handle = show(self.widget, self.text_html(), self.plain())

    def on_event(self, event: Event) -> None:
        """Count the event (iteration, state, sub-calls in flight) and redraw: at once on a state
        change, else throttled."""
        self._counts.update(event)
        self.draw(force=isinstance(event, StateChanged))

    def text(self) -> str:
        """The status as one line: state, iteration, root and sub-call tokens, cost, sub-calls in
        flight, elapsed time."""
        s = self._session
        total = s.usage.total
        root = s.root_usage.total.total_tokens
        cost = total.cost
        parts = [
            s.state,
            f"iteration {self._counts.iteration}/{s.config.max_iterations}",
            f"root {root:,} · sub {total.total_tokens - root:,} tokens",
        ]
        if cost:
            parts.append(f"${cost:.4f}")
        if self._counts.in_flight:
            parts.append(f"{self._counts.in_flight} sub-calls in flight")
        parts.append(f"{time.monotonic() - self._started:.1f} s")
        return " · ".join(parts)

    def plain(self) -> str:
        """The ``text/plain`` twin: the status line after the session id."""
        return f"RLM {self._session.id} · {self.text()}"

    def text_html(self) -> str:
        """The ``text/html`` twin, also the label's value: the session id in its state's colour,
        then the status line."""
        color = _COLORS.get(self._session.state, "#666")
        return (
            f"<div style='{_html.MONO}; padding: 2px 0'><b style='color:{color}'>RLM {_html.esc(self._session.id)}</b> · "
            f"{_html.esc(self.text())}</div>"
        )

    def draw(self, *, force: bool = False) -> None:
        """Update the label, the ``llm_batch`` progress bar and which buttons are enabled; at most
        every 0.25 s unless ``force``."""
        now = time.monotonic()
        # Throttled: a 64-way batch would otherwise send hundreds of widget updates a second.
        if not force and now - self._last_draw < 0.25:
            return
        self._last_draw = now
        state = self._session.state
        self.label.value = self.text_html()
        total, done = self._counts.wave, self._counts.wave - self._counts.in_flight
        self.progress.max = max(total, 1)
        self.progress.value = max(done, 0)
        self.progress.layout.visibility = "visible" if total > 1 else "hidden"
        self.buttons["pause"].disabled = state != "running"
        self.buttons["stop"].disabled = state not in ("running", "paused", "idle")
        self.buttons["step"].disabled = state != "paused"
        self.buttons["resume"].disabled = state != "paused"

    def close(self) -> None:
        """Draw the last state into the HTML and text twins, which show where widgets do not."""
        self.draw(force=True)
        if self._handle is not None:
            self._handle.update(bundle(self.widget, self.text_html(), self.plain()), raw=True)
