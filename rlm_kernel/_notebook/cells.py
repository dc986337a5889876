"""The cells driver: every iteration is a real ``%%rlm_step SESSION N`` cell that the front end inserts
under the previous one and runs, so a person can watch, stop, edit and re-run it, and the notebook
itself is the trajectory.

The loop is driven by the front end: the kernel never waits for a cell (it would queue behind the one
running). ``%rlm`` proposes step 1, asks for its cell and returns; each step cell runs its code, asks the
model for the next step, asks for that cell, and returns. Messages go out synchronously inside the
running cell, so nbclient's headless front end sees them too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from IPython.core.display_functions import display
from IPython.core.error import UsageError

from .._events import Finished, IterationFinished, IterationStarted, StateChanged
from .._guards import guard_at, guard_badge
from .._schema import IterationRecord
from .._session import Session
from .._snapshot import Throttle
from ..errors import ModelError, ReplayMissError, RLMError
from . import _html
from ._cell_record import CellRecord
from ._frontend import FrontendLink
from ._html import HTML
from ._notebook_session import NotebookSession
from .inline import (
    InlineDriver,
    InlineRenderer,
    check_step,
    has_object,
    live_timeline,
    show_value,
)

# A step cell asked of a page that has not started it this long after is waiting for a page that is
# gone: a page that connects then runs it. (A live page starts it within milliseconds; the reloaded
# page of the tab that drove the session takes it over at once.)
STALL_AFTER = 2.0


class CellsDriver:
    """Runs sessions as step cells: asks the front end to insert and run one ``%%rlm_step`` cell per
    iteration, and sends it the session's status for its toolbar."""

    def __init__(self, link: FrontendLink, inline: InlineDriver) -> None:
        """``inline`` runs what a request from no cell-inserting front end asks of a cells session."""
        self.link = link
        self._inline = inline
        # Step cells inserted to run automatically: a paused session skips them; a person's re-run does not.
        self._auto: set[tuple[str, int]] = set()
        # The insert_cell message of each session's latest step cell, and the last cell inserted for it.
        self._steps: dict[tuple[str, int], dict[str, Any]] = {}
        self._last: dict[str, str] = {}
        # What a page that (re)connects is re-synced from: the sessions driven, their cells, and
        # when each step cell inserted to run was asked for.
        self._entries: dict[str, NotebookSession] = {}
        self._record = CellRecord()
        self._asked: dict[tuple[str, int], float] = {}
        self._busy = 0  # > 0 while a cell of this driver runs (its step is not waiting, it runs)
        # Client sessions that said hello: a page says it on each comm it opens (its own, and in
        # reply to an announce); only its first is a page (re)connecting.
        self._greeted: set[str] = set()
        # RLM.timeline: each session's live timeline, an output of its %rlm cell that the step cells
        # redraw (by display id) as they run; kept for follow-ups.
        self._timelines: dict[str, Any] = {}
        link.on_hello = self._reconnect

    def last_cell(self, session_id: str) -> str | None:
        """The id of the last cell inserted for ``session_id`` (where new cells for it belong)."""
        return self._last.get(session_id)

    # --- the driver: what the magics ask of a cells session ---------------------------------------
    # The session's steps are cells of the front end that started it. A command from a request with
    # no cell-inserting front end (a console on the same kernel) cannot have cells inserted: it runs
    # in its own cell, as the inline driver runs it.
    def start(self, entry: NotebookSession) -> None:
        """``%rlm``, ``%rlm replay``: begin the session and ask for step 1's cell under this one."""
        client = self.link.requester()
        if client is None:
            self._inline.start(entry)
        else:
            with self._running():
                self._begin(entry, client)

    def follow_up(self, entry: NotebookSession) -> None:
        """``%rlm "..." --continue``: ask for the next step's cell from here."""
        client = self.link.requester()
        if client is None:
            self._inline.follow_up(entry)
        else:
            with self._running():
                self._resume(entry, client)

    def resume(self, entry: NotebookSession) -> None:
        """``%rlm resume``: ask for the next step's cell from here (or run the waiting one)."""
        client = self.link.requester()
        if client is None:
            self._inline.resume(entry)
        else:
            with self._running():
                self._resume(entry, client)

    def step(self, entry: NotebookSession) -> None:
        """``%rlm step``: run the waiting step's cell, or ask for it, and the next one unrun."""
        client = self.link.requester()
        session = entry.session
        if client is None or session.state == "done":
            self._inline.step(entry)  # also says that a finished session has nothing to step
        elif session.state not in ("paused", "idle"):
            raise UsageError(f"%rlm step: session {session.id} is {session.state}, not paused")
        else:
            entry.step_mode = True
            with self._running():
                self._resume(entry, client)

    def step_cell(self, entry: NotebookSession, n: int, code: str) -> None:
        """A ``%%rlm_step`` cell: run step ``n``, then ask for the next step's cell."""
        client = self.link.requester()
        if client is None:
            self._inline.step_cell(entry, n, code)
            return
        # A step cell the kernel inserted to run by itself says why it did not (the session was
        # stopped or paused meanwhile) rather than failing a Run All with a usage error.
        if not self._inserted_to_run(entry.session.id, n):
            check_step(entry.session, n)
        with self._running():
            self._step_cell(entry, n, code, client)

    def control(self, entry: NotebookSession, action: str) -> None:
        """A toolbar button of the extension (possibly on a subshell thread: flags only)."""
        session = entry.session
        if action == "pause":
            session.pause()
        elif action == "stop":
            session.stop()
        elif (
            action in ("resume", "step") and session.state == "paused" and entry.client is not None
        ):
            # The kernel cannot run a cell itself: it asks the front end for one that does.
            self.link.send(
                entry.client,
                {
                    "type": "insert_cell",
                    "request_id": self.link.request_id(),
                    "session": session.id,
                    "iteration": session.iteration,
                    "after_cell_id": self.last_cell(session.id),
                    "cell_type": "code",
                    "source": f"%rlm {action} {session.id}",
                    "metadata": {
                        "rlm": {
                            "session": session.id,
                            "iteration": session.iteration,
                            "role": "start",
                        }
                    },
                    "run": True,
                    "collapsed": False,
                },
            )
        elif action == "step":
            entry.step_mode = True

    @contextmanager
    def _running(self) -> Iterator[None]:
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    # --- a page that (re)connects ----------------------------------------------------------------
    def waiting(self, entry: NotebookSession) -> dict[str, Any] | None:
        """The insert of the step cell ``entry``'s session waits for a page to run (it is
        ``running`` between cells), or None when it waits for nothing or its step runs now."""
        session = entry.session
        pending = session.pending
        if self._busy or session.state != "running" or pending is None:
            return None
        key = (session.id, pending.iteration)
        return self._steps.get(key) if key in self._auto else None

    def rerun_waiting(self, entry: NotebookSession) -> bool:
        """``%rlm resume`` of a session whose step cell no page ran (its page was reloaded or
        closed): ask this page to run it (inserted first if this notebook lacks it)."""
        client = self.link.requester()
        waiting = self.waiting(entry)
        if client is None or waiting is None:
            return False
        entry.client = client
        display(
            HTML(
                _html.notice(
                    f"Session {entry.session.id} was waiting for step {waiting['iteration']}'s cell "
                    "to run: running it now."
                )
            )
        )
        self._send(entry, {**waiting, "request_id": self.link.request_id(), "run": True})
        return True

    def _reconnect(
        self, client: str, replaced: str | None, send: Callable[[dict[str, Any]], None]
    ) -> None:
        """A page said hello (a reload, or a second page): give it each session's cells and
        status, and have it run a step cell that waits for a page that is gone."""
        if client in self._greeted:
            return  # the same page on another comm: its cells are live, its steps run
        self._greeted.add(client)
        for entry in list(self._entries.values()):
            session = entry.session
            if (
                replaced is None
                and entry.client is not None
                and self.link.current(entry.client) == client
            ):
                # The page that drives it, saying hello late (Run All queues its reply to the
                # announce behind the cells): its cells are there and its step runs.
                continue
            send(dict(self._record.sync(session)))
            send(status_message(session))
            waiting = self.waiting(entry)
            if waiting is None:
                continue
            drove = entry.client is not None and self.link.current(entry.client) == client
            asked = self._asked.get((session.id, waiting["iteration"]), 0.0)
            if drove or time.monotonic() - asked >= STALL_AFTER:
                entry.client = client
                self._asked[(session.id, waiting["iteration"])] = time.monotonic()
                send({**waiting, "request_id": self.link.request_id(), "run": True})

    # --- the %rlm cell ---------------------------------------------------------------------------
    def _begin(self, entry: NotebookSession, client: str) -> None:
        """``%rlm`` in cells mode: begin the session and ask for step 1's cell under this one."""
        entry.client = client
        session = entry.session
        self._watch(entry)
        self._record.started(session.id, self.link.cell_id())
        session.begin()
        display(HTML(_html.notice(f"RLM session {session.id}: its steps follow as cells below.")))
        if session.id not in self._timelines:
            self._timelines[session.id] = live_timeline(session)
        self._next(entry, after=self.link.cell_id())

    def _resume(self, entry: NotebookSession, client: str) -> None:
        """``%rlm resume`` / ``%rlm step`` in cells mode: ask for the next step's cell from here."""
        entry.client = client
        self._watch(entry)
        session = entry.session
        pending = session.pending
        waiting = self._steps.get((session.id, pending.iteration)) if pending is not None else None
        if waiting is not None:
            # The step's cell is already in the notebook, unrun: run that one rather than add a copy.
            # In step mode (Step, %rlm step) it runs alone; the next one is then inserted unrun.
            session.begin()
            self._auto.add((session.id, waiting["iteration"]))
            self._send(entry, {**waiting, "request_id": self.link.request_id(), "run": True})
            return
        session.begin()
        self._next(entry, after=self.link.cell_id())

    def _inserted_to_run(self, session_id: str, n: int) -> bool:
        """Whether step ``n``'s cell was inserted to run by itself (not run by a person)."""
        return (session_id, n) in self._auto

    # --- a %%rlm_step cell --------------------------------------------------------------------------
    def _step_cell(self, entry: NotebookSession, n: int, code: str, client: str) -> None:
        """Run step ``n``'s cell (an edit or a re-run rewinds to ``n`` and marks later cells stale),
        then ask for the next step's cell; an inserted cell whose session paused or ended meanwhile
        says so instead of running."""
        entry.client = client
        session = entry.session
        auto = (session.id, n) in self._auto
        self._auto.discard((session.id, n))
        if auto and (session.state == "paused" or session.pause_requested):
            session.checkpoint()
            display(
                HTML(
                    _html.notice(
                        "⏸ paused before this step: run this cell to run it anyway, or `%rlm resume`.",
                        color="#ef6c00",
                    )
                )
            )
            return
        if auto and session.state == "done":
            display(
                HTML(
                    _html.notice(
                        f"Session {session.id} has ended ({session.reason}); this step did not run.",
                        color="#ef6c00",
                    )
                )
            )
            return
        self._watch(entry)
        pending = session.pending
        if pending is None or pending.iteration != n:
            later = session.iteration > n or (pending is not None and pending.iteration > n)
            answered = session.state == "done"  # its answer cell is superseded too
            session.rewind(n)
            if later or answered:
                remove = session.config.stale_cells == "remove"
                self._record.staled(session.id, n + 1)
                self._send(
                    entry,
                    {
                        "type": "mark_stale",
                        "session": session.id,
                        "from_iteration": n + 1,
                        "remove": remove,
                    },
                )
        if session.state != "running":
            session.begin()
        renderer = InlineRenderer(session, headers=False)
        try:
            record = session.execute(code)
        except RLMError as exc:
            display(HTML(_html.error_block(str(exc))))
            return
        except Exception as exc:
            session.fail(exc)  # never left "running" with no step to come
            raise
        finally:
            renderer.detach()
        metadata: dict[str, Any] = {}
        if record["type"] == "iteration":
            metadata["subcalls"] = len(cast(IterationRecord, record)["subcalls"])
        guard = guard_at(session.trajectory.records, n)
        if guard is not None:
            metadata["guard"] = guard_badge(guard)
        if metadata:
            self._send(
                entry,
                {
                    "type": "update_cell",
                    "session": session.id,
                    "iteration": n,
                    "metadata": metadata,
                },
            )
        self._next(entry, after=self.link.cell_id())

    # --- what comes after a step ---------------------------------------------------------------------
    def _next(self, entry: NotebookSession, after: str | None) -> None:
        session = entry.session
        if session.state == "done":
            self._answer(entry, after)
            return
        if not session.checkpoint():
            display(
                HTML(
                    _html.notice(
                        f"⏸ session {session.id} paused. `%rlm resume` continues it.",
                        color="#ef6c00",
                    )
                )
            )
            return
        try:
            proposal = session.propose()
        except (ModelError, ReplayMissError) as exc:
            session.hold(exc)
            display(HTML(_html.error_block(f"{exc}\nFix it, then `%rlm resume`.")))
            return
        except Exception as exc:
            session.fail(exc)
            raise
        except KeyboardInterrupt:
            session.pause()
            session.checkpoint()
            display(
                HTML(
                    _html.notice(
                        "⏸ interrupted while asking the model; `%rlm resume` asks again.",
                        color="#ef6c00",
                    )
                )
            )
            return
        n = proposal.iteration
        run = not entry.step_mode
        prose = _html.prose_of(proposal.response)
        cells: list[tuple[str, str, str, bool]] = []
        if prose:
            cells.append(("markdown", notes_source(n, prose), "reasoning", False))
        code = session.edits.get(n, proposal.code)
        cells.append(("code", f"%%rlm_step {session.id} {n}\n{code}", "step", run))
        request = self.link.request_id()
        for cell_type, source, role, run_it in cells:
            message = {
                "type": "insert_cell",
                "request_id": request,
                "cell_id": new_cell_id(),
                "session": session.id,
                "iteration": n,
                "after_cell_id": after,
                "cell_type": cell_type,
                "source": source,
                "metadata": {"rlm": {"session": session.id, "iteration": n, "role": role}},
                "run": run_it or cell_type == "markdown",
                # Folded by the <details> of its source: a hidden input would show raw markdown.
                "collapsed": False,
            }
            self._send(entry, message)
            if role == "step":
                self._steps[(session.id, n)] = message
        if run:
            self._auto.add((session.id, n))
            self._asked[(session.id, n)] = time.monotonic()
        else:
            session.pause()  # step mode: the session waits for the person to run the inserted cell
            session.checkpoint()
            display(
                HTML(
                    _html.notice(
                        f"Step {n} is in the cell below: read or edit it, then run it (Shift+Enter)."
                    )
                )
            )

    def _answer(self, entry: NotebookSession, after: str | None) -> None:
        session = entry.session
        title = "Answer" if session.reason in ("final", "baseline") else f"Ended: {session.reason}"
        body = session.answer if session.answer is not None else "_(no answer)_"
        if has_object(session):  # a typed answer's text is JSON
            body = f"```json\n{session.answer}\n```"
        display(HTML(_html.answer_block(session.answer, session.reason, session.message)))
        show_value(session)
        self._send(
            entry,
            {
                "type": "insert_cell",
                "request_id": self.link.request_id(),
                "cell_id": new_cell_id(),
                "session": session.id,
                "iteration": session.iteration,
                "after_cell_id": after,
                "cell_type": "markdown",
                "source": f"**RLM · {title}** — {session.question}\n\n{body}\n\n_{session.message}_",
                "metadata": {
                    "rlm": {"session": session.id, "iteration": session.iteration, "role": "answer"}
                },
                "run": True,
                "collapsed": False,
            },
        )

    # --- status for the toolbar ---------------------------------------------------------------------
    def _watch(self, entry: NotebookSession) -> None:
        self._entries[entry.session.id] = entry
        if entry.unwatch is None:
            # Every event may change the snapshot (a sub-call of a child too): at most 4 messages a
            # second, a step or state change at once, the last state always (``Throttle``).
            throttle = Throttle(lambda: self._status(entry), 0.25)
            entry.unwatch = entry.session.subscribe(
                lambda event: throttle(
                    force=event.depth == 0
                    and isinstance(
                        event, IterationStarted | IterationFinished | StateChanged | Finished
                    )
                )
            )

    def _status(self, entry: NotebookSession) -> None:
        message = status_message(entry.session)
        self._send(entry, message)
        self.link.send_others(entry.client, message)

    def _send(self, entry: NotebookSession, message: dict[str, Any]) -> None:
        if message["type"] == "insert_cell" and message.get("cell_id"):
            self._last[message["session"]] = message["cell_id"]
            self._record.inserted(message)
        if entry.client is not None:
            self.link.send(entry.client, message)
        self._mirror(entry, message)

    def _mirror(self, entry: NotebookSession, message: dict[str, Any]) -> None:
        """Other pages on this kernel (a second tab) follow the session without running anything:
        a new cell reaches them as a ``sync`` (cells unrun, outputs from the record), stale marks
        and badges as they are."""
        if not self.link.others(entry.client):
            return
        if message["type"] == "insert_cell":
            self.link.send_others(entry.client, dict(self._record.sync(entry.session)))
        elif message["type"] in ("mark_stale", "update_cell"):
            self.link.send_others(entry.client, message)


def notes_source(n: int, prose: str) -> str:
    """The markdown of step ``n``'s notes cell: folded under a one-line summary that renders as
    such (a hidden input would show the raw markdown of its first line instead)."""
    return (
        f"<details><summary><b>RLM · step {n} · the model's notes</b></summary>\n\n"
        f"{prose}\n\n</details>"
    )


def new_cell_id() -> str:
    """An id for a cell the kernel asks for: a re-sent insert (after a page reload) finds it again."""
    return f"rlm-{uuid.uuid4().hex[:20]}"


def status_message(session: Session) -> dict[str, Any]:
    """The ``status`` message the toolbar shows for ``session``: its snapshot's fields."""
    return {"type": "status", **session.snapshot().fields()}
