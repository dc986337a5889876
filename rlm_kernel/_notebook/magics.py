"""``%rlm``, ``%%rlm`` and ``%%rlm_step``: RLM sessions from a notebook.

The model's code runs in the kernel's own namespace: ``P`` is the context object itself, variables the
model makes are the user's afterwards, and the user's variables are the model's to read.
"""

from __future__ import annotations

import argparse
import difflib
import keyword
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from IPython.core.display_functions import display
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, magics_class, no_var_expand

from .._config import RLM
from .._namespace import RESERVED
from .._session import Session
from ..errors import RLMError
from ..executors import Executor, NamespaceExecutor
from . import _args, _html
from ._frontend import FrontendLink
from ._html import HTML
from ._notebook_session import NotebookSession
from ._recorded import RecordedSessions
from .cells import CellsDriver
from .inline import InlineRenderer, run_inline
from .status import StatusBar

HELP = """Run a Recursive Language Model over a context held in a notebook variable.

  %rlm "question" ctx [options]      answer a question about the variable `ctx` (bound as P)
  %%rlm ctx [options]                the same, with the question as the cell body
  %rlm "follow-up" --continue [--session S]
                                     ask again in the same session (the current one, or S): same
                                     namespace, context, settings and history
  %rlm pause | resume | step | stop [session]
  %rlm resume --from PATH ctx        take a session up again from its trajectory file after a
                                     kernel crash or restart (its code re-runs, no tokens spent;
                                     it runs in this cell, also in JupyterLab)
  %rlm status [session] | list
  %rlm edit N [--session S]          put iteration N's code in a new cell to correct and re-run
  %rlm export PATH [--format json|jsonl|rlm-jsonl|ipynb|sft] [--session S]
  %rlm replay PATH ctx [--speed X] [--step] [--live-fallback]
                                     re-enact a recorded session offline (no API key needed);
                                     --live-fallback asks the model what the recording lacks
  %%rlm_step [SESSION] N             run iteration N's code (an edited re-run rewinds to N);
                                     without SESSION, the current session

Options: --model M  --sub-model M  --max-iterations N  --max-depth N  --mode rlm|auto|baseline
         --executor namespace|monty  --tools f,g  --step (stop before running each step)
         --set NAME=VALUE (any RLM setting; `%config RLM` lists them)

Examples:
  %load_ext rlm_kernel
  %config RLM.model = "gpt-5-mini"
  docs = rlm_kernel.load_context("reports/")
  %rlm "Which three incidents share a root cause?" docs --sub-model gpt-5-nano
  %rlm "And which team owns it?" --continue
"""


