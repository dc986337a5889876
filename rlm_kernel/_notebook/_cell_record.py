"""``CellRecord``: the kernel's record of the cells a cells-mode session asked for, so a page that
(re)connects can be re-synced from it (the ``sync`` message).

A page reload reverts the notebook to its last save; a second page opened on the same kernel has
the saved copy too. Neither has the cells inserted since, and neither has the outputs of the steps
that ran meanwhile. The record keeps, per session, the ``%rlm`` cell's id and the latest
``insert_cell`` message of each live (iteration, role); the trajectory supplies what each step ran
and printed. Stale cells (a rewind) leave the record: they are history, not state.
"""

from __future__ import annotations

from typing import Any

from .._session import Session
from ._protocol import SyncCell, SyncMessage

# Notebook order within one iteration: the model's notes, then its step, then the answer.
_ORDER = {"reasoning": 0, "step": 1, "answer": 2}


class CellRecord:
    """Per session: the ``%rlm`` cell and the insert message of each live cell, in notebook order."""

    def __init__(self) -> None:
        self._start: dict[str, str | None] = {}
        self._cells: dict[str, dict[tuple[int, str], dict[str, Any]]] = {}

    def started(self, session_id: str, start_cell_id: str | None) -> None:
        """The session's ``%rlm`` cell (JupyterLab's id; None from a front end that sends none)."""
        if start_cell_id is not None or session_id not in self._start:
            self._start[session_id] = start_cell_id

    def inserted(self, message: dict[str, Any]) -> None:
        """An ``insert_cell`` was sent: keep it if it is one of the session's cells."""
        role = message["metadata"]["rlm"]["role"]
        if role in _ORDER and message.get("cell_id"):
            cells = self._cells.setdefault(message["session"], {})
            cells[(message["iteration"], role)] = message

    def staled(self, session_id: str, from_iteration: int) -> None:
        """A rewind marked the cells from ``from_iteration`` on stale (or removed them), and removed
        the answer the re-run step (``from_iteration - 1``) or a later one gave."""
        cells = self._cells.get(session_id, {})
        gone = [
            key
            for key in cells
            if key[0] >= from_iteration or (key[1] == "answer" and key[0] >= from_iteration - 1)
        ]
        for key in gone:
            del cells[key]

    def sync(self, session: Session) -> SyncMessage:
        """The ``sync`` message for ``session``: its live cells in order, each step cell with the
        code that ran and what it printed (from the trajectory), the waiting one with none."""
        standing = {record["iteration"]: record for record in session.trajectory.iterations}
        cells: list[SyncCell] = []
        entries = self._cells.get(session.id, {})
        for (iteration, role), message in sorted(
            entries.items(), key=lambda item: (item[0][0], _ORDER[item[0][1]])
        ):
            source: str = message["source"]
            outputs: list[dict[str, Any]] = []
            record = standing.get(iteration) if role == "step" else None
            if record is not None:
                source = f"%%rlm_step {session.id} {iteration}\n{record['code']}"
                text = record["output"] or "(no output)"
                outputs.append({"output_type": "stream", "name": "stdout", "text": text})
            cells.append(
                {
                    "cell_id": message["cell_id"],
                    "cell_type": message["cell_type"],
                    "source": source,
                    "metadata": message["metadata"],
                    "collapsed": message["collapsed"],
                    "outputs": outputs,
                }
            )
        return {
            "type": "sync",
            "session": session.id,
            "start_cell_id": self._start.get(session.id),
            "cells": cells,
        }
