"""The process-wide pool of monty workers, and one checked-out worker (a sandbox session).

One pool serves every sandboxed session in the process: entering a pool costs milliseconds and keeps a
warm worker, while each checkout is an isolated REPL on a dedicated worker process. A session holds
its checkout across iterations (that is what keeps its variables) and gives it back when it finishes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic_monty import Monty

if TYPE_CHECKING:
    from pydantic_monty import MontySession

# Live sandbox sessions at once (roots, paused ones, and child RLMs in flight). Finished sessions give
# their worker back, so reaching this means many unfinished sessions or very wide rlm_query fan-out.
MAX_WORKERS = 64
# How long a checkout waits for a free worker before it fails with a message instead of hanging.
CHECKOUT_TIMEOUT = 60.0

_lock = threading.Lock()
_pool: Monty | None = None


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandbox session, fixed when it starts (a checkpoint carries its own limits)."""

    timeout: float | None  # seconds of sandbox execution per block (RLM.iteration_timeout)
    memory_mb: int  # RLM.monty_memory_mb
    max_recursion: int  # RLM.monty_max_recursion
    max_host_calls: int  # RLM.monty_max_host_calls

    def to_monty(self) -> dict[str, Any]:
        limits: dict[str, Any] = {
            "max_memory": self.memory_mb * 2**20,
            "max_recursion_depth": self.max_recursion,
            "max_suspensions": self.max_host_calls,
        }
        if self.timeout and self.timeout > 0:
            limits["max_feed_duration_secs"] = float(self.timeout)
        return limits


def pool() -> Monty:
    global _pool
    with _lock:
        if _pool is None:
            created = Monty(
                min_processes=1, max_processes=MAX_WORKERS, checkout_timeout=CHECKOUT_TIMEOUT
            )
            created.__enter__()
            atexit.register(_close_pool)
            _pool = created
        return _pool


def _close_pool() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            with contextlib.suppress(Exception):  # exiting: nothing useful to do with it
                _pool.__exit__(None, None, None)
            _pool = None


class Worker:
    """One checked-out sandbox session; killed, closed and handed back safely from any thread."""

    def __init__(self, session: MontySession) -> None:
        self.session = session
        # Read now: the property is None while a feed runs on another thread.
        self.pid = session.worker_pid
        self._lock = threading.Lock()
        self._closed = False
        self._busy = False
        self._close_when_idle = False

    @classmethod
    def checkout(cls, limits: SandboxLimits, modules: dict[str, Any]) -> Worker:
        session = pool().checkout(
            limits=limits.to_monty(),  # type: ignore[arg-type]
            external_modules=modules,
            # Sleeping in the sandbox has no use (sub-calls are host calls), and system sleeps are
            # not charged to the time limit: make them return at once so loops of them get stopped.
            os_policy={"sleep": "zero"},
        )
        session.__enter__()
        return cls(session)

    @property
    def closed(self) -> bool:
        """Whether the worker was handed back to the pool."""
        return self._closed

    def begin(self) -> None:
        with self._lock:
            self._busy = True

    def end(self) -> None:
        with self._lock:
            self._busy = False
            close = self._close_when_idle
        if close:
            self.close()

    def kill(self) -> None:
        """Stop the worker process now, even in the middle of a feed (a feed ignores SIGINT)."""
        if self.pid is not None:
            with contextlib.suppress(OSError):  # already gone
                os.kill(self.pid, signal.SIGKILL)

    def close_when_idle(self) -> None:
        """Hand the worker back now, or as soon as the feed or dump running on it returns."""
        with self._lock:
            if self._busy:
                self._close_when_idle = True
                return
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # A killed worker's checkout may complain; the pool replaces the worker anyway.
        with contextlib.suppress(Exception):
            self.session.__exit__(None, None, None)
