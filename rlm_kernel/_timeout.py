"""Stop runaway iteration code after ``RLM.iteration_timeout`` seconds.

On the main thread, SIGALRM is used: it also interrupts blocking calls such as ``time.sleep``. An alarm
already armed (a parent iteration's, around a child RLM's; a test runner's) is kept: the sooner of the
two deadlines is armed, and the outer one is handed back when the block ends. On other threads, and
where there is no SIGALRM (Windows), a watchdog thread raises the exception asynchronously in the
running thread, which stops pure-Python loops such as ``while True: pass`` but not a blocking call:
the exception lands when the call returns. (So rlm_kernel's own waits inside a block, ``llm_batch``'s
for its sub-calls in ``_aio.run_sync``, are short slices: the exception lands between them, and the
sub-calls are cancelled.) ``uses_alarm()`` makes that choice.

Model code often wraps work in a bare ``except:``, which would swallow a single ``IterationTimeout``.
So a limit keeps firing after its deadline until the block has returned, and under SIGALRM each
firing also makes the next line of the model's own code raise again: the first exception lands in the
``try``, the second in its handler, outside the ``try``. (A watchdog cannot do the second: a loop that
swallows the timeout around a blocking call under a watchdog is stopped only by an outer limit.)

Each ``time_limit`` knows whether it fired: an executor handles only its own limit's exception and
lets an outer one (a parent iteration's, reaching into a child RLM's code) go on. An
``IterationTimeout`` that no active limit fired is the code's own ``raise``: an error like any other
(``outer_fired``).

Model code can switch the alarm off (``signal.signal(SIGALRM, SIG_IGN)``, ``setitimer(0)``). So a
backstop thread runs beside every alarm: from a moment after the deadline it re-arms a disarmed timer
and, while the handler is not ours, raises the timeout in the main thread as a watchdog would. That
stops pure-Python loops; a blocking call with the alarm ignored is stopped only when it returns (the
monty sandbox is the answer for code that must not be trusted). The handler and the outer alarm are
put back when the block ends, whatever the code did.

Off the main thread no signal can reach the code and an asynchronous exception cannot cut a blocking
call short, so ``run_limited`` runs the block on a worker thread (a daemon, in a copy of the caller's
context, so the block's output capture follows it) while the caller waits. When the limit has fired
and the block has still not returned ``ABANDON_AFTER`` seconds later, the caller stops waiting: the
step ends as timed out and the session goes on, and the limit says ``abandoned``. That is the honest
state: the worker may still be blocked, and when its call returns it can still change variables of
the namespace before the pending exception stops it, so the executor tells the model so (and again in
later steps while the thread lives). Its output then goes to the real stream, never into a later
step's observation. An abandoned daemon thread does not keep the process from exiting.

A ``KeyboardInterrupt`` pauses a session only when it is a real interrupt: ``interrupts()`` wraps the
SIGINT handler around a block on the main thread and counts the signals delivered (a kernel
interrupt, Ctrl-C, ``_thread.interrupt_main``); a ``raise KeyboardInterrupt`` in the code is its error.
"""

from __future__ import annotations

import contextvars
import ctypes
import gc
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
# Off the main thread: seconds after the deadline that a block which has not returned is left running.
ABANDON_AFTER = 1.0
# Beside an alarm: seconds after the deadline before the backstop acts (the alarm should have).
BACKSTOP_AFTER = 0.25
_POLL = 0.05
# The limits of the blocks running in this context, outermost first.
_active: contextvars.ContextVar[tuple[Limit, ...]] = contextvars.ContextVar(
    "rlm_limits", default=()
)


@dataclass
class Limit:
    seconds: float
    fired: bool = False
    # Off the main thread: the block did not return after the limit fired and was left running.
    abandoned: bool = False
    worker: threading.Thread | None = field(default=None, repr=False)

    def exception(self) -> IterationTimeout:
        self.fired = True
        return IterationTimeout(self.seconds)


def outer_fired() -> bool:
    """Whether a limit of an enclosing block (a parent iteration's, around a child RLM) has fired."""
    return any(limit.fired for limit in _active.get())


