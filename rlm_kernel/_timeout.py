"""Stop runaway iteration code after ``RLM.iteration_timeout`` seconds.

On the main thread, SIGALRM is used: it also interrupts blocking calls such as ``time.sleep``. An alarm
already armed (a parent iteration's, around a child RLM's; a test runner's) is kept: the sooner of the
two deadlines is armed, and the outer one is handed back when the block ends. On other threads a
watchdog thread raises the exception asynchronously in the running thread, which stops pure-Python
loops such as ``while True: pass``.

Model code often wraps work in a bare ``except:``, which would swallow a single ``IterationTimeout``.
So a limit keeps firing after its deadline until the block has returned, and on the main thread each
firing also makes the next line of the model's own code raise again: the first exception lands in the
``try``, the second in its handler, outside the ``try``. (A watchdog cannot do the second: a loop that
swallows the timeout around a blocking call on a worker thread is stopped only by an outer limit.)

Each ``time_limit`` knows whether it fired: an executor handles only its own limit's exception and
lets an outer one (a parent iteration's, reaching into a child RLM's code) go on.
"""

from __future__ import annotations

import ctypes
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

# After the deadline, how often the limit fires again while the block has not returned.
REFIRE_SECONDS = 0.05
_SOON = 1e-4  # setitimer(0) disarms: a deadline already due is armed this far ahead
# Frames of model code: the executors compile it under file names like "<rlm 3f2a step 2.1>".
_MODEL_CODE = "<rlm "


class IterationTimeout(BaseException):
    """Raised inside iteration code that ran too long.

    A BaseException, like KeyboardInterrupt, so that the model's own ``except Exception`` does not
    swallow it.
    """


@dataclass
class Limit:
    seconds: float
    fired: bool = False

    def exception(self) -> IterationTimeout:
        self.fired = True
        return IterationTimeout(self.seconds)


@contextmanager
def time_limit(seconds: float | None) -> Iterator[Limit]:
    limit = Limit(seconds or 0.0)
    if not seconds or seconds <= 0:
        yield limit
        return
    if threading.current_thread() is threading.main_thread():
        with _alarm(limit):
            yield limit
    else:
        with _watchdog(limit):
            yield limit


@contextmanager
def _alarm(limit: Limit) -> Iterator[None]:
    previous_trace = sys.gettrace()
    ended: list[bool] = []
    now = time.monotonic()
    deadline = now + limit.seconds
    outer_handler = signal.getsignal(signal.SIGALRM)
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    outer_deadline = now + outer_left if outer_left > 0 else math.inf

    def again(frame: FrameType, event: str, arg: Any) -> Any:
        if not frame.f_code.co_filename.startswith(_MODEL_CODE):
            return None
        if event == "line":  # raising on the "exception" event would only replace the one caught
            raise limit.exception()
        return again

    def fire(signum: int, frame: FrameType | None) -> None:
        if ended:
            return  # a last firing that arrived while the limit was being taken down
        now = time.monotonic()
        if now >= outer_deadline and callable(outer_handler):
            outer_handler(signum, frame)  # the outer limit is due: it acts as it would have
            return
        if now < deadline:
            return
        sys.settrace(again)  # new frames; the running ones get it below
        while frame is not None:
            if frame.f_code.co_filename.startswith(_MODEL_CODE):
                frame.f_trace = again
            frame = frame.f_back
        raise limit.exception()

    signal.signal(signal.SIGALRM, fire)
    first = max(min(deadline, outer_deadline) - now, _SOON)
    signal.setitimer(signal.ITIMER_REAL, first, REFIRE_SECONDS)
    try:
        yield
    finally:
        ended.append(True)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_deadline < math.inf:
            left = max(outer_deadline - time.monotonic(), _SOON)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)
        if limit.fired:
            sys.settrace(previous_trace)


@contextmanager
def _watchdog(limit: Limit) -> Iterator[None]:
    target = threading.get_ident()
    done = threading.Event()
    lock = threading.Lock()

    def fire() -> None:
        if done.wait(limit.seconds):
            return
        while True:
            with lock:
                if done.is_set():
                    return
                limit.fired = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(target), ctypes.py_object(IterationTimeout)
                )
            if done.wait(REFIRE_SECONDS):
                return

    watchdog = threading.Thread(target=fire, name="rlm-iteration-watchdog", daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        with lock:
            done.set()
