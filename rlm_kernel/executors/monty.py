"""Run iteration code in a pydantic-monty sandbox (``RLM.executor = 'monty'``).

One sandbox session (a dedicated monty worker process) per RLM session, child RLMs included, so
variables, functions and imports persist across iterations. ``P`` is bound once; the helpers and the
tools marked ``@sandbox_safe`` are host functions. After every block the executor reads back which
helpers the code overwrote (and puts them back), the ``answer`` dict and a variable summary, then dumps
the sandbox's state in the background, so the dump overlaps the next model call.

A block that breaks a limit (time, memory, host calls), crashes the worker or is interrupted leaves no
trace: the worker is dropped and the next block starts from the last dump. Feeds run on a helper thread
because a running feed does not see SIGINT; a kernel interrupt kills the worker instead.
"""

from __future__ import annotations

import keyword
import secrets
import threading
import time
import weakref
from collections.abc import Callable, MutableMapping
from contextlib import suppress
from typing import Any, TextIO, TypeVar

from pydantic_monty import (
    ExternalModule,
    MontyCrashedError,
    MontyError,
    MontyRuntimeError,
    MontySyntaxError,
)

from .._capture import Capture, capturing
from .._sandbox import is_sandbox_safe
from ._base import ExecResult
from ._monty_code import (
    ANSWER,
    BOOKKEEPING,
    HELPERS,
    HOST_MODULE,
    SHIMMED,
    import_error,
    prelude,
    prepare,
    prompt_note,
    rebind_snippet,
    sync_snippet,
    traceback_text,
)
from ._monty_errors import RESTORED, SandboxError, breach_message, error_hint, value_repr
from ._monty_feed import Feed, Live
from ._monty_pool import SandboxLimits, Worker
from ._sandbox_namespace import Replaced, SandboxNamespace

_POLL = 0.05
_KILL_WAIT = 0.5  # seconds to wait for a killed feed to return before leaving it to close itself

T = TypeVar("T")


def _weakly(method: Callable[..., T]) -> Callable[..., T]:
    """``method`` (one of the executor's) without a strong reference to the executor.

    The host module's functions (``FINAL_VAR``, ``SHOW_VARS``) are these: a bound method there would
    close a cycle (executor -> module -> method -> executor), and a finished sandboxed session would
    then wait for the cycle collector. ``_namespace.weakly`` does this one layer up; executors sit
    below it and cannot import it."""
    ref = weakref.WeakMethod(method)
    name = method.__name__

    def call(*args: Any, **kwargs: Any) -> T:
        bound = ref()
        if bound is None:
            raise ReferenceError(f"{name}: the sandboxed session it belonged to is gone")
        return bound(*args, **kwargs)

    call.__name__, call.__qualname__, call.__doc__ = name, method.__qualname__, method.__doc__
    return call


def _weak_read(executor: MontyExecutor) -> Callable[[str], Any]:
    """``executor._read`` for its namespace view, without a strong reference (no cycle): once the
    executor is gone, so is its sandbox, and no name is found."""
    read = weakref.WeakMethod(executor._read)

    def lookup(name: str) -> Any:
        bound = read()
        if bound is None:
            raise KeyError(name)
        return bound(name)

    return lookup


