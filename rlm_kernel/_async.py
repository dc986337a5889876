"""The async API: ``AsyncSession``, and what ``rlm_kernel.arun`` runs on.

One implementation, the synchronous ``Session``, with thin async wrappers; not a second loop. The
model's code blocks (``exec``, ``time.sleep``, a sub-call's wait), so it has to run on a thread
whatever drives it; per-session output capture (``_capture``) and timeouts that hold off the main
thread (``_timeout``) already make a session safe on any thread; and sub-calls already run on
rlm_kernel's own background loop (``_aio``). An async copy of the state machine would duplicate it
for nothing a caller could see.

Each awaited call runs the sync method on a thread of its own, in a copy of the caller's context, and
resolves a future on the caller's loop with ``call_soon_threadsafe``; the loop only queues the call,
and a spawner thread starts its thread (``Thread.start`` waits for the new thread to run, which under
load held the loop up for tens of milliseconds a call). Not the loop's default executor:
its ``min(32, cores + 4)`` workers would queue concurrent runs beyond that count behind each other. An
``AsyncSession`` takes one call at a time; a second that overlaps the first is a
``SessionStateError``. ``pause()`` and ``stop()`` may be called at any time, from any thread.

Cancelling the task that awaits a call asks the session to **pause** (``AsyncSession``: the session
is kept, as after a kernel interrupt, and ``await s.run()`` goes on from there; ``s.stop()`` ends it)
or to **stop** (``arun``: nobody holds that session, so it ends with reason ``stopped`` and its final
record). Either takes effect at the session's next safe point, after the step in progress; the
cancelled task waits for that (shielded), so the trajectory is whole, then raises ``CancelledError``.
Cancelling it again stops the waiting; the session still reaches its safe point on its own thread.

Overhead, measured by ``benchmarks/async_overhead.py`` (benchmarks/README.md, "Async API"): an
awaited call costs one thread start and one hand-over to the loop, about 0.3 ms on a 2-core machine.
``await s.run()`` pays that once per run, so per iteration it costs what a sync session run on a
thread costs (within the noise of ±1 ms a step on that machine); ``await s.step()`` pays it per step.
What a thread costs over the main thread, either way, is the timeout machinery's: off the main thread
each block runs on a worker under a watchdog (``_timeout.run_limited``), 0.1–2 ms a block there.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from ._config import RLM
from ._events import Event, Finished, Listener, StateChanged, StateName
from ._records import Proposal, Result
from ._schema import GuardRecord, IterationRecord
from ._session import Session
from ._snapshot import Snapshot
from ._trajectory import Trajectory
from .errors import RLMError, SessionStateError
from .models import UsageSummary

T = TypeVar("T")
Request = Literal["pause", "stop"]
StepRecord = IterationRecord | GuardRecord | dict[str, Any]


class Driver:
    """Who drives a session from a loop: the one call in flight, and the pause or stop asked for
    while it runs.

    A request is applied only where that is safe: at once while the session is ``running`` (the sync
    ``pause()``/``stop()`` then only set a flag its loop checks at the next safe point); when a run
    that has not begun yet enters ``running`` (a listener on the session's thread); or, for a call
    that never enters ``running`` (``propose``, ``execute`` by hand), on the call's own thread once
    it has returned. Never from the loop while another thread is inside the session.
    """

    def __init__(self, on_cancel: Request) -> None:
        self.on_cancel: Request = on_cancel
        self.session: Session | None = None
        self._lock = threading.RLock()  # a listener may call pause()/stop() from inside an event
        self._busy: str | None = None  # the name of the call in flight
        self._requested: Request | None = None

    def watch(self, session: Session) -> None:
        """Drive ``session`` from now on (on the thread about to run it, or at construction)."""
        with self._lock:
            self.session = session
        session.subscribe(self._on_event)

    def begin(self, what: str) -> None:
        """Take the session for the call ``what``, or refuse it while another one runs."""
        with self._lock:
            if self._busy is not None:
                raise SessionStateError(
                    f"The session is busy with {self._busy}(); an AsyncSession takes one call at a "
                    f"time, so {what}() was refused",
                    fix="Await the call in progress first; pause() and stop() may be called meanwhile",
                )
            self._busy, self._requested = what, None

    def finish(self) -> None:
        """The call has returned (on its thread): apply what is still asked, then free the session."""
        with self._lock:
            session, requested = self.session, self._requested
            if session is not None and requested == "stop" and session.state in ("idle", "paused"):
                session.stop()
            elif session is not None and requested == "pause" and session.state == "idle":
                session.pause()
            self._busy = self._requested = None

    def request(self, kind: Request) -> None:
        """Ask for a pause or a stop at the next safe point (a stop outranks a pause)."""
        with self._lock:
            session = self.session
            if self._busy is None:  # nothing runs inside the session: the sync call is safe here
                if session is not None:
                    self._apply(session, kind)
                return
            if self._requested != "stop":
                self._requested = kind
            if session is not None and session.state == "running":
                self._apply(session, kind)

    def cancelled(self) -> None:
        """The task awaiting the call was cancelled."""
        self.request(self.on_cancel)

    def _on_event(self, event: Event) -> None:
        # On the session's thread, as its run begins: a request made before then is applied now.
        if not (isinstance(event, StateChanged) and event.new == "running" and event.depth == 0):
            return
        with self._lock:
            session, requested = self.session, self._requested
            if session is not None and requested is not None and event.session_id == session.id:
                self._apply(session, requested)

    @staticmethod
    def _apply(session: Session, kind: Request) -> None:
        if kind == "stop":
            session.stop()
        else:
            session.pause()


class _Spawner:
    """Starts the threads of awaited calls, so that the loop never waits for one to start.

    ``Thread.start`` waits until the new thread runs, and with many busy threads on few cores that
    takes tens of milliseconds: the soak (``benchmarks/soak.py --async``, 50 sessions on 2 cores)
    measured a median of 18 ms a start, most of the loop's time, done on the loop. Here the loop only
    queues the job; this thread (started on demand, gone after ``IDLE`` seconds without work) starts
    the call's own thread.
    """

    IDLE = 5.0

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[], None], str, Callable[[BaseException], None]]
        ]
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(
        self, work: Callable[[], None], name: str, unstarted: Callable[[BaseException], None]
    ) -> None:
        """Start ``work`` on a daemon thread named ``name``; ``unstarted(error)`` if none starts."""
        self._jobs.put((work, name, unstarted))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="rlm-async-spawner", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                work, name, unstarted = self._jobs.get(timeout=self.IDLE)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():  # a job queued from now on starts a new spawner
                        self._thread = None
                        return
                continue
            try:
                threading.Thread(target=work, name=name, daemon=True).start()
            except BaseException as exc:  # no thread to be had: the caller hears why
                unstarted(exc)


_spawner = _Spawner()


def start(
    call: Callable[[], T], name: str, unstarted: Callable[[], None] | None = None
) -> asyncio.Future[T]:
    """Run ``call`` on a new daemon thread in a copy of the current context; its result or error
    resolves the returned future on the running loop. Should no thread start, the future gets that
    error and ``unstarted()`` is called (on another thread)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    # An answer nobody awaits any more (the caller cancelled twice) is not logged as lost.
    future.add_done_callback(_retrieved)
    context = contextvars.copy_context()

    def work() -> None:
        try:
            outcome: tuple[bool, Any] = (True, context.run(call))
        except BaseException as exc:  # handed to the awaiting task, whatever it is
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody awaits the answer
            loop.call_soon_threadsafe(_resolve, future, outcome)

    def failed(error: BaseException) -> None:
        if unstarted is not None:
            unstarted()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, future, (False, error))

    _spawner.submit(work, name, failed)
    return future


