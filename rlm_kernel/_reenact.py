"""A session re-enacting its record: the seam ``rlm_kernel.resume`` (``_recovery``) drives.

Recovery takes a session up again after a crash by running its recorded steps once more on a new
session with the same id, every answer coming from the record, then handing over to the live
clients. While it re-enacts, the session writes no records (they are in the file already) and a few
things happen that a live session never does: the records written so far are put in place, a step
the re-run answered is reopened because the record went on, the recorded ending stands. Those
operations exist only on a ``Reenactment``, which ends with ``go_live``: a live session cannot be
driven through them by mistake.

This module is the session's own (it reaches into ``Session``'s private state on purpose, as one
part of the same concept split out for size); recovery, above it, uses only this and the session's
public surface, and the session never imports either.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from ._config import RLM
from ._endings import Ending
from ._history import History
from ._schema import ForcedCall
from ._session import Session, SubTools, Tools
from ._trajectory import Trajectory, TrajectoryWriter
from .errors import SessionStateError
from .executors import Executor
from .models import ModelClient


class Reenactment:
    """A root session re-enacting ``recording`` (see the module docstring); ``session`` is it."""

    def __init__(
        self,
        recording: Trajectory,
        context: object,
        *,
        config: RLM | None = None,
        client: ModelClient | None = None,
        sub_client: ModelClient | None = None,
        namespace: MutableMapping[str, Any] | None = None,
        executor: Executor | None = None,
        tools: Tools = None,
        sub_tools: SubTools = None,
        output: object = None,
        retriever: object = None,
    ) -> None:
        """A session with the recorded session id, question and preamble (the system and metadata
        messages the model saw), which records nothing until ``go_live``. Drive ``session`` with
        ``propose``, ``execute``, ``rewind`` and ``follow_up`` as the record says, with ``client``
        and ``sub_client`` answering from the record. A typed session (``output=``) is judged by
        ``output`` (the user's class) or else by the recorded JSON schema."""
        self.session = Session(
            recording.session["question"],
            context,
            config=config,
            client=client,
            sub_client=sub_client,
            namespace=namespace,
            executor=executor,
            tools=tools,
            sub_tools=sub_tools,
            output=output,
            retriever=retriever,
            _restore=recording,
        )
        self._live = False

    def restore_records(self, trajectory: Trajectory) -> None:
        """The records the session had written up to this point of the record, which ``rewind``
        and ``execute`` read, and the history they make: what the model saw and answered, even
        where a re-run printed something else."""
        session = self._session("restore_records")
        session.trajectory = trajectory
        session.history = History.of(trajectory.records)

    def reopen(self, reason: str) -> None:
        """From ``done`` back to ``paused``, without an answer, where the re-run submitted one but
        the recorded run went on."""
        session = self._session("reopen")
        session.answer, session.reason, session.message = None, "", ""
        session._set_state("paused", reason)

    def end_as_recorded(
        self, answer: str | None, reason: str, message: str, forced: ForcedCall | None = None
    ) -> None:
        """The recorded ending stands (answer, reason, message and a forced best-answer call),
        whether or not the re-run reached it the same way."""
        session = self._session("end_as_recorded")
        if session.state != "done":
            session._end(Ending(answer, reason, message, forced))
        session.answer, session.reason, session.message = answer, reason, message

    def compact_if_due(self) -> None:
        """Compact the history now if it is due, as the next ``propose`` would first (a recorded
        compaction is re-enacted with it)."""
        self._session("compact_if_due")._compact_if_due()

    def go_live(
        self,
        client: ModelClient,
        sub_client: ModelClient | None = None,
        *,
        writer: TrajectoryWriter | None = None,
        message: str = "",
    ) -> Session:
        """End the re-enactment: from here on every turn and sub-call goes to ``client`` and
        ``sub_client`` (default ``client``; the children share them), and every record is written,
        to ``writer`` when given. ``message`` is what the session says now, unless it is done (a
        finished session keeps its final message). Returns the session, live."""
        session = self._session("go_live")
        self._live = True
        session._tree.go_live(client, sub_client)
        session._engine.client = session._tree.sub_client
        session._recorder.go_live(writer)
        if message and session.state != "done":
            session.message = message
        return session

    def _session(self, method: str) -> Session:
        if self._live:
            raise SessionStateError(
                f"Reenactment.{method} is for a session still re-enacting its record, and this one "
                "has gone live",
                fix="Drive the live session through its own methods (run, step, follow_up)",
            )
        return self.session
