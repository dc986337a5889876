"""``%rlm``, ``%%rlm`` and ``%%rlm_step``: RLM sessions from a notebook.

The model's code runs in the kernel's own namespace: ``P`` is the context object itself, variables the
model makes are the user's afterwards, and the user's variables are the model's to read.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from IPython.core.display_functions import display
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, magics_class, no_var_expand

from .._config import RLM
from .._retrieval_tools import open_spec
from .._session import Session
from ..errors import RLMError
from . import _args, _html
from ._frontend import FrontendLink
from ._html import HTML
from ._notebook_session import Driver, NotebookSession
from ._recorded import RecordedSessions
from ._registry import SessionRegistry
from ._workspace import Workspace
from .cells import CellsDriver
from .inline import InlineDriver, check_step

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
                                     (--retriever R: the collection it searched)
  %rlm status [session] | list
  %rlm models [--model M] [--sub-model M] [--base-url U]
                                     the endpoint's models (GET /models), the root and sub
                                     models marked, with the price used when it reports none
  %rlm edit N [--session S]          put iteration N's code in a new cell to correct and re-run
  %rlm export PATH [--format json|jsonl|rlm-jsonl|ipynb|sft] [--session S]
  %rlm replay PATH ctx [--speed X] [--step] [--live-fallback] [--output T] [--retriever R]
                                     re-enact a recorded session offline (no API key needed);
                                     --live-fallback asks the model what the recording lacks;
                                     --output T validates a typed one's answer as T again
  %%rlm_step [SESSION] N             run iteration N's code (an edited re-run rewinds to N);
                                     without SESSION, the current session

Options: --model M  --sub-model M  --max-iterations N  --max-depth N  --mode rlm|auto|baseline
         --executor namespace|monty  --tools f,g  --step (stop before running each step)
         --sub-tools f,g (functions or rlm_kernel.MCPServer specs the sub-models may call)
         --output T (the answer's type: a pydantic model, TypedDict, type or JSON schema dict in
         the notebook; it is validated, and rlm_kernel.current_session().value holds it)
         --include GLOB  --exclude GLOB (repeatable: which files of a directory context load,
         when ctx holds its path; .gitignore and the default skips apply: README "Loading a
         directory")
         --retriever R (a collection to search: a retriever in the notebook, or an index
         path or postgresql:// DSN; ctx may then be left out)
         --set NAME=VALUE (any RLM setting; `%config RLM` lists them)

Examples:
  %load_ext rlm_kernel
  %config RLM.model = "gpt-5-mini"
  docs = rlm_kernel.load_context("reports/")
  %rlm "Which three incidents share a root cause?" docs --sub-model gpt-5-nano
  %rlm "And which team owns it?" --continue
"""