@contextmanager
def time_limit(seconds: float | None) -> Iterator[Limit]:
    """Bound the code in the ``with`` block, run on this thread (see ``run_limited`` for off the
    main thread, where only a worker thread keeps a blocking call from hanging the caller)."""
    limit = Limit(seconds or 0.0)
    with _bounded(limit):
        yield limit


@contextmanager
def _bounded(limit: Limit) -> Iterator[None]:
    token = _active.set((*_active.get(), limit))
    try:
        if not limit.seconds or limit.seconds <= 0:
            yield
        elif uses_alarm():
            with _alarm(limit):
                yield
        else:
            with _watchdog(limit):
                yield
    finally:
        _active.reset(token)


def run_limited(fn: Callable[[], None], limit: Limit) -> None:
    """Run ``fn()`` under ``limit``; raise what it raises, or ``IterationTimeout`` once the limit fired.

    On the main thread (or without a limit) ``fn`` runs here. Elsewhere it runs on a worker thread
    and is abandoned when it has not returned ``ABANDON_AFTER`` seconds after its deadline
    (``limit.abandoned``; ``limit.worker`` is the thread left running).
    """
    seconds = limit.seconds
    if not seconds or seconds <= 0 or threading.current_thread() is threading.main_thread():
        with _bounded(limit):
            fn()
        return
    token = _active.set((*_active.get(), limit))
    try:
        _run_on_worker(fn, limit)
    finally:
        _active.reset(token)


def _run_on_worker(fn: Callable[[], None], limit: Limit) -> None:
    raised: list[BaseException] = []
    done = threading.Event()

    def work() -> None:
        try:
            with _watchdog(limit):
                fn()
        except BaseException as exc:  # handed to the waiting caller
            raised.append(exc)
        finally:
            done.set()

    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(work,), name="rlm-block", daemon=True)
    limit.worker = worker
    worker.start()
    give_up = time.monotonic() + limit.seconds + ABANDON_AFTER
    try:
        # Short waits, not one long one: an outer limit's asynchronous exception lands between them.
        while not done.wait(_POLL):
            if time.monotonic() >= give_up:
                limit.abandoned = True
                raise limit.exception()
    except BaseException:
        limit.abandoned = limit.abandoned or not done.is_set()
        raise
    if raised:
        exc = raised[0]
        raised.clear()  # no reference from here to the block's frames once it is handled
        raise exc


def uses_alarm() -> bool:
    """Whether a limit set now is kept by SIGALRM rather than by a watchdog thread.

    Signals are delivered to the main thread only, and Windows has no SIGALRM or interval timer.
    """
    has_alarm = hasattr(signal, "SIGALRM") and hasattr(signal, "setitimer")
    return has_alarm and threading.current_thread() is threading.main_thread()


_frames_lock = threading.Lock()


