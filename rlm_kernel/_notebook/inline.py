"""The inline driver: the RLM loop runs inside the cell that asked for it, each iteration rendered like a
cell (``In [rlm 3]:`` with highlighted code, its live output, its sub-call panel, notes and errors).

It works in every front end (VS Code, classic Notebook, Colab, nbclient, plain IPython, JupyterLab without
the extension). A kernel interrupt pauses the session; ``%rlm resume`` continues it in a new cell.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, cast

from IPython.core.display_functions import DisplayHandle, display
from IPython.core.error import UsageError

from .._events import (
    CodeReady,
    Event,
    Finished,
    Guarded,
    IterationFinished,
    IterationStarted,
    SubcallFinished,
    SubcallStarted,
)
from .._guards import guard_line
from .._records import Result
from .._schema import GuardRecord
from .._session import Session
from .._timeline_live import LiveTimeline
from .._timeline_view import METADATA
from ..errors import RLMError
from . import _html
from ._html import HTML
from ._notebook_session import NotebookSession
from ._workspace import Workspace
from .panels import IterationPanel
from .status import StatusBar

# ipywidgets is imported where a widget is built: the RLM kernel loads this module at start-up,
# and ipywidgets would add about 40 ms to it (benchmarks/startup.py).
if TYPE_CHECKING:
    import ipywidgets as widgets


def show_value(session: Session) -> None:
    """A typed answer (``output=``) is shown as its object too, after its text: its repr, or the
    rich display an object defines (``session.value`` holds it)."""
    if has_object(session):
        display(session.value)


def has_object(session: Session) -> bool:
    """Whether the session's answer is a typed object other than a string (which is its text)."""
    return (
        session.output is not None
        and session.value is not None
        and not isinstance(session.value, str)
    )


class InlineRenderer:
    """Turns a session's events into notebook output, for as long as it is attached."""

    def __init__(self, session: Session, *, headers: bool = True) -> None:
        """``headers=False`` (cells mode): the cell shows the code, and the driver the answer."""
        self._session = session
        self._headers = headers
        self._lock = threading.Lock()
        self._header: DisplayHandle | None = None
        self._panel: IterationPanel | None = None
        # rlm_query calls in progress, innermost last: a child's events belong to the top one.
        self._children: list[tuple[str, widgets.HTML, list[dict[str, Any]]]] = []
        self._unsubscribe = session.subscribe(self.on_event)

    def detach(self) -> None:
        """Stop rendering: unsubscribe from the session's events."""
        self._unsubscribe()

    def on_event(self, event: Event) -> None:
        """Render one event: an iteration's header and code, its sub-calls into its panel, its
        values, errors and notes, and the answer; a child RLM's steps go in its sub-call's entry."""
        nested: widgets.Widget | None = None
        if isinstance(event, SubcallStarted) and event.kind == "rlm_query":
            with self._lock:
                import ipywidgets as widgets

                self._children.append((event.call_id, widgets.HTML(), []))
        elif isinstance(event, SubcallFinished):
            nested = self._close_child(event.call_id)
        if event.depth > 0:
            self._child_event(event)
            return
        if not self._headers and isinstance(event, IterationStarted | CodeReady | Finished):
            return
        if isinstance(event, IterationStarted):
            self._header = DisplayHandle()
            self._header.display(HTML(_html.notice(f"step {event.iteration}: asking the model…")))
            self._panel = None
        elif isinstance(event, CodeReady):
            code = "\n\n".join(event.blocks)
            prose = _html.prose_of(event.response)
            block = HTML(_html.iteration_header(f"rlm {event.iteration}", code, prose))
            if self._header is None:
                display(block)
            else:
                self._header.update(block)
        elif isinstance(event, SubcallStarted):
            self._panel_for_iteration().started(event.call_id, f"{event.kind} · {event.model}")
        elif isinstance(event, SubcallFinished):
            self._panel_for_iteration().finished(event.record, nested)
        elif isinstance(event, IterationFinished):
            self._iteration_done(event.record)
        elif isinstance(event, Guarded):
            line = guard_line(cast(GuardRecord, event.record))
            display(HTML(_html.notice(line, color="#6a1b9a")))
        elif isinstance(event, Finished):
            display(HTML(_html.answer_block(event.answer, event.reason, event.message)))
            show_value(self._session)

    def _panel_for_iteration(self) -> IterationPanel:
        with self._lock:
            if self._panel is None:
                self._panel = IterationPanel()
            return self._panel

    def _iteration_done(self, record: dict[str, Any]) -> None:
        if self._panel is not None:
            self._panel.close()
        for result in record["results"]:
            if result.get("value") is not None:
                display(HTML(_html.notice(f"Out: {result['value']}", color="inherit")))
            if result.get("error"):
                display(HTML(_html.error_block(result["error"])))
        for note in record["notes"]:
            # Notes are addressed to the model (its next observation): say so to the person.
            display(HTML(_html.notice(f"Told the model: {note}", color="#ef6c00")))

    # --- child RLMs (rlm_query at max_depth >= 2) ----------------------------------------------------
    def _child_event(self, event: Event) -> None:
        """A child's own iterations fill the view nested in its rlm_query entry, live."""
        if not isinstance(event, IterationFinished):
            return
        with self._lock:
            if len(self._children) != event.depth:
                return  # a grandchild's iteration: its parent's record will nest it
            _call_id, view, iterations = self._children[-1]
            iterations.append(event.record)
            view.value = _html.child_fallback({"records": iterations})

    def _close_child(self, call_id: str) -> widgets.Widget | None:
        with self._lock:
            for index, (cid, view, _records) in enumerate(self._children):
                if cid == call_id:
                    del self._children[index]
                    return view
        return None


