"""Stop runaway iteration code after ``RLM.iteration_timeout`` seconds.

On the main thread with no alarm already armed, SIGALRM is used: it also interrupts blocking calls such
as ``time.sleep``. Anywhere else (a worker thread, or a child RLM nested inside an iteration whose alarm is
already armed) a watchdog thread raises the exception asynchronously in the running thread, which stops
pure-Python loops such as ``while True: pass``.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class IterationTimeout(BaseException):
    """Raised inside iteration code that ran too long.

    A BaseException, like KeyboardInterrupt, so that the model's own ``except Exception`` does not
    swallow it.
    """


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    if not seconds or seconds <= 0:
        yield
        return
    on_main = threading.current_thread() is threading.main_thread()
    if on_main and signal.getitimer(signal.ITIMER_REAL)[0] == 0:
        with _alarm(seconds):
            yield
    else:
        with _watchdog(seconds):
            yield


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def fire(signum: int, frame: FrameType | None) -> None:
        raise IterationTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    target = threading.get_ident()
    done = threading.Event()
    lock = threading.Lock()

    def fire() -> None:
        with lock:
            if not done.is_set():
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(target), ctypes.py_object(IterationTimeout)
                )

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            done.set()
        timer.cancel()
