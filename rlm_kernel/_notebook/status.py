"""The session's status bar: its snapshot's line (state, iteration, tokens, cost, sub-calls started
and in flight, running time; ``_progress.ProgressWidget``, also what ``rlm_kernel.run()`` shows in a
notebook) and Pause / Step / Resume / Stop buttons.

Button clicks arrive as comm messages. While a cell runs they are handled at once when the front end
sends comms over kernel subshells (JupyterLab >= 4.4), otherwise when the kernel is next free; either
way they only set flags on the session, which acts on them at its next safe point.
"""

from __future__ import annotations

from collections.abc import Callable

from .._progress import ProgressWidget
from .._session import Session
from .._snapshot import Snapshot, describe

Action = Callable[[str], None]


class StatusBar:
    """One session's status line and ``llm_batch`` bar (``_progress.ProgressWidget``, drawn from the
    session's snapshot) with Pause / Step / Resume / Stop buttons; a click calls ``on_action`` with
    the button's name."""

    def __init__(self, session: Session, on_action: Action) -> None:
        self._session = session
        self._on_action = on_action
        self.view = ProgressWidget(session)
        # Imported here: the RLM kernel loads this module at start-up, and ipywidgets would add
        # about 40 ms to it (benchmarks/startup.py).
        import ipywidgets as widgets

        self.label, self.progress = self.view.label, self.view.progress
        self.buttons = {
            name: widgets.Button(description=name.capitalize(), layout=widgets.Layout(width="76px"))
            for name in ("pause", "step", "resume", "stop")
        }
        for name, button in self.buttons.items():
            button.on_click(lambda _b, action=name: self._on_action(action))
        # Where Step / Resume clicked while paused render their iterations.
        self.log = widgets.Output()
        self.widget = widgets.VBox(
            [widgets.HBox([self.view.widget, *self.buttons.values()]), self.log]
        )
        self.view.on_draw = self._enable

    def display(self) -> None:
        """Show the bar, drawn up to date, in the running cell's output."""
        self.view.display(self.widget)

    def text(self) -> str:
        """The status as one line (``_snapshot.describe``): state, iteration, tokens, cost,
        sub-calls and those in flight, running time."""
        return describe(self._session.snapshot())

    def plain(self) -> str:
        """The ``text/plain`` twin: the status line after the session id."""
        return self.view.plain()

    def text_html(self) -> str:
        """The ``text/html`` twin, also the label's value."""
        return self.view.text_html()

    def draw(self) -> Snapshot:
        """Draw the session's snapshot now (events redraw it, throttled); returns it."""
        return self.view.draw()

    def _enable(self, snap: Snapshot) -> None:
        state = snap.session_state
        self.buttons["pause"].disabled = state != "running"
        self.buttons["stop"].disabled = state not in ("running", "paused", "idle")
        self.buttons["step"].disabled = state != "paused"
        self.buttons["resume"].disabled = state != "paused"

    def close(self) -> None:
        """Draw the last state into the HTML and text twins, which show where widgets do not (the
        bar keeps following the session: a follow-up shows it again)."""
        self.view.finish()