def live_timeline(session: Session) -> LiveTimeline | None:
    """With ``RLM.timeline`` on: the session's timeline shown here, and redrawn in place (one
    display id) from its records as it runs, until ``close``."""
    if not session.config.timeline:
        return None
    handle = DisplayHandle()
    shown: list[bool] = []

    def show(bundle: dict[str, Any]) -> None:
        if shown:
            handle.update(bundle, metadata=METADATA, raw=True)
        else:
            shown.append(True)
            handle.display(bundle, metadata=METADATA, raw=True)

    live = LiveTimeline(session, show)
    live.draw()
    return live


def run_inline(session: Session, renderer: InlineRenderer | None = None) -> Result:
    """Run ``session`` until it finishes or pauses, rendering into the current cell."""
    own = renderer is None
    renderer = renderer or InlineRenderer(session)
    timeline = live_timeline(session)
    try:
        result = session.run()
    finally:
        if own:
            renderer.detach()
        if timeline is not None:
            timeline.draw()  # the state it ended in, whatever the throttle held back
            timeline.close()
    if session.state == "paused":
        why = f": {result.message}" if result.message else ""
        display(
            HTML(
                _html.notice(
                    f"⏸ session {session.id} paused{why}. `%rlm resume` continues it.",
                    color="#ef6c00",
                )
            )
        )
    return result


