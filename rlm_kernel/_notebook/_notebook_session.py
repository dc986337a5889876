"""``NotebookSession``: a session plus what the notebook keeps about it.

Its own module, below the magics and the drivers that share it (``magics``, ``cells``, ``_recorded``),
so that they need not import each other.
"""

from __future__ import annotations

from collections.abc import Callable

from .._session import Session
from .status import StatusBar


class NotebookSession:
    """A session plus what the notebook keeps about it."""

    def __init__(self, session: Session, step_mode: bool) -> None:
        self.session = session
        self.step_mode = step_mode
        self.status: StatusBar | None = None
        # Cells mode: the front end's client session that drives it, and the status feed.
        self.client: str | None = None
        self.unwatch: Callable[[], None] | None = None