def frame_of(thread_id: int) -> FrameType | None:
    """The frame ``thread_id`` is running, from ``sys._current_frames()`` with the cycle collector
    held off. On CPython 3.11 that call holds the interpreter's thread-list lock while it makes frame
    objects; a collection that starts there can run a finalizer that waits for the GIL, while the
    thread holding the GIL waits for the lock to start a thread: the whole process stops
    (python/cpython#106883, fixed this way in 3.12). The soak hit it within minutes, as every
    watchdog asks for frames 20 times a second past its deadline. The lock keeps two callers from
    switching the collector back on under each other."""
    with _frames_lock:
        was_on = gc.isenabled()
        gc.disable()
        try:
            return sys._current_frames().get(thread_id)
        finally:
            if was_on:
                gc.enable()


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
    # A handler of a limit that has ended (left in place when its block was cut short at a bad
    # moment) is no outer limit: the one it replaced is.
    while getattr(outer_handler, "rlm_ended", None):
        outer_handler = outer_handler.rlm_outer  # type: ignore[union-attr]
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    outer = [now + outer_left if outer_left > 0 else math.inf]  # the outer alarm's next firing

    def again(frame: FrameType, event: str, arg: Any) -> Any:
        if not frame.f_code.co_filename.startswith(_MODEL_CODE):
            return None
        if event == "line":  # raising on the "exception" event would only replace the one caught
            raise limit.exception()
        return again

    def fire(signum: int, frame: FrameType | None) -> None:
        if ended or busy:
            # A last firing that arrived while the limit was being taken down, or one that came
            # while the outer handler runs (Python does not block a signal during its handler).
            return
        busy.append(True)
        try:
            _fire(signum, frame)
        finally:
            busy.clear()

    busy: list[bool] = []

    def _fire(signum: int, frame: FrameType | None) -> None:
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

    fire.rlm_ended, fire.rlm_outer = ended, outer_handler  # type: ignore[attr-defined]
    backstop = _Backstop(limit, deadline, fire)
    try:
        signal.signal(signal.SIGALRM, fire)
        first = max(min(deadline, outer[0]) - now, _SOON)
        signal.setitimer(signal.ITIMER_REAL, first, REFIRE_SECONDS)
        backstop.start()
        yield
    finally:
        ended.append(True)
        backstop.finish()
        signal.setitimer(signal.ITIMER_REAL, 0)
        if sys.gettrace() is again:  # not an outer limit's, set after ours
            sys.settrace(previous_trace)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer[0] < math.inf:
            left = max(outer[0] - time.monotonic(), _SOON)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def _raise_in(thread_id: int) -> None:
    """Make ``thread_id`` raise ``IterationTimeout`` at its next bytecode (not inside a C call)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(IterationTimeout)
    )


class _Backstop(threading.Thread):
    """Keeps an alarm's limit when the model's code switched the alarm off (see the docstring)."""

    def __init__(self, limit: Limit, deadline: float, handler: Callable[..., None]) -> None:
        super().__init__(name="rlm-iteration-backstop", daemon=True)
        self._limit, self._deadline, self._handler = limit, deadline, handler
        self._target = threading.get_ident()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._ended = False

    def run(self) -> None:
        wait = max(self._deadline + BACKSTOP_AFTER - time.monotonic(), 0.0)
        for _ in range(_MAX_REFIRES):
            if self._done.wait(wait):
                return
            wait = REFIRE_SECONDS
            with self._lock:
                if self._ended:
                    return
                ours = signal.getsignal(signal.SIGALRM) is self._handler
                if ours and signal.getitimer(signal.ITIMER_REAL)[0] > 0:
                    continue  # the alarm is armed and ours: it does the work
                if ours:  # disarmed by the code (setitimer(0), alarm(0)): arm it again
                    signal.setitimer(signal.ITIMER_REAL, _SOON, REFIRE_SECONDS)
                    continue
                frame = frame_of(self._target)
                if self._limit.fired and not _in_model_code(frame):
                    continue
                self._limit.fired = True
                _raise_in(self._target)

    def finish(self) -> None:
        with self._lock:
            self._ended = True
        self._done.set()


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
                if ended or limit.abandoned:  # abandoned: no one waits for it to stop now
                    return
                frame = frame_of(target)
                if limit.fired and not _in_model_code(frame):
                    continue  # rlm_kernel's own code is running: not there
                limit.fired = True
                _raise_in(target)

    watchdog = threading.Thread(target=fire, name="rlm-iteration-watchdog", daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        ended.append(True)  # first: whatever lands after this is not fired again
        done.set()
        with lock:
            pass  # a firing in progress has finished


@dataclass
class Interrupts:
    """The real interrupts (SIGINT handled by Python) delivered while a block ran."""

    count: int = 0


@contextmanager
def interrupts() -> Iterator[Interrupts]:
    """Count the SIGINTs delivered during the ``with`` block; the handler that was there still acts.

    Only the main thread receives signals; elsewhere (and where the handler was not set from Python,
    so it could not be put back) the count stays 0.
    """
    seen = Interrupts()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield seen
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        seen.count += 1
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)  # whatever the code set meanwhile
