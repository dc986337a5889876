"""``NotebookSession`` and ``Driver``: a session plus what the notebook keeps about it, and how it is driven.

Their own module, below the magics and the drivers that share them (``magics``, ``inline``, ``cells``,
``_recorded``), so that those need not import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .._session import Session
from .status import StatusBar


class Driver(Protocol):
    """How a notebook session's steps are run: in the cell that asks (``inline.InlineDriver``) or as
    step cells the front end inserts (``cells.CellsDriver``).

    A session's driver is chosen once, when the session is created, and kept with it. The magics
    check what all sessions share (the session exists, its state allows the command) and hand the
    rest to the session's driver.
    """

    def start(self, entry: NotebookSession) -> None:
        """A new session (``%rlm``, ``%rlm replay``): run it, or in step mode propose its first step."""

    def follow_up(self, entry: NotebookSession) -> None:
        """After ``Session.follow_up``: answer the new question."""

    def resume(self, entry: NotebookSession) -> None:
        """``%rlm resume`` of a paused session: go on until it finishes or pauses."""

    def step(self, entry: NotebookSession) -> None:
        """``%rlm step``: run the waiting step, then stop before the next one."""

    def step_cell(self, entry: NotebookSession, n: int, code: str) -> None:
        """A ``%%rlm_step N`` cell: run step ``n`` with ``code`` (an earlier step rewinds to it)."""


class NotebookSession:
    """A session plus what the notebook keeps about it: its driver, whether it is in step mode, its
    inline status bar, and in cells mode the front end that drives it."""

    def __init__(self, session: Session, driver: Driver, *, step_mode: bool = False) -> None:
        self.session = session
        self.driver = driver
        self.step_mode = step_mode
        self.status: StatusBar | None = None
        # Cells mode: the front end's client session that drives it, and the status feed.
        self.client: str | None = None
        self.unwatch: Callable[[], None] | None = None