def _resolve(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def settled(future: asyncio.Future[T], on_cancel: Callable[[], None]) -> T:
    """Await ``future``; when the awaiting task is cancelled, call ``on_cancel``, wait for the call
    to return all the same (once more cancelled: stop waiting), then let the cancellation go on."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        on_cancel()
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            pass  # cancelled again: stop waiting; the call ends at its safe point on its thread
        except Exception:
            pass  # the call's own error after the cancellation: the cancellation is what was asked
        raise


async def stopping(call: Callable[[Callable[[Session], None]], T], name: str) -> T:
    """Run ``call(watch)`` on a thread of its own; ``call`` hands the session it builds to ``watch``
    before running it, so that cancelling the awaiting task stops that session at its next safe
    point (how ``arun`` runs ``run``)."""
    driver = Driver(on_cancel="stop")
    driver.begin("run")

    def work() -> T:
        try:
            return call(driver.watch)
        finally:
            driver.finish()

    return await settled(start(work, name, driver.finish), driver.cancelled)


class AsyncSession:
    """A ``Session`` driven from an event loop: the same state machine, each call awaited.

    ``await AsyncSession.create(question, context, **options)`` builds the session on a thread (its
    context may be files to read, its client an SDK to import); ``options`` are ``Session``'s keyword
    arguments (``config``, ``client``, ``sub_client``, ``namespace``, ``executor``, ``tools``…).
    ``AsyncSession(session)`` wraps a session that exists already (``rlm_kernel.resume``'s, say).

    ``await s.run()``, ``propose()``, ``execute(code)``, ``step()``, ``follow_up(q)`` and
    ``rewind(n)`` run the sync methods on a thread of their own, one at a time; ``pause()`` and
    ``stop()`` are plain calls, safe from any thread at any time. Cancelling an awaited call pauses
    the session at its next safe point, and the call's task ends only once it got there, so the
    trajectory is whole (see the module docstring). ``async for event in s.events()`` streams the
    session's events. ``s.session`` is the sync ``Session`` itself.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._driver = Driver(on_cancel="pause")
        self._driver.watch(session)

    @classmethod
    async def create(cls, question: str, context: object, **options: Any) -> AsyncSession:
        """A new session, built on a thread so the loop is not held up: ``options`` are
        ``Session``'s keyword arguments. Cancelled, it waits for the build, then stops the session."""
        future = start(lambda: Session(question, context, **options), "rlm-async create")
        abandoned = threading.Event()

        def end_unwanted(done: asyncio.Future[Session]) -> None:
            # Built after all, for a caller that stopped waiting: nobody will take it up.
            if abandoned.is_set() and not done.cancelled() and done.exception() is None:
                done.result().stop()

        try:
            return cls(await settled(future, lambda: None))
        except asyncio.CancelledError:
            abandoned.set()
            if future.done():
                end_unwanted(future)
            else:  # cancelled twice: the build goes on, and its session ends when it is there
                future.add_done_callback(end_unwanted)
            raise

    # --- awaited calls ---------------------------------------------------------------------------
    async def run(self) -> Result:
        """Iterate until the session finishes, is paused, or fails (``Session.run``)."""
        return await self._call("run", self.session.run)

    async def propose(self) -> Proposal:
        """Ask the root model for the next step, or return the one waiting (``Session.propose``)."""
        return await self._call("propose", self.session.propose)

    async def execute(self, code: str | None = None) -> StepRecord:
        """Run the pending step; ``code`` replaces the model's code (``Session.execute``)."""
        return await self._call("execute", lambda: self.session.execute(code))

    async def step(self) -> StepRecord:
        """One iteration: propose, then execute (``Session.step``)."""
        return await self._call("step", self.session.step)

    async def follow_up(self, question: str) -> None:
        """Ask a new question in the same session (``Session.follow_up``); then ``await run()``."""
        await self._call("follow_up", lambda: self.session.follow_up(question))

    async def rewind(self, n: int) -> Proposal:
        """Go back so that iteration ``n`` runs again (``Session.rewind``)."""
        return await self._call("rewind", lambda: self.session.rewind(n))

    async def _call(self, what: str, call: Callable[[], T]) -> T:
        self._driver.begin(what)

        def work() -> T:
            try:
                return call()
            finally:
                self._driver.finish()

        future = start(work, f"rlm-async {self.session.id} {what}", self._driver.finish)
        return await settled(future, self._driver.cancelled)

    # --- plain calls -----------------------------------------------------------------------------
    def pause(self) -> None:
        """Pause at the next safe point (between steps); safe from any thread."""
        self._driver.request("pause")

    def stop(self) -> None:
        """End the session at the next safe point, without an answer; safe from any thread."""
        self._driver.request("stop")

    def result(self) -> Result:
        """Where the session stands now (``Session.result``)."""
        return self.session.result()

    def snapshot(self) -> Snapshot:
        """The session's live numbers now (``Session.snapshot``): safe from any thread, never waits."""
        return self.session.snapshot()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every event, on the session's thread (``Session.subscribe``)."""
        return self.session.subscribe(listener)

    def events(self) -> EventStream:
        """The session's events (its children's too) as they happen, delivered on this loop, until
        the session next pauses or finishes. Subscribed when called: call it before starting the
        run whose events it should see, e.g. ``task = asyncio.create_task(s.run())`` after it."""
        return EventStream(self.session, asyncio.get_running_loop())

    # --- the session's state, passed through -----------------------------------------------------------
    @property
    def id(self) -> str:
        """The session's id."""
        return self.session.id

    @property
    def question(self) -> str:
        """The question being answered now."""
        return self.session.question

    @property
    def config(self) -> RLM:
        """The session's settings."""
        return self.session.config

    @property
    def state(self) -> StateName:
        """``idle``, ``running``, ``paused``, ``done`` or ``failed``."""
        return self.session.state

    @property
    def answer(self) -> str | None:
        """The answer, once there is one."""
        return self.session.answer

    @property
    def reason(self) -> str:
        """Why the session last ended or paused."""
        return self.session.reason

    @property
    def message(self) -> str:
        """What a person is told about how it last ended or paused."""
        return self.session.message

    @property
    def error(self) -> RLMError | None:
        """The error that ended or paused it, if one did."""
        return self.session.error

    @property
    def trajectory(self) -> Trajectory:
        """Every record so far."""
        return self.session.trajectory

    @property
    def usage(self) -> UsageSummary:
        """Root calls, sub-calls and children's usage, by model."""
        return self.session.usage

    @property
    def path(self) -> Path | None:
        """Where the trajectory is autosaved (None when autosave is off)."""
        return self.session.path

    @property
    def iteration(self) -> int:
        """The number of iterations that stand."""
        return self.session.iteration

    @property
    def pending(self) -> Proposal | None:
        """The proposed step waiting to be executed, if any."""
        return self.session.pending


class EventStream:
    """A session's events as an async iterator on one loop (``AsyncSession.events()``): subscribed
    when made, it ends after the root's next pause or finish, or at ``aclose()``. A stream dropped
    unread unsubscribes at the next event (the listener holds it weakly)."""

    def __init__(self, session: Session, loop: asyncio.AbstractEventLoop) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._root = session.id
        self._ended = False
        stream, queue = weakref.ref(self), self._queue

        def deliver(event: Event) -> None:  # on the session's thread
            if stream() is None:
                unsubscribe()
                return
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, event)

        unsubscribe = session.subscribe(deliver)
        self._unsubscribe = unsubscribe

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._ended:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event.session_id == self._root and event.depth == 0 and _ends_stretch(event):
            await self.aclose()
        return event

    async def aclose(self) -> None:
        """Stop listening; the iteration ends (after the event already handed out)."""
        self._ended = True
        self._unsubscribe()


def _ends_stretch(event: Event) -> bool:
    """The root paused, or finished (its ``Finished`` comes after its last ``StateChanged``)."""
    return isinstance(event, Finished) or (
        isinstance(event, StateChanged) and event.new == "paused"
    )
