"""``%rlm replay`` and ``%rlm resume --from``: sessions that come from a recording.

A replay re-enacts a recorded session with the model's answers served from the record; a resume after
a crash re-runs the finished steps that way, then goes on live.
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, cast

from IPython.core.display_functions import display
from IPython.core.error import UsageError

from .._config import RLM
from .._recovery import resume, resumed_config
from .._replay import replay_session
from .._retrieval_tools import open_spec
from .._trajectory import Trajectory
from ..errors import RecoveryWarning, RLMError
from ..executors import Executor, NamespaceExecutor
from ..models import ModelClient
from . import _html
from ._html import HTML
from ._notebook_session import Driver, NotebookSession
from ._registry import SessionRegistry
from ._workspace import Workspace


class RecordedSessions:
    """Starts the sessions that come from a recording and adds them to ``registry``.

    ``settings`` are the kernel's ``RLM`` settings, ``workspace`` the namespace the code runs in,
    ``choose`` the driver for a new session by its settings (as for ``%rlm``), and ``inline`` the
    driver of a resumed session, which runs in the resume cell whatever the front end.
    """

    def __init__(
        self,
        settings: RLM,
        workspace: Workspace,
        registry: SessionRegistry,
        choose: Callable[[RLM], Driver],
        inline: Driver,
    ) -> None:
        self._settings = settings
        self._workspace = workspace
        self._registry = registry
        self._choose = choose
        self._inline = inline

    def replay(self, args: argparse.Namespace) -> None:
        """``%rlm replay PATH ctx``: re-enact the recording, driven as a new ``%rlm`` session is."""
        if args.context is None and args.retriever is None:
            raise UsageError(
                f"%rlm replay: which context? Pass the variable the session was recorded on: "
                f"%rlm replay {args.path} ctx (or --retriever R for one that searched a collection)"
            )
        self._registry.refuse_while_running()
        context = None if args.context is None else self._workspace.resolve_context(args.context)
        try:
            retriever = (
                None
                if args.retriever is None
                else open_spec(args.retriever, self._workspace.user_ns)
            )
            recording = Trajectory.load(Path(args.path).expanduser())
            fallback = self._live_fallback() if args.live_fallback else None
            self._workspace.protect_user_names(context)
            session = replay_session(
                recording,
                None,
                context,
                executor=self._workspace.executor(self._settings),
                speed=args.speed,
                base=self._settings,
                fallback=fallback,
                output=self._workspace.output(args.output),
                retriever=retriever,
            )
        except RLMError as exc:
            raise UsageError(f"%rlm replay: {exc}") from None
        self._workspace.remember_helpers()
        entry = NotebookSession(session, self._choose(session.config), step_mode=args.step)
        self._registry.add(entry)
        entry.driver.start(entry)

    def _live_fallback(self) -> ModelClient:
        from ..models.openai import OpenAIClient  # only now: the SDK is slow to import

        try:
            return OpenAIClient(self._settings)
        except RLMError as exc:
            raise UsageError(
                f"%rlm replay --live-fallback needs a model to ask what the recording lacks: {exc}"
            ) from None

    def resume_from(
        self, source: str, context_name: str | None, retriever_spec: str | None = None
    ) -> None:
        """``%rlm resume --from PATH ctx [--retriever R]``: ``rlm_kernel.resume``, then on with the
        live model, inline."""
        path = Path(source).expanduser()
        if context_name is None and retriever_spec is None:
            raise UsageError(
                f"%rlm resume --from: which context? The record keeps only the context's "
                f"fingerprint, never the context: %rlm resume --from {source} ctx, where ctx holds "
                "what the session ran on"
            )
        self._registry.refuse_while_running()
        context = None if context_name is None else self._workspace.resolve_context(context_name)
        gates: list[_Gate] = []
        try:
            retriever = None
            if retriever_spec is not None:
                retriever = open_spec(retriever_spec, self._workspace.user_ns)
            recording = Trajectory.load(path)
            sid = recording.session["session_id"]
            if sid in self._registry:  # two live copies would both append to one file
                raise UsageError(
                    f"%rlm resume --from: session {sid} is already in this kernel; "
                    f"`%rlm resume {sid}` continues it"
                )
            config = resumed_config(recording, self._settings)
            self._workspace.protect_user_names(context)
            executor, gates = self._gated_executor(config)
            for gate in gates:
                gate.open = False
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RecoveryWarning)
                session = resume(
                    path, context, config=config, executor=executor, retriever=retriever
                )
        except RLMError as exc:
            raise UsageError(f"%rlm resume: {exc}") from None
        finally:
            for gate in gates:
                gate.open = True
        self._workspace.remember_helpers()
        entry = self._registry.add(NotebookSession(session, self._inline))
        steps = len(session.trajectory.iterations)
        display(
            HTML(
                _html.notice(
                    f"Session {session.id} taken up again from {path}: re-ran {steps} recorded "
                    "step(s) with the recorded model answers (no tokens spent); new records are "
                    f"appended to {session.path or '(autosave off)'}."
                )
            )
        )
        for warning in caught:
            if isinstance(warning.message, RecoveryWarning):
                display(HTML(_html.error_block(str(warning.message))))
        if session.state == "done":
            display(HTML(_html.answer_block(session.answer, session.reason, session.message)))
            print('It had finished; `%rlm "follow-up" --continue` asks it something new.')
            return
        entry.driver.start(entry)  # inline, not in step mode: the status bar, then the run

    def _gated_executor(self, config: RLM) -> tuple[Executor | None, list[_Gate]]:
        """``Workspace.executor`` whose live output can be shut off (the gates) while a resume
        catches up."""
        if config.executor != "namespace":
            return None, []
        gates = [_Gate(sys.stdout), _Gate(sys.stderr)]
        executor = NamespaceExecutor(
            self._workspace.user_ns,
            echo_stdout=cast(TextIO, gates[0]),
            echo_stderr=cast(TextIO, gates[1]),
        )
        return executor, gates


class _Gate(io.TextIOBase):
    """Passes the code's output through to the cell, except while it is closed: re-running a resumed
    session's recorded steps should not replay their old prints into the resume cell."""

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self.open = True

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.open:
            self.target.write(text)
        return len(text)

    def flush(self) -> None:
        self.target.flush()
