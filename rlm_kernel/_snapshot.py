"""One live snapshot of a session that every live view reads: the CLI's progress line, the inline
status bar, ``rlm_kernel.run()``'s notebook widget, the JupyterLab toolbar (its ``status`` message is
the snapshot's fields) and the live timeline (``session.snapshot()`` for its running totals).

Before it, each view counted on its own and they disagreed. During a 64-prompt ``llm_batch`` the
toolbar read the sub-call engine's slot counter (calls holding one of ``RLM.subcall_concurrency``
slots: at most 16) while the status bar counted every call started and not finished (64), and the
toolbar was only sent on step and state events, so it rarely showed a batch at all. While a child RLM
ran, the status bar summed the session's own usage summary, which takes a child's usage in only when
the child ends, while the toolbar and the CLI line read the tree's budget, which is charged as each
call returns. Here each number has one definition:

- ``in_flight``: sub-calls of the whole tree started and not yet answered, waiting for a slot
  included; ``subcalls``: sub-calls started (an ``rlm_query`` child counts, and so do its own).
- ``tokens``, ``cost``: every call charged to the tree's ``Budget`` so far (root, sub-calls, children,
  as each returns: ``Budget.charged``, the usage that pricing and ``max_tokens`` / ``max_cost`` see);
  ``root_tokens``: the root session's own root-model calls.
- ``iteration``: the step under way (asked for, waiting to run, or running), else the steps that stand.
- ``elapsed``: the running time ``wall_timeout`` counts (paused time left out).

``_events.LiveCounts`` (the tree's ``Emitter.counts``) counts what only the events tell; ``take`` adds
what the session and its budget know at the moment it is read. ``Throttle`` is how views redraw often enough and not
too often, with the last state always drawn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ._events import LiveCounts, StateName
from ._subcalls import Budget
from .models import UsageSummary


@dataclass(frozen=True)
class Snapshot:
    """A session's live numbers at one moment (``session.snapshot()``); its fields, by the same
    names, are the JupyterLab toolbar's ``status`` message (docs/protocol.md)."""

    session: str
    session_state: StateName  # not "state": nbclient takes comm data with "state" for widget state
    iteration: int
    max_iterations: int
    tokens: int
    root_tokens: int
    cost: float | None
    subcalls: int
    in_flight: int
    wave: int  # the most in flight at once since none was: an ``llm_batch``'s size, for a bar
    elapsed: float
    question: str

    def fields(self) -> dict[str, Any]:
        """The snapshot as a plain dict (the ``status`` message's fields but ``type``)."""
        return asdict(self)

    @property
    def answered(self) -> int:
        """Sub-calls of the current wave answered so far (``wave - in_flight``)."""
        return max(self.wave - self.in_flight, 0)


class Observed(Protocol):
    """What ``take`` reads of a session (``Session`` has it)."""

    id: str
    question: str
    state: StateName
    depth: int

    @property
    def iteration(self) -> int: ...

    @property
    def pending(self) -> Any: ...

    @property
    def root_usage(self) -> UsageSummary: ...


def take(session: Observed, counts: LiveCounts, budget: Budget, max_iterations: int) -> Snapshot:
    """The snapshot of ``session`` now."""
    subcalls, in_flight, wave, step, underway = counts.read()
    state = session.state
    pending = session.pending
    standing = session.iteration
    if pending is not None:
        iteration = int(pending.iteration)
    elif underway and state == "running" and step > standing and session.depth == 0:
        iteration = step
    else:
        iteration = standing
    charged = budget.charged
    return Snapshot(
        session=session.id,
        session_state=state,
        iteration=iteration,
        max_iterations=max_iterations,
        tokens=charged.total_tokens,
        root_tokens=session.root_usage.total.total_tokens,
        cost=charged.cost,
        subcalls=subcalls,
        in_flight=in_flight,
        wave=wave,
        elapsed=budget.elapsed,
        question=session.question,
    )


def describe(snap: Snapshot) -> str:
    """The snapshot as one line, the same in the terminal and in the notebook's status bar: state,
    step, tokens (root and the rest), cost when known, sub-calls and those in flight, running time."""
    parts = [
        snap.session_state,
        f"iteration {snap.iteration}/{snap.max_iterations}",
        f"{snap.tokens:,} tokens (root {snap.root_tokens:,} · sub {snap.tokens - snap.root_tokens:,})",
    ]
    if snap.cost is not None:
        parts.append(f"${snap.cost:.4f}")
    parts.append(f"{snap.subcalls:,} sub-calls")
    if snap.in_flight:
        parts.append(f"{snap.in_flight:,} in flight")
    parts.append(f"{snap.elapsed:.1f} s")
    return " · ".join(parts)


class Throttle:
    """Calls ``draw`` at most once every ``interval`` seconds: at once when the last draw is that
    old (or when forced), otherwise once the interval is up. The trailing draw is what makes a view
    show the state it ends in: a batch's last ``SubcallStarted`` arrives inside the interval of the
    one before it, and nothing else happens until its answers come."""

    def __init__(self, draw: Callable[[], object], interval: float) -> None:
        self._draw = draw
        self._interval = interval
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._timer: threading.Timer | None = None
        self._closed = False

    def __call__(self, *, force: bool = False) -> None:
        """Ask for a draw: now, or at the end of the interval."""
        with self._lock:
            if self._closed:
                return
            now = time.monotonic()
            due = self._last + self._interval
            if force or now >= due:
                self._last = now
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            else:
                if self._timer is None:
                    self._timer = threading.Timer(due - now, self._trailing)
                    self._timer.daemon = True
                    self._timer.start()
                return
        self._draw()

    def _trailing(self) -> None:
        with self._lock:
            self._timer = None
            if self._closed:
                return
            self._last = time.monotonic()
        self._draw()

    def close(self) -> None:
        """No more draws (a pending trailing one is dropped)."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