class InlineDriver:
    """Runs sessions in the cell that asks: ``%rlm`` runs the loop there under a status bar, step
    mode shows each proposed step before it runs, and a ``%%rlm_step`` cell runs one step."""

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace

    def start(self, entry: NotebookSession) -> None:
        """Show the status bar, then run the session (in step mode: propose its first step)."""
        self._show_status(entry)
        if entry.step_mode:
            self._propose_only(entry)
        else:
            self._drive(entry)

    def follow_up(self, entry: NotebookSession) -> None:
        """Show the status bar and run the new question."""
        self._show_status(entry)
        self._drive(entry)

    def resume(self, entry: NotebookSession) -> None:
        """Run on from the pause, in this cell."""
        self._drive(entry)

    def step(self, entry: NotebookSession) -> None:
        """Run the waiting step (proposing it first if there is none), then propose the next one."""
        session = entry.session
        if session.state == "done":
            # Not an error: a notebook stepping through a session may reach its end sooner or later.
            print(
                f"Session {session.id} has finished ({session.reason}): nothing left to step. "
                f'`%rlm "follow-up" --continue` asks it something more.'
            )
            return
        if session.state not in ("paused", "idle"):
            raise UsageError(f"%rlm step: session {session.id} is {session.state}, not paused")
        entry.step_mode = True
        renderer = InlineRenderer(session)
        try:
            session.step()
        except RLMError as exc:
            display(HTML(_html.error_block(str(exc))))
            return
        finally:
            renderer.detach()
        state: str = session.state  # changed by step(); re-read
        if state != "done":
            self._propose_only(entry)

    def step_cell(self, entry: NotebookSession, n: int, code: str) -> None:
        """Run step ``n`` with the cell's code (rewinding to it if it is not the waiting step),
        then go on as the session does: its answer, the next proposed step, or the rest of the run."""
        check_step(entry.session, n)
        session = entry.session
        if session.state == "running":
            raise UsageError(f"%%rlm_step: session {session.id} is running; pause it first")
        pending = session.pending
        if pending is None or pending.iteration != n:
            session.rewind(n)
        renderer = InlineRenderer(session)
        try:
            session.execute(code)
        except RLMError as exc:
            display(HTML(_html.error_block(str(exc))))
            return
        finally:
            renderer.detach()
        if session.state == "done":
            display(HTML(_html.answer_block(session.answer, session.reason, session.message)))
            show_value(session)
        elif entry.step_mode:
            self._propose_only(entry)
        else:
            self._drive(entry)

    def _drive(self, entry: NotebookSession) -> None:
        try:
            run_inline(entry.session)
        finally:
            self._workspace.remember_helpers()
            if entry.status is not None:
                entry.status.close()

    def _propose_only(self, entry: NotebookSession) -> None:
        renderer = InlineRenderer(entry.session)
        try:
            entry.session.propose()
        except RLMError as exc:
            display(HTML(_html.error_block(str(exc))))
        finally:
            renderer.detach()
        session = entry.session
        if session.state == "idle":
            session.pause()
        pending = session.pending
        if pending is None:
            return  # the model call failed; the error above says what to do
        n = pending.iteration
        planned = (
            f" In the recording a person ran their own code here instead: `%rlm step` runs that; "
            f"`%%rlm_step {n}` with other code runs yours."
            if n in session.edits
            else ""
        )
        display(
            HTML(
                _html.notice(
                    f"Step mode: `%rlm step` runs step {n}; `%rlm edit {n}` lets you change it first."
                    + planned
                )
            )
        )

    def _show_status(self, entry: NotebookSession) -> None:
        if entry.status is None:
            entry.status = StatusBar(entry.session, lambda action: self._button(entry, action))
        entry.status.display()

    def _button(self, entry: NotebookSession, action: str) -> None:
        session = entry.session
        if action == "pause":
            session.pause()
        elif action == "stop":
            session.stop()
        elif session.state == "paused" and entry.status is not None:
            # The click came while the kernel was free: run here, rendered under the status bar.
            with entry.status.log:
                if action == "step":
                    self.step(entry)
                else:
                    entry.step_mode = False
                    self._drive(entry)


def check_step(session: Session, n: int, magic: str = "%%rlm_step") -> None:
    """A step cell may run the waiting step or re-run an earlier one, nothing else."""
    pending = session.pending
    if (pending is not None and pending.iteration == n) or 1 <= n <= session.iteration:
        return
    have = f"iterations 1–{session.iteration}" if session.iteration else "no iterations yet"
    waiting = f", and step {pending.iteration} is waiting" if pending is not None else ""
    raise UsageError(f"{magic}: session {session.id} has {have}{waiting}; step {n} does not exist")