class MontyExecutor:
    """Run code in a pydantic-monty sandbox, one worker process per session (``RLM.executor =
    "monty"``); build one with ``make_executor``. ``limits`` are fixed when the sandbox starts, and
    ``echo_stdout``/``echo_stderr`` receive output live as in ``NamespaceExecutor``."""

    def __init__(
        self,
        limits: SandboxLimits,
        *,
        echo_stdout: TextIO | None = None,
        echo_stderr: TextIO | None = None,
        capture_limit: int | None = None,
    ) -> None:
        self.limits = limits
        self.capture_limit = capture_limit  # characters of each stream kept per block
        # What the echo passes through before it is shown (the session's scrubber, ``scrub_echo``).
        self.echo_scrub: Callable[[str], str] | None = None
        self._echo_stdout = echo_stdout
        self._echo_stderr = echo_stderr
        self._ns = SandboxNamespace(_weak_read(self))
        # The worker and its last dump live apart from the executor: the finalizer and the dump
        # thread hold them, never the executor, so a dropped session is freed at once.
        self._live = Live()
        weakref.finalize(self, self._live.drop)
        self._dumper: threading.Thread | None = None
        self._modules: dict[str, ExternalModule] | None = None
        self._functions: dict[str, Callable[..., Any]] = {}  # "rlm.llm_query" -> the host function
        self._originals: dict[str, Any] = {}  # the host values of the guarded names
        self._guarded: list[str] = []
        self._hidden: list[str] = []
        self._summary: list[tuple[str, str]] = []
        self._current: Feed | None = None
        self._interrupted = threading.Event()
        self._notices: list[str] = []
        # Marks this session's ``__rlm__`` (see _monty_code): a rebound one is told apart by it.
        self._token = secrets.token_hex(8)
        self._prelude: tuple[str, dict[str, Any]] | None = None  # code and data inputs, to redo it

    # --- Executor / Sandboxed --------------------------------------------------------------------
    @property
    def namespace(self) -> MutableMapping[str, Any]:
        """The host's view of the sandbox's variables: read on demand, set before the next block."""
        return self._ns

    @property
    def prompt_note(self) -> str:
        """The system-prompt section on what the sandbox lacks (files, network, most imports)."""
        return prompt_note(self.limits)

    def admits_tool(self, fn: Callable[..., Any]) -> bool:
        """Whether ``fn`` is marked ``@sandbox_safe`` and may be called from the sandbox."""
        return is_sandbox_safe(fn)

    def run(self, code: str, *, label: str, timeout: float | None) -> ExecResult:
        """Run one block. ``timeout`` is not used: the sandbox's limits are fixed when it starts."""
        result = ExecResult()
        started = time.perf_counter()
        with capturing(
            self._echo_stdout, self._echo_stderr, limit=self.capture_limit, scrub=self.echo_scrub
        ) as streams:
            self._run(code, label, result, *streams)
        out, err = streams
        result.duration = time.perf_counter() - started
        result.stdout, result.stderr = out.getvalue(), err.getvalue()
        result.output_cut = out.cut + err.cut
        return result

    def _run(self, code: str, label: str, result: ExecResult, out: Capture, err: Capture) -> None:
        sent: dict[str, Any] = {}
        try:
            code, module = prepare(code)
            if module is not None:
                result.error_type, result.error = "ImportError", import_error(module)
            else:
                worker = self._ready()
                for notice in self._notices:
                    err.write(notice + "\n")
                self._notices.clear()
                sent = self._ns.take_pending()
                if sent:  # e.g. a fresh ``answer`` after a refused submission
                    worker.session.feed_run("None", inputs=sent)
                self._execute(worker, code, sent, label, result, out, err)
        except KeyboardInterrupt:
            self._abandon(sent)
            result.interrupted = True
            result.error_type = "KeyboardInterrupt"
            result.error = (
                "KeyboardInterrupt: the iteration was interrupted; the sandbox went back to its "
                "state before this block."
            )
        except SandboxError as exc:
            result.error_type, result.error = "SandboxError", str(exc)
        except MontyError as exc:  # a hidden feed failed: the worker is in an unknown state
            self._ns.requeue(sent)
            self._live.drop()
            result.error_type = "SandboxError"
            result.error = f"SandboxError: the sandbox failed ({exc}). {RESTORED}"

    def interrupt(self) -> None:
        """Stop the running block from another thread (a pause button); ``run`` reports it interrupted."""
        feed = self._current
        if feed is not None:
            self._interrupted.set()
            feed.worker.kill()

    def release(self) -> None:
        """Give the worker back to the pool; the next ``run`` restores the last dump."""
        self._live.release()

    # --- one block ---------------------------------------------------------------------------------
    def _execute(
        self,
        worker: Worker,
        code: str,
        sent: dict[str, Any],
        label: str,
        result: ExecResult,
        out: Capture,
        err: Capture,
    ) -> None:
        def on_print(stream: str, text: str) -> None:
            (err if stream == "stderr" else out).write(text)

        feed = Feed(worker, code, self._functions, on_print)
        self._interrupted.clear()
        self._current = feed
        # Host functions run on the feed's thread and print through sys.stdout: the feed runs in
        # this context, so the capture follows it there.
        feed.start()
        # Short waits: a simulated interrupt (_thread.interrupt_main) does not wake a blocked
        # wait, and Python only runs signal handlers between them.
        while not feed.done.wait(_POLL):
            pass
        self._current = None
        error = feed.error
        if self._interrupted.is_set():
            raise KeyboardInterrupt
        if error is None:
            if feed.value is not None:
                result.value = value_repr(feed.value)
            self._after_block(worker, sent, err, result)
            return
        inner = error.exception() if isinstance(error, MontyRuntimeError) else error
        breach = breach_message(inner, self.limits)
        if breach is not None:
            result.error_type, result.error = breach
            result.timed_out = result.error_type == "IterationTimeout"
            self._ns.requeue(sent)
            self._live.drop()
            return
        if isinstance(error, MontyRuntimeError | MontySyntaxError):
            result.error_type = type(inner).__name__
            result.error = traceback_text(error.display("traceback"), label) + error_hint(
                inner, self.limits
            )
            self._after_block(worker, sent, err, result)
            return
        # The worker died (MontyCrashedError) or the session broke: start over from the last dump.
        result.error_type = (
            "SandboxCrash" if isinstance(error, MontyCrashedError) else "SandboxError"
        )
        result.error = (
            f"{result.error_type}: the sandbox stopped working ({error}). The sandbox went back to "
            f"its state before this block (RLM.monty_memory_mb = {self.limits.memory_mb} if it "
            "ran out of memory)."
        )
        self._ns.requeue(sent)
        self._live.drop()

    def _after_block(
        self, worker: Worker, sent: dict[str, Any], err: Capture, result: ExecResult
    ) -> None:
        """Read back overwritten helpers, ``answer`` and the variables; then dump in the background.

        Bookkeeping names the code rebound are put back first (``__rlm__`` by running the prelude
        again), and the model is told."""
        sync = sync_snippet(self._guarded, self._hidden, self._token)
        try:
            synced = worker.session.feed_run(sync)
            rebound: list[str] = []
            if synced is None and self._prelude is not None:  # __rlm__ itself was rebound
                code, inputs = self._prelude
                worker.session.feed_run(code, inputs=inputs)
                rebound = list(BOOKKEEPING)
                synced = worker.session.feed_run(sync)
            if synced is None:
                self._damaged(sent, err, "its __rlm__ could not be rebuilt")
                return
            host_intact, replaced, answer, summary = synced
            if not host_intact:
                rebound.append("__rlm_host__")
            if replaced or not host_intact:
                worker.session.feed_run(
                    rebind_snippet(replaced, self._guarded, host=not host_intact)
                )
            if rebound:
                result.notes.append(
                    f"Your code rebound {', '.join(dict.fromkeys(rebound))}, the sandbox's own "
                    "bookkeeping; it was put back. Names starting with __rlm are reserved."
                )
        except MontyError as exc:  # this block's state is unusable
            self._damaged(sent, err, str(exc))
            return
        for name in replaced:
            self._ns.synced(name, self._originals[name], shown=Replaced(name))
        self._ns.synced(ANSWER, answer)
        self._summary = [(str(n), str(t)) for n, t in summary]
        self._dump_later(worker)

    def _damaged(self, sent: dict[str, Any], err: Capture, why: str) -> None:
        err.write(
            f"The sandbox's own bookkeeping was damaged ({why}); it went back to its state "
            "before this block.\n"
        )
        self._ns.requeue(sent)
        self._live.drop()

    # --- the worker's life -----------------------------------------------------------------------
    def _ready(self) -> Worker:
        self._join_dumper()
        worker = self._live.worker
        if worker is not None:
            return worker
        if self._modules is not None and self._live.checkpoint is not None:
            try:
                return self._restore()
            except (MontyError, OSError, TimeoutError) as exc:
                self._notices.append(
                    f"The sandbox's state could not be restored ({exc}); it started afresh, so "
                    "variables from earlier steps are gone."
                )
                self._live.checkpoint = None
        return self._start()

    def _start(self) -> Worker:
        if self._modules is None:
            self._plan()
        assert self._modules is not None
        data = [n for n in self._guarded if not callable(self._originals[n])]
        imported = [n for n in self._guarded if n not in data and n not in SHIMMED]
        # A value bound under two names (P and context) is sent once: a context can be large.
        first: dict[int, str] = {}
        aliases: dict[str, str] = {}
        for name in data:
            original = first.setdefault(id(self._originals[name]), name)
            if original != name:
                aliases[name] = original
        inputs = {name: self._originals[name] for name in data if name not in aliases}
        inputs[ANSWER] = self._ns.get(ANSWER)
        worker = self._checkout()
        self._live.worker = worker
        try:
            code = prelude(imported, self._guarded, aliases, self._token)
            worker.session.feed_run(code, inputs=inputs)
        except MontyError as exc:
            self._live.drop()
            raise SandboxError(
                f"SandboxError: the sandbox could not start ({exc}). If the context is large, raise "
                f"RLM.monty_memory_mb (now {self.limits.memory_mb}) or use RLM.executor = 'namespace'."
            ) from exc
        self._ns.started()
        # Running the prelude again rebuilds __rlm__; it must not reset ``answer``.
        self._prelude = (code, {k: v for k, v in inputs.items() if k != ANSWER})
        return worker

    def _restore(self) -> Worker:
        assert self._live.checkpoint is not None
        worker = self._checkout()
        try:
            worker.session.load_session(self._live.checkpoint)
        except BaseException:
            worker.close()
            raise
        self._live.worker = worker
        return worker

    def _checkout(self) -> Worker:
        assert self._modules is not None
        try:
            return Worker.checkout(self.limits, dict(self._modules))
        except MontyError as exc:
            raise SandboxError(
                f"SandboxError: no sandbox worker could be started ({exc})."
            ) from exc
        except TimeoutError as exc:
            raise SandboxError(
                "SandboxError: no sandbox worker became free within a minute: too many sandboxed "
                "sessions are unfinished at once. Finish or stop some, or lower "
                "RLM.subcall_concurrency or RLM.max_depth."
            ) from exc

    def _plan(self) -> None:
        """Decide, from what the session bound, what the sandbox imports, receives and guards."""
        bound = self._ns.host_items()
        functions: dict[str, Any] = {}
        for name, value in bound.items():
            if name == ANSWER:
                continue
            if callable(value):
                if name not in HELPERS and not is_sandbox_safe(value):
                    continue  # a tool nobody declared safe never enters the sandbox
                functions[name] = value
            self._originals[name] = value
            self._guarded.append(name)
        exposed = {n: fn for n, fn in functions.items() if n not in SHIMMED}
        if "FINAL_VAR" in functions:
            exposed["FINAL_VAR"] = _weakly(self._final_var)
        if "SHOW_VARS" in functions:
            exposed["SHOW_VARS"] = _weakly(self._show_vars)
        self._hidden = [*bound]
        self._modules = {HOST_MODULE: ExternalModule(exposed)}
        self._functions = {f"{HOST_MODULE}.{name}": fn for name, fn in exposed.items()}

    def _dump_later(self, worker: Worker) -> None:
        self._dumper = self._live.dump_later(worker)

    def _join_dumper(self) -> None:
        if self._dumper is not None:
            self._dumper.join()
            self._dumper = None

    def _abandon(self, sent: dict[str, Any]) -> None:
        """After an interrupt: stop the feed, drop the worker; the next block restores the last dump."""
        self._ns.requeue(sent)
        feed, self._current = self._current, None
        worker = self._live.worker
        if feed is not None and not feed.done.is_set() and worker is not None:
            feed.abandoned = True
            worker.kill()
            # A second Ctrl-C stops the waiting; the worker then closes itself when the feed ends.
            with suppress(KeyboardInterrupt):
                feed.done.wait(_KILL_WAIT)
        with suppress(KeyboardInterrupt):
            self._join_dumper()
        self._live.drop()

    # --- host functions with a sandbox-aware side, and reads between feeds ---------------------
    def _final_var(self, name: object, *found: Any) -> Any:
        """FINAL_VAR's host half: the sandbox shim passes the variable's value along when it exists."""
        submit = self._originals["FINAL_VAR"]
        if not found or not isinstance(name, str):
            return submit(name)
        with self._ns.overlay(name.strip().strip("'\""), found[0]):
            return submit(name)

    def _show_vars(self, __rlm_vars__: list[tuple[str, str]] | None = None) -> str:
        """List the variables made during this session, with their types.

        ``__rlm_vars__`` is filled in by the call site at module level (see ``prepare``); elsewhere
        the list is the one read back after the previous block.
        """
        summary = self._summary
        if __rlm_vars__ is not None:
            hidden = set(self._hidden)
            summary = [(n, t) for n, t in __rlm_vars__ if n not in hidden and not n.startswith("_")]
        if not summary:
            text = "No variables yet."
        else:
            text = "Variables: " + ", ".join(f"{n} ({t})" for n, t in sorted(summary))
        print(text)
        return text

    def _read(self, name: str) -> Any:
        """A sandbox variable for host code (a prose ``FINAL_VAR(name)``), only between feeds."""
        worker = self._live.worker
        if (
            worker is None
            or self._current is not None
            or not name.isidentifier()
            or keyword.iskeyword(name)
        ):
            raise KeyError(name)
        self._join_dumper()
        try:
            return worker.session.feed_run(name)
        except MontyError:
            raise KeyError(name) from None
