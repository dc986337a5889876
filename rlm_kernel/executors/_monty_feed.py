"""One block running on a helper thread, and the handle on an executor's current worker and dump."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

from pydantic_monty import FunctionSnapshot, MontyComplete, MontyRuntimeError, NameLookupSnapshot

from ._monty_pool import Worker


class Feed(threading.Thread):
    """One block on a helper thread, so that the caller's thread stays interruptible.

    The feed is driven by hand (``feed_start``/``resume``) so that host functions run from this
    Python loop rather than from inside monty's native call: a thread abandoned in a slow sub-call
    then holds no native frames, which would abort the interpreter if it were still there at exit.
    """

    def __init__(
        self,
        worker: Worker,
        code: str,
        functions: dict[str, Callable[..., Any]],
        on_print: Callable[[str, str], None],
    ) -> None:
        super().__init__(name="rlm-monty-feed", daemon=True)
        self.worker, self.code = worker, code
        self.functions, self.on_print = functions, on_print
        self.done = threading.Event()
        self.abandoned = False  # set after an interrupt: make no further host calls
        self.value: Any = None
        self.error: BaseException | None = None
        # Made on the caller's thread: host functions then print into the block's capture.
        self._context = contextvars.copy_context()

    def run(self) -> None:
        self._context.run(self._run)

    def _run(self) -> None:
        self.worker.begin()
        try:
            snapshot = self.worker.session.feed_start(self.code, print_callback=self.on_print)
            while not isinstance(snapshot, MontyComplete):
                if self.abandoned:
                    return
                snapshot = self._answer(snapshot)
            self.value = snapshot.output
        except BaseException as exc:  # reported by the caller's thread
            self.error = exc
        finally:
            self.done.set()
            self.worker.end()

    def _answer(self, snapshot: Any) -> Any:
        if isinstance(snapshot, NameLookupSnapshot):
            return snapshot.resume()  # no value: a NameError in the sandbox
        if not isinstance(snapshot, FunctionSnapshot):
            return snapshot.resume_auto()
        if snapshot.is_os_function:  # files, environment, clock…: monty's own answer
            return snapshot.resume_not_handled()
        fn = self.functions.get(snapshot.function_name)
        if fn is None:  # a call of a name that is defined nowhere
            error = NameError(f"name {snapshot.function_name!r} is not defined")
            return snapshot.resume({"exception": error})
        try:
            value = fn(*snapshot.args, **snapshot.kwargs)
        except Exception as exc:  # the sandbox's code may catch it
            return snapshot.resume({"exception": exc})
        try:
            return snapshot.resume({"return_value": value})
        except MontyRuntimeError as exc:
            # A value monty cannot convert is refused before the snapshot is used: make it a
            # TypeError in the sandbox, as an automatic call would.
            try:
                return snapshot.resume({"exception": TypeError(str(exc.exception()))})
            except RuntimeError:  # it was used: the error came from the sandbox's code
                raise exc from None


class Live:
    """The executor's current worker and its last dump, in an object that the finalizer and the
    dump thread hold without the executor (a dropped session is then freed at once)."""

    def __init__(self) -> None:
        self.worker: Worker | None = None
        self.checkpoint: bytes | None = None  # the state after the last block that completed
        self._lock = threading.Lock()
        self._dumping = False  # guarded by _lock, like _release_after_dump
        self._release_after_dump = False

    def drop(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.close_when_idle()

    def release(self) -> None:
        """Drop the worker now, or when the dump in progress ends (its checkpoint is kept)."""
        with self._lock:
            if self._dumping:
                self._release_after_dump = True
                return
        self.drop()

    def dump_later(self, worker: Worker) -> threading.Thread:
        """Dump ``worker``'s state on a thread (it overlaps the next model call); the checkpoint is
        kept if ``worker`` is still the current one when the dump ends."""

        def dump() -> None:
            worker.begin()  # a drop meanwhile (the executor freed) closes the worker after the dump
            try:
                blob: bytes | None = worker.session.dump()
            except Exception:  # the worker died meanwhile: keep the previous checkpoint
                blob = None
            finally:
                worker.end()
            with self._lock:
                if blob is not None and self.worker is worker:
                    self.checkpoint = blob
                self._dumping = False
                release, self._release_after_dump = self._release_after_dump, False
            if release:
                self.drop()

        with self._lock:
            self._dumping = True
        # Not a daemon: exiting mid-dump would leave a thread inside monty's native code.
        thread = threading.Thread(target=dump, name="rlm-monty-dump", daemon=False)
        thread.start()
        return thread