@magics_class
class RLMMagics(RecordedSessions, Magics):
    """``%rlm``, ``%%rlm`` and ``%%rlm_step``, and the kernel's sessions: each runs inline, or as
    step cells when the front end can insert them."""

    def __init__(self, shell: Any, settings: RLM) -> None:
        super().__init__(shell)
        self.ip: Any = shell
        self.settings = settings
        self.sessions: dict[str, NotebookSession] = {}
        self.current: NotebookSession | None = None
        self._helper_ids: dict[str, int] = {}
        self._warned: set[str] = set()
        kernel = getattr(shell, "kernel", None)  # None in a terminal IPython: inline only
        self.cells = (
            CellsDriver(FrontendLink(kernel, self._control)) if kernel is not None else None
        )

    # --- magics --------------------------------------------------------------------------------------
    # No $name / {expr} expansion: questions and code often hold both, and the context argument is
    # already evaluated as an expression.
    @no_var_expand
    @line_cell_magic
    def rlm(self, line: str, cell: str | None = None) -> None:
        """Start a session (a ``%%rlm`` body is the question) or run a subcommand; see ``HELP``."""
        tokens = _args.split(line)
        if cell is not None:
            args = _args.parse_start(tokens, line=line, question_from_body=True)
            args.question = cell.strip()
            self._start(args)
            return
        if not tokens:
            raise UsageError('%rlm needs a question and a context, e.g. %rlm "What changed?" ctx')
        if _args.is_subcommand(line, tokens):
            self._subcommand(tokens[0], _args.parse_sub(tokens[0], tokens[1:]))
        else:
            self._start(_args.parse_start(tokens, line=line))

    rlm.__doc__ = HELP

    @no_var_expand
    @cell_magic
    def rlm_step(self, line: str, cell: str) -> None:
        """Run iteration N of SESSION with this cell's code: ``%%rlm_step [SESSION] N``.

        Re-running it after editing the code rewinds the session to N, records the edit, and continues.
        Without SESSION it is the current session (the latest one started, replayed or resumed).
        """
        tokens = _args.split(line)
        if not 1 <= len(tokens) <= 2 or not tokens[-1].isdigit():
            raise UsageError(
                "%%rlm_step needs an iteration, and optionally a session before it: "
                "%%rlm_step 2, or %%rlm_step 3f2a91c0d4e5 2"
            )
        entry = self._lookup(tokens[0] if len(tokens) == 2 else None)
        n = int(tokens[-1])
        client = self._cells_client(entry.session.config)
        if client is not None and self.cells is not None:
            # A step cell the kernel inserted to run by itself says why it did not (the session was
            # stopped or paused meanwhile) rather than failing a Run All with a usage error.
            if not self.cells.inserted_to_run(entry.session.id, n):
                _check_step(entry.session, n)
            self.cells.step_cell(entry, n, cell, client)
        else:
            _check_step(entry.session, n)
            self._run_step(entry, n, cell)

    # --- start ----------------------------------------------------------------------------------------
    def _start(self, args: argparse.Namespace) -> None:
        if args.follow_up:
            self._follow_up(args)
            return
        if not args.question:
            raise UsageError("%rlm: the question is empty")
        if args.context is None:
            raise UsageError(
                f'%rlm: which context? e.g. %rlm "{args.question}" ctx, where ctx is a variable'
            )
        self._refuse_while_running()
        context = self._resolve_context(args.context)
        config = self._config(args)
        self._protect_user_names()
        try:
            session = Session(
                args.question,
                context,
                config=config,
                executor=self._executor(config),
                tools=self._tools(args.tools),
            )
        except RLMError as exc:
            raise UsageError(f"%rlm: {exc}") from None
        self._remember_helpers()
        self._launch(self._register(session, step_mode=args.step))

    def _launch(self, entry: NotebookSession) -> None:
        """Drive a new session: as cells where the front end can insert them, else in this cell."""
        client = self._cells_client(entry.session.config)
        if client is not None and self.cells is not None:
            self.cells.start(entry, client)
            return
        self._show_status(entry)
        if entry.step_mode:
            self._propose_only(entry)
        else:
            self._drive(entry)

    def _cells_client(self, config: RLM) -> str | None:
        """The requesting front end's client session when it can insert cells (cells mode)."""
        if self.cells is None or not config.cells:
            return None
        return self.cells.link.requester()

    def _follow_up(self, args: argparse.Namespace) -> None:
        entry = self._lookup(args.session)
        if entry.session.state not in ("done", "paused"):
            raise UsageError(
                f"%rlm: session {entry.session.id} is {entry.session.state}; it must be done or paused"
            )
        entry.session.follow_up(args.question)
        client = self._cells_client(entry.session.config)
        if client is not None and self.cells is not None:
            self.cells.resume(entry, client)
            return
        self._show_status(entry)
        self._drive(entry)

    def _drive(self, entry: NotebookSession) -> None:
        try:
            run_inline(entry.session)
        finally:
            self._remember_helpers()
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

    # --- steps, edits, control ------------------------------------------------------------------------
    def _run_step(self, entry: NotebookSession, n: int, code: str) -> None:
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
        elif entry.step_mode:
            self._propose_only(entry)
        else:
            self._drive(entry)

    def _subcommand(self, name: str, args: argparse.Namespace) -> None:
        # These three need no session in this kernel (a fresh kernel has none).
        if name == "list":
            self._list()
            return
        if name == "replay":
            self._replay(args)
            return
        if name == "resume" and args.source is not None:
            self._resume_from(args.source, args.session)
            return
        entry = self._lookup(getattr(args, "session", None))
        session = entry.session
        if name in ("pause", "stop"):
            if session.state in ("done", "failed"):
                print(f"Session {session.id} has already ended ({session.reason}).")
                return
            if name == "pause":
                session.pause()
            else:
                session.stop()
            # A magic runs between cells, so no step of this session is running now (a cells-mode
            # session is "running" while it waits for its next step cell): apply it at once.
            session.checkpoint()
            if session.state == "paused":
                print(f"Session {session.id} is paused; `%rlm resume` continues it.")
            else:
                print(f"Session {session.id} is {session.state} ({session.reason}).")
        elif name == "resume":
            if session.state != "paused":
                raise UsageError(
                    f"%rlm resume: session {session.id} is {session.state}, not paused"
                )
            entry.step_mode = False
            client = self._cells_client(session.config)
            if client is not None and self.cells is not None:
                self.cells.resume(entry, client)
            else:
                self._drive(entry)
        elif name == "step":
            client = self._cells_client(session.config)
            if client is None or self.cells is None or session.state == "done":
                self._step(entry)
            elif session.state not in ("paused", "idle"):
                raise UsageError(f"%rlm step: session {session.id} is {session.state}, not paused")
            else:
                entry.step_mode = True
                self.cells.resume(entry, client)
        elif name == "status":
            self._status(entry)
        elif name == "edit":
            self._edit(entry, args.iteration)
        elif name == "export":
            self._export(entry, args)

    def _step(self, entry: NotebookSession) -> None:
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

    def _edit(self, entry: NotebookSession, n: int) -> None:
        session = entry.session
        _check_step(session, n, "%rlm edit")
        pending = session.pending
        if pending is not None and pending.iteration == n:
            code = pending.code
        else:
            code = session.trajectory.iterations[n - 1]["code"]
        source = f"%%rlm_step {session.id} {n}\n{code}"
        self.ip.set_next_input(source, replace=False)
        display(
            HTML(
                _html.notice(
                    f"Edit iteration {n} in the new cell below and run it: the session rewinds to {n} and continues."
                )
            )
        )
        display(HTML(_html.iteration_header(f"rlm {n}", code, "")))

    def _status(self, entry: NotebookSession) -> None:
        s = entry.session
        total = s.usage.total
        lines = [
            f"session    {s.id}  ({s.state}{', ' + s.reason if s.reason else ''})",
            f"question   {s.question}",
            f"iteration  {s.iteration}/{s.config.max_iterations}",
            f"tokens     {total.total_tokens:,} in {total.calls} calls"
            + (f", ${total.cost:.4f}" if total.cost else ""),
            f"saved to   {s.path or '(autosave off)'}",
        ]
        if s.answer is not None:
            lines.append(f"answer     {s.answer}")
        if s.message:
            lines.append(f"note       {s.message}")
        print("\n".join(lines))

    def _list(self) -> None:
        if not self.sessions:
            print("No RLM sessions in this kernel yet.")
            return
        for sid, entry in self.sessions.items():
            mark = "*" if entry is self.current else " "
            s = entry.session
            print(f"{mark} {sid}  {s.state:<7} {s.iteration:>3} it  {s.question[:60]}")

    def _export(self, entry: NotebookSession, args: argparse.Namespace) -> None:
        from ..exporters import export  # only now: a kernel that never exports needs none

        path = Path(args.path).expanduser()
        try:
            written = export(entry.session.trajectory, path, args.format)
        except RLMError as exc:
            raise UsageError(f"%rlm export: {exc}") from None
        print(f"Wrote {written}")

    # --- plumbing -------------------------------------------------------------------------------------
    def _register(self, session: Session, *, step_mode: bool = False) -> NotebookSession:
        entry = NotebookSession(session, step_mode=step_mode)
        self.sessions[session.id] = entry
        self.current = entry
        return entry

    def _refuse_while_running(self) -> None:
        running = [e.session.id for e in self.sessions.values() if e.session.state == "running"]
        if running:
            raise UsageError(
                f"%rlm: session {running[0]} is running; `%rlm pause` or `%rlm stop` it first"
            )

    def _lookup(self, name: str | None) -> NotebookSession:
        if name is None:
            if self.current is None:
                raise UsageError('No RLM session yet: start one with %rlm "question" ctx')
            return self.current
        matches = [e for sid, e in self.sessions.items() if sid.startswith(name)]
        if len(matches) != 1:
            raise UsageError(f"No session {name!r} in this kernel; `%rlm list` shows them")
        return matches[0]

    def _resolve_context(self, name: str) -> object:
        ns = self.ip.user_ns
        if name.isidentifier() and not keyword.iskeyword(name):
            if name not in ns:
                names = [n for n in ns if not n.startswith("_")]
                close = difflib.get_close_matches(name, names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise UsageError(
                    f"%rlm: no variable named {name!r} in this notebook.{hint} Define it first, e.g. "
                    f"{name} = rlm_kernel.load_context('path/or/dir')"
                )
            value = ns[name]
        else:
            try:
                value = eval(name, ns)
            except Exception as exc:
                raise UsageError(
                    f"%rlm: the context {name!r} could not be evaluated: {exc}"
                ) from None
        if value is None or (hasattr(value, "__len__") and len(value) == 0):
            raise UsageError(f"%rlm: the context {name!r} is empty; there is nothing to ask about")
        return value

    def _config(self, args: argparse.Namespace) -> RLM:
        try:
            return self.settings.with_overrides(_args.overrides(args))
        except RLMError as exc:
            raise UsageError(f"%rlm: {exc}") from None

    def _executor(self, config: RLM) -> Executor | None:
        """The kernel's namespace, with the code's output shown live in the cell as it runs."""
        if config.executor != "namespace":
            return None
        return NamespaceExecutor(self.ip.user_ns, echo_stdout=sys.stdout, echo_stderr=sys.stderr)

    def _tools(self, names: str | None) -> dict[str, Any] | None:
        if not names:
            return None
        tools: dict[str, Any] = {}
        for name in (n.strip() for n in names.split(",") if n.strip()):
            fn = self.ip.user_ns.get(name)
            if not callable(fn):
                raise UsageError(
                    f"%rlm --tools: {name!r} is not a function defined in this notebook"
                )
            tools[name] = fn
        return tools

    def _protect_user_names(self) -> None:
        """Keep the user's own variables that share a helper's name, and say so once."""
        ns: MutableMapping[str, Any] = self.ip.user_ns
        saved = ns.setdefault("rlm_saved", {})
        for name in RESERVED:
            if name in ns and id(ns[name]) != self._helper_ids.get(name):
                saved[name] = ns[name]
                if name not in self._warned:
                    self._warned.add(name)
                    print(
                        f"Note: your variable `{name}` is also an RLM helper's name. Its value is kept in "
                        f"rlm_saved[{name!r}]; rename your variable to keep using it directly."
                    )

    def _remember_helpers(self) -> None:
        ns = self.ip.user_ns
        self._helper_ids = {name: id(ns[name]) for name in RESERVED if name in ns}

    def _show_status(self, entry: NotebookSession) -> None:
        if entry.status is None:
            entry.status = StatusBar(entry.session, lambda action: self._button(entry, action))
        entry.status.display()

    def _control(self, action: str, session_id: str) -> None:
        """A toolbar button of the JupyterLab extension (possibly on a subshell thread: flags only)."""
        entry = self.sessions.get(session_id)
        if entry is None or self.cells is None:
            return
        session = entry.session
        if action == "pause":
            session.pause()
        elif action == "stop":
            session.stop()
        elif (
            action in ("resume", "step") and session.state == "paused" and entry.client is not None
        ):
            # The kernel cannot run a cell itself: it asks the front end for one that does.
            self.cells.link.send(
                entry.client,
                {
                    "type": "insert_cell",
                    "request_id": self.cells.link.request_id(),
                    "session": session.id,
                    "iteration": session.iteration,
                    "after_cell_id": self.cells.last_cell(session.id),
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
                    self._step(entry)
                else:
                    entry.step_mode = False
                    self._drive(entry)


def _check_step(session: Session, n: int, magic: str = "%%rlm_step") -> None:
    """A step cell may run the waiting step or re-run an earlier one, nothing else."""
    pending = session.pending
    if (pending is not None and pending.iteration == n) or 1 <= n <= session.iteration:
        return
    have = f"iterations 1–{session.iteration}" if session.iteration else "no iterations yet"
    waiting = f", and step {pending.iteration} is waiting" if pending is not None else ""
    raise UsageError(f"{magic}: session {session.id} has {have}{waiting}; step {n} does not exist")
