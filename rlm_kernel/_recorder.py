"""Where a session's records go: its trajectory in memory and, for an autosaving root, its file.

Every record a session makes is appended to its ``Trajectory`` and, when ``RLM.autosave`` is on for a
root session, written to a JSONL file as it happens (``TrajectoryWriter``: crash-safe, and a failing
disk is held as ``failed`` rather than raised mid-step). A session re-enacting its recording
(``Reenactment``) writes nothing until it goes live: its records are in the file already. The autosave
file's name is made here and only here, for new sessions and for a recovery that starts a new file.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ._config import RLM
from ._schema import Record
from ._secrets import Redactor
from ._trajectory import Trajectory, TrajectoryWriter
from .errors import AutosaveError


def autosave_path(config: RLM, session_id: str, number: int = 1) -> Path:
    """The autosave file of a session started now: ``<trajectory_dir>/<stamp>-<id>.jsonl``, with
    ``-<number>`` from the second file of one session on."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = "" if number == 1 else f"-{number}"
    return config.resolved_trajectory_dir() / f"{stamp}-{session_id}{suffix}.jsonl"


class Recorder:
    """A session's records: ``trajectory`` in memory, ``writer`` to its file (None when it has
    none), and whether it is ``restoring`` (then nothing is recorded)."""

    def __init__(self, writer: TrajectoryWriter | None = None, *, restoring: bool = False) -> None:
        self.trajectory = Trajectory()
        self.writer = writer
        self.restoring = restoring

    @classmethod
    def autosaving(cls, config: RLM, session_id: str, redactor: Redactor) -> Recorder:
        """A recorder that also writes every record, scrubbed, to the session's autosave file."""
        return cls(TrajectoryWriter(autosave_path(config, session_id), redactor))

    @property
    def path(self) -> Path | None:
        """The file the records are written to, if any."""
        return self.writer.path if self.writer else None

    @property
    def failed(self) -> AutosaveError | None:
        """Why the file stopped taking records (a full disk, a removed directory), if it did."""
        return self.writer.error if self.writer else None

    def record(self, record: Record) -> None:
        """Append ``record`` to the trajectory and the file (nothing while restoring)."""
        if self.restoring:
            return
        self.trajectory.append(record)
        if self.writer is not None:
            self.writer.write(record)

    def catch_up(self) -> None:
        """After a failed autosave: write the file whole again from memory, or fail again."""
        if self.writer is not None:
            self.writer.catch_up(self.trajectory.records)

    def close(self) -> None:
        """Close the file (the session finished its question; a follow-up reopens it to append)."""
        if self.writer is not None:
            self.writer.close()

    def go_live(self, writer: TrajectoryWriter | None) -> None:
        """The re-enactment is over: from now on records are kept, and written to ``writer``."""
        self.restoring = False
        self.writer = writer
