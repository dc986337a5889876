"""``%rlm replay`` and ``%rlm resume --from``: sessions that come from a recording.

A mixin of ``RLMMagics``: a replay re-enacts a recorded session with the model's answers served from the
record; a resume after a crash re-runs the finished steps that way, then goes on live.
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from IPython.core.display_functions import display
from IPython.core.error import UsageError

from .._config import RLM
from .._recovery import resume, resumed_config
from .._replay import replay_session
from .._session import Session
from .._trajectory import Trajectory
from ..errors import RecoveryWarning, RLMError
from ..executors import Executor, NamespaceExecutor
from ..models import ModelClient
from . import _html
from ._html import HTML
from ._notebook_session import NotebookSession


class RecordedSessions:
    ip: Any
    settings: RLM
    sessions: dict[str, NotebookSession]

    if TYPE_CHECKING:  # provided by RLMMagics

        def _refuse_while_running(self) -> None: ...

        def _resolve_context(self, name: str) -> object: ...

        def _protect_user_names(self) -> None: ...

        def _remember_helpers(self) -> None: ...

        def _executor(self, config: RLM) -> Executor | None: ...

        def _register(self, session: Session, *, step_mode: bool = False) -> NotebookSession: ...

        def _show_status(self, entry: NotebookSession) -> None: ...

        def _drive(self, entry: NotebookSession) -> None: ...

        def _launch(self, entry: NotebookSession) -> None: ...

    def _replay(self, args: argparse.Namespace) -> None:
        if args.context is None:
            raise UsageError(
                f"%rlm replay: which context? Pass the variable the session was recorded on: "
                f"%rlm replay {args.path} ctx"
            )
        self._refuse_while_running()
        context = self._resolve_context(args.context)
        try:
            recording = Trajectory.load(Path(args.path).expanduser())
            fallback = self._live_fallback() if args.live_fallback else None
            self._protect_user_names()
            session = replay_session(
                recording,
                None,
                context,
                executor=self._executor(self.settings),
                speed=args.speed,
                base=self.settings,
                fallback=fallback,
            )
        except RLMError as exc:
            raise UsageError(f"%rlm replay: {exc}") from None
        self._remember_helpers()
        self._launch(self._register(session, step_mode=args.step))

    def _live_fallback(self) -> ModelClient:
        from ..models.openai import OpenAIClient  # only now: the SDK is slow to import

        try:
            return OpenAIClient(self.settings)
        except RLMError as exc:
            raise UsageError(
                f"%rlm replay --live-fallback needs a model to ask what the recording lacks: {exc}"
            ) from None

    def _resume_from(self, source: str, context_name: str | None) -> None:
        """``%rlm resume --from PATH ctx``: ``rlm_kernel.resume``, then on with the live model, inline."""
        path = Path(source).expanduser()
        if context_name is None:
            raise UsageError(
                f"%rlm resume --from: which context? The record keeps only the context's "
                f"fingerprint, never the context: %rlm resume --from {source} ctx, where ctx holds "
                "what the session ran on"
            )
        self._refuse_while_running()
        context = self._resolve_context(context_name)
        gates: list[_Gate] = []
        try:
            recording = Trajectory.load(path)
            sid = recording.session["session_id"]
            if sid in self.sessions:  # two live copies would both append to one file
                raise UsageError(
                    f"%rlm resume --from: session {sid} is already in this kernel; "
                    f"`%rlm resume {sid}` continues it"
                )
            config = resumed_config(recording, self.settings)
            self._protect_user_names()
            executor, gates = self._gated_executor(config)
            for gate in gates:
                gate.open = False
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RecoveryWarning)
                session = resume(path, context, config=config, executor=executor)
        except RLMError as exc:
            raise UsageError(f"%rlm resume: {exc}") from None
        finally:
            for gate in gates:
                gate.open = True
        self._remember_helpers()
        entry = self._register(session)
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
        self._show_status(entry)
        self._drive(entry)

    def _gated_executor(self, config: RLM) -> tuple[Executor | None, list[_Gate]]:
        """``_executor`` whose live output can be shut off (the gates) while a resume catches up."""
        if config.executor != "namespace":
            return None, []
        gates = [_Gate(sys.stdout), _Gate(sys.stderr)]
        executor = NamespaceExecutor(
            self.ip.user_ns,
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