@magics_class
class RLMMagics(Magics):
    """``%rlm``, ``%%rlm`` and ``%%rlm_step``, and the kernel's sessions: each runs inline, or as
    step cells when the front end that starts it can insert them."""

    def __init__(self, shell: Any, settings: RLM) -> None:
        super().__init__(shell)
        self.ip: Any = shell
        self.settings = settings
        self.sessions = SessionRegistry()
        self.workspace = Workspace(shell)
        self.inline = InlineDriver(self.workspace)
        kernel = getattr(shell, "kernel", None)  # None in a terminal IPython: inline only
        self.cells = (
            CellsDriver(FrontendLink(kernel, self._control), self.inline)
            if kernel is not None
            else None
        )
        self.recorded = RecordedSessions(
            settings, self.workspace, self.sessions, self._driver_for, self.inline
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
        entry = self.sessions.lookup(tokens[0] if len(tokens) == 2 else None)
        entry.driver.step_cell(entry, int(tokens[-1]), cell)

    # --- start ----------------------------------------------------------------------------------------
    def _start(self, args: argparse.Namespace) -> None:
        if args.follow_up:
            self._follow_up(args)
            return
        if not args.question:
            raise UsageError("%rlm: the question is empty")
        if args.context is None and args.retriever is None:
            raise UsageError(
                f'%rlm: which context? e.g. %rlm "{args.question}" ctx, where ctx is a variable '
                "(or --retriever NAME for a collection to search)"
            )
        self.sessions.refuse_while_running()
        context = None if args.context is None else self.workspace.resolve_context(args.context)
        _args.refuse_load_flags(args, context)
        config = self._config(args)
        self.workspace.protect_user_names(context)
        try:
            retriever = self._retriever(args.retriever)
            session = Session(
                args.question,
                context,
                retriever=retriever,
                config=config,
                executor=self.workspace.executor(config),
                tools=self.workspace.tools(args.tools),
                output=self.workspace.output(args.output),
                sub_tools=self.workspace.tools(args.sub_tools, "--sub-tools"),
            )
        except RLMError as exc:
            raise UsageError(f"%rlm: {exc}") from None
        self.workspace.remember_helpers()
        entry = NotebookSession(session, self._driver_for(session.config), step_mode=args.step)
        self.sessions.add(entry)
        entry.driver.start(entry)

    def _retriever(self, spec: str | None) -> object:
        """``--retriever``: a notebook variable by that name, else an index path or DSN."""
        return None if spec is None else open_spec(spec, self.workspace.user_ns)

    def _driver_for(self, config: RLM) -> Driver:
        """A new session's driver, kept for its life: cells when the requesting front end can insert
        them and ``RLM.cells`` is on, else inline."""
        if self.cells is not None and config.cells and self.cells.link.requester() is not None:
            return self.cells
        return self.inline

    def _follow_up(self, args: argparse.Namespace) -> None:
        entry = self.sessions.lookup(args.session)
        if entry.session.state not in ("done", "paused"):
            raise UsageError(
                f"%rlm: session {entry.session.id} is {entry.session.state}; it must be done or paused"
            )
        entry.session.follow_up(args.question)
        entry.driver.follow_up(entry)

    # --- subcommands ----------------------------------------------------------------------------------
    def _subcommand(self, name: str, args: argparse.Namespace) -> None:
        # These three need no session in this kernel (a fresh kernel has none).
        if name == "list":
            print(self.sessions.listing())
            return
        if name == "models":
            self._models(args)
            return
        if name == "replay":
            self.recorded.replay(args)
            return
        if name == "resume" and args.source is not None:
            self.recorded.resume_from(args.source, args.session, args.retriever)
            return
        entry = self.sessions.lookup(getattr(args, "session", None))
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
            if self._rerun_waiting(entry):
                return
            if session.state != "paused":
                raise UsageError(
                    f"%rlm resume: session {session.id} is {session.state}, not paused"
                )
            entry.step_mode = False
            entry.driver.resume(entry)
        elif name == "step":
            entry.driver.step(entry)
        elif name == "status":
            self._status(entry)
        elif name == "edit":
            self._edit(entry, args.iteration)
        elif name == "export":
            self._export(entry, args)

    def _edit(self, entry: NotebookSession, n: int) -> None:
        session = entry.session
        check_step(session, n, "%rlm edit")
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

    def _models(self, args: argparse.Namespace) -> None:
        from .._models_list import list_models  # only now: it asks the endpoint

        names = ("model", "sub_model", "base_url")
        given = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
        try:
            listing = list_models(self.settings.with_overrides(given))
        except RLMError as exc:
            raise UsageError(f"%rlm models: {exc}") from None
        display(listing)

    def _status(self, entry: NotebookSession) -> None:
        s = entry.session
        # The numbers every live view shows (a running child's calls included), not s.usage, which
        # takes a child's usage in only when it ends.
        snap = s.snapshot()
        lines = [
            f"session    {s.id}  ({s.state}{', ' + s.reason if s.reason else ''})",
            f"question   {s.question}",
            f"iteration  {s.iteration}/{s.config.max_iterations}",
            f"tokens     {snap.tokens:,} (root {snap.root_tokens:,}), {snap.subcalls:,} sub-calls"
            + (f", ${snap.cost:.4f}" if snap.cost else ""),
            f"saved to   {s.path or '(autosave off)'}",
        ]
        if s.answer is not None:
            lines.append(f"answer     {s.answer}")
        if s.message:
            lines.append(f"note       {s.message}")
        print("\n".join(lines))

    def _export(self, entry: NotebookSession, args: argparse.Namespace) -> None:
        from ..exporters import export  # only now: a kernel that never exports needs none

        path = Path(args.path).expanduser()
        try:
            written = export(entry.session.trajectory, path, args.format)
        except RLMError as exc:
            raise UsageError(f"%rlm export: {exc}") from None
        print(f"Wrote {written}")

    # --- plumbing -------------------------------------------------------------------------------------
    def _config(self, args: argparse.Namespace) -> RLM:
        try:
            return self.settings.with_overrides(_args.overrides(args))
        except RLMError as exc:
            raise UsageError(f"%rlm: {exc}") from None

    def _rerun_waiting(self, entry: NotebookSession) -> bool:
        """A cells session that is ``running`` with no step running (a magic runs between cells)
        waits for a step cell that no page ran: ``%rlm resume`` runs it from here."""
        return (
            self.cells is not None
            and entry.driver is self.cells
            and self.cells.rerun_waiting(entry)
        )

    def _control(self, action: str, session_id: str) -> None:
        """A toolbar button of the JupyterLab extension (possibly on a subshell thread: flags only)."""
        entry = self.sessions.get(session_id)
        if entry is None or self.cells is None:
            return
        self.cells.control(entry, action)
