"""Stop runaway iteration code after ``RLM.iteration_timeout`` seconds.

On the main thread, SIGALRM is used: it also interrupts blocking calls such as ``time.sleep``. An alarm
already armed (a parent iteration's, around a child RLM's; a test runner's) is kept: the sooner of the
two deadlines is armed, and the outer one is handed back when the block ends. On other threads, and
where there is no SIGALRM (Windows), a watchdog thread raises the exception asynchronously in the
running thread, which stops pure-Python loops such as ``while True: pass`` but not a blocking call:
the exception lands when the call returns. ``uses_alarm()`` makes that choice.

Model code often wraps work in a bare ``except:``, which would swallow a single ``IterationTimeout``.
So a limit keeps firing after its deadline until the block has returned, and under SIGALRM each
firing also makes the next line of the model's own code raise again: the first exception lands in the
``try``, the second in its handler, outside the ``try``. (A watchdog cannot do the second: a loop that
swallows the timeout around a blocking call under a watchdog is stopped only by an outer limit.)

Each ``time_limit`` knows whether it fired: an executor handles only its own limit's exception and
lets an outer one (a parent iteration's, reaching into a child RLM's code) go on.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from .errors import IterationTimeout

# After the deadline, how often the limit fires again while the block has not returned.
REFIRE_SECONDS = 0.05
_SOON = 1e-4  # setitimer(0) disarms: a deadline already due is armed this far ahead
_MAX_REFIRES = 1200  # a watchdog gives up after a minute of firings past the deadline
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Frames of model code: the executors compile it under file names like "<rlm 3f2a step 2.1>".
_MODEL_CODE = "<rlm "


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
    if uses_alarm():
        with _alarm(limit):
            yield limit
    else:
        with _watchdog(limit):
            yield limit


def uses_alarm() -> bool:
    """Whether a limit set now is kept by SIGALRM rather than by a watchdog thread.

    Signals are delivered to the main thread only, and Windows has no SIGALRM or interval timer.
    """
    has_alarm = hasattr(signal, "SIGALRM") and hasattr(signal, "setitimer")
    return has_alarm and threading.current_thread() is threading.main_thread()


def _in_model_code(frame: FrameType | None) -> bool:
    """Whether the model's code is running, rather than rlm_kernel's own (its exec machinery, a
    sub-call, cleanup after a timeout): a repeated firing must land in the former only."""
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_MODEL_CODE):
            return True
        if name.startswith(_PACKAGE):
            return False
        frame = frame.f_back
    return False


@contextmanager
def _alarm(limit: Limit) -> Iterator[None]:
    previous_trace = sys.gettrace()
    ended: list[bool] = []
    now = time.monotonic()
    deadline = now + limit.seconds
    outer_handler = signal.getsignal(signal.SIGALRM)
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    outer = [now + outer_left if outer_left > 0 else math.inf]  # the outer alarm's next firing

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
        if now >= outer[0]:
            # The outer alarm is due: it acts as it would have (and may raise), once per firing.
            outer[0] = outer[0] + outer_interval if outer_interval > 0 else math.inf
            if callable(outer_handler):
                outer_handler(signum, frame)
        if now < deadline or (limit.fired and not _in_model_code(frame)):
            return
        sys.settrace(again)  # new frames; the running ones get it below
        running = frame
        while running is not None:
            if running.f_code.co_filename.startswith(_MODEL_CODE):
                running.f_trace = again
            running = running.f_back
        raise limit.exception()

    signal.signal(signal.SIGALRM, fire)
    try:
        first = max(min(deadline, outer[0]) - now, _SOON)
        signal.setitimer(signal.ITIMER_REAL, first, REFIRE_SECONDS)
        yield
    finally:
        ended.append(True)
        signal.setitimer(signal.ITIMER_REAL, 0)
        if sys.gettrace() is again:  # not an outer limit's, set after ours
            sys.settrace(previous_trace)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer[0] < math.inf:
            left = max(outer[0] - time.monotonic(), _SOON)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


@contextmanager
def _watchdog(limit: Limit) -> Iterator[None]:
    target = threading.get_ident()
    ended: list[bool] = []
    done = threading.Event()
    lock = threading.Lock()

    def fire() -> None:
        wait = limit.seconds
        for _ in range(_MAX_REFIRES):
            if done.wait(wait):
                return
            wait = REFIRE_SECONDS
            with lock:
                if ended:
                    return
                frame = sys._current_frames().get(target)
                if limit.fired and not _in_model_code(frame):
                    continue  # rlm_kernel's own code is running: not there
                limit.fired = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(target), ctypes.py_object(IterationTimeout)
                )

    watchdog = threading.Thread(target=fire, name="rlm-iteration-watchdog", daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        ended.append(True)  # first: whatever lands after this is not fired again
        done.set()
        with lock:
            pass  # a firing in progress has finished
