"""The child RLMs a session runs (``rlm_query``): each one run to its end, and stopped with it.

A child is a ``Session`` one level down, sharing its parent's tree (``SessionTree``); the parent
makes it and this runs it, keeps it in ``running`` while it runs (so that stopping or interrupting
the parent stops it too), gives a child that will not be taken up again its executor back, and says
what its parent's code reads: its answer (or why there is none), its trajectory and its usage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ._records import Result
from ._trajectory import Trajectory
from .executors import Executor, release_executor
from .models import UsageSummary


class Child(Protocol):
    """What this module needs of a child session."""

    executor: Executor

    @property
    def state(self) -> str: ...

    def run(self) -> Result: ...

    def stop(self) -> None: ...

    @property
    def trajectory(self) -> Trajectory: ...

    @property
    def usage(self) -> UsageSummary: ...


class Children:
    """The child RLMs of one session running now (``running``)."""

    def __init__(self) -> None:
        self.running: list[Child] = []

    def stop(self) -> None:
        """Stop every child running now, at its next safe point."""
        for child in list(self.running):
            child.stop()

    def run(
        self, make: Callable[[], Child], *, stopping: bool
    ) -> tuple[str, dict[str, Any] | None, UsageSummary]:
        """Make a child and run it: its answer (an ``Error: …`` line when it ended without one),
        its trajectory as a dict and its usage. While its parent is ``stopping`` none is made."""
        if stopping:  # a new child would run to its own limits
            return "Error: the session is stopping; no child RLM was started", None, UsageSummary()
        child = make()
        self.running.append(child)
        try:
            result = child.run()
        finally:
            self.running.remove(child)
            if child.state != "done":  # paused or cut short: nobody will take it up again
                release_executor(child.executor)
        if result.answer is None:
            answer = (
                f"Error: the child RLM ended without an answer ({result.reason}: {result.message})"
            )
        else:
            answer = result.answer
        return answer, child.trajectory.to_dict(), child.usage
