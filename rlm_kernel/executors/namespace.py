"""Run iteration code in a plain Python namespace: the kernel's ``user_ns`` or a private dict.

Code runs like a notebook cell: statements execute in order and a trailing bare expression is echoed
(``Out: …``). stdout and stderr are captured for the model (per session, ``_capture``: other sessions'
and the host's output never mix in) and, when ``echo`` is set, also passed through live (the inline
notebook driver shows them as they happen), line by line through the session's scrubber
(``echo_scrub``). Tracebacks show the model's own source lines.

Model code runs in the host process, so the executor also keeps the host's footing: standard-library
names the code rebinds are put back after the block (``_protect``), a ``KeyboardInterrupt`` pauses the
session only when it is a real interrupt (``_timeout.interrupts``), and off the main thread a block
that does not stop at its time limit is left running in the background (``_timeout.run_limited``),
which the model is told, in that step and while the thread lives.
"""

from __future__ import annotations

import ast
import linecache
import threading
import time
import traceback
import weakref
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

from .. import _astparse
from .._capture import Capture, capturing
from .._timeout import Limit, interrupts, outer_fired, run_limited
from ..errors import IterationTimeout
from . import _protect
from ._base import ExecResult

# Kept for the monty executor and older imports: a capture with no limit.
_Tee = Capture


class NamespaceExecutor:
    """Run code with ``exec`` in a plain mapping, like a notebook cell (the default executor).

    ``namespace`` is the mapping to run in (the kernel's ``user_ns`` in a notebook; a fresh dict when
    None). Output is captured and, with ``echo_stdout``/``echo_stderr``, also written there as it comes.
    """

    def __init__(
        self,
        namespace: MutableMapping[str, Any] | None = None,
        *,
        echo_stdout: TextIO | None = None,
        echo_stderr: TextIO | None = None,
        capture_limit: int | None = None,
    ) -> None:
        self._namespace: MutableMapping[str, Any] = {} if namespace is None else namespace
        self._echo_stdout = echo_stdout
        self._echo_stderr = echo_stderr
        # Characters of each stream kept per block (RLM.max_capture_chars); None keeps everything.
        self.capture_limit = capture_limit
        # What the echo passes through before it is shown (the session's scrubber, ``scrub_echo``).
        self.echo_scrub: Callable[[str], str] | None = None
        # Blocks left running after their time limit (off the main thread), with their labels.
        self._stray: list[tuple[str, threading.Thread]] = []
        # The blocks' sources registered in linecache (for tracebacks and ``inspect.getsource`` of
        # what the model defined), dropped when the executor goes: a process running session after
        # session (an app server, the soak) would otherwise keep every block's code for good.
        self._sources: list[str] = []
        weakref.finalize(self, _forget, self._sources)

    @property
    def namespace(self) -> MutableMapping[str, Any]:
        """The mapping the code runs in."""
        return self._namespace

    def run(self, code: str, *, label: str, timeout: float | None) -> ExecResult:
        """Run one block like a notebook cell: a trailing bare expression becomes ``Out:``.

        Whatever the code raises, ``SystemExit`` included, becomes the result's error, with a
        traceback of the model's own lines; running past ``timeout`` seconds is an
        ``IterationTimeout`` error.
        """
        filename = f"<rlm {label}>"
        # Registered so that tracebacks and inspect show the model's source lines.
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        self._sources.append(filename)
        result = ExecResult()
        result.notes.extend(self._stray_notes())
        started = time.perf_counter()
        limit = Limit(timeout or 0.0)
        put_back: list[str] = []
        with capturing(
            self._echo_stdout, self._echo_stderr, limit=self.capture_limit, scrub=self.echo_scrub
        ) as (
            out,
            err,
        ):
            with _protect.protected(put_back):
                self._run_code(code, filename, limit, result)
            if limit.abandoned and limit.worker is not None:
                self._stray.append((label, limit.worker))
        if put_back:
            result.notes.append(_protect.note(put_back))
        result.duration = time.perf_counter() - started
        self._collect(result, out, err)
        return result

    def _run_code(self, code: str, filename: str, limit: Limit, result: ExecResult) -> None:
        ns: dict[str, Any] = self._namespace  # type: ignore[assignment]

        def block() -> None:
            body, last = _split_last_expression(code, filename)
            if body is not None:
                exec(body, ns)
            if last is not None:
                value = eval(last, ns)
                if value is not None:
                    result.value = _safe_repr(value)

        with interrupts() as seen:
            try:
                run_limited(block, limit)
            except IterationTimeout as exc:
                if not limit.fired and outer_fired():
                    raise  # an outer iteration's limit (this is a child RLM's code): not ours
                if not limit.fired:  # the code raised it itself: its error like any other
                    _as_error(result, exc, filename)
                else:
                    _timed_out(result, limit)
            except KeyboardInterrupt as exc:
                if seen.count:  # a real interrupt (SIGINT handled by Python): the session pauses
                    result.interrupted = True
                    result.error_type = "KeyboardInterrupt"
                    result.error = "KeyboardInterrupt: the iteration was interrupted."
                else:  # raised by the code, no signal: reported to the model like any error
                    _as_error(result, exc, filename)
            except BaseException as exc:  # the model's code may raise anything, SystemExit included
                _as_error(result, exc, filename)

    def _stray_notes(self) -> list[str]:
        self._stray = [(label, thread) for label, thread in self._stray if thread.is_alive()]
        return [
            f"The block of {label} did not stop at its time limit and is still running in the "
            "background (a blocking call); it may yet change variables or print. Do not wait on it."
            for label, _ in self._stray
        ]

    @staticmethod
    def _collect(result: ExecResult, out: Capture, err: Capture) -> None:
        result.stdout, result.stderr = out.getvalue(), err.getvalue()
        result.output_cut = out.cut + err.cut


def _as_error(result: ExecResult, exc: BaseException, filename: str) -> None:
    result.error_type = type(exc).__name__
    result.error = _format_exception(exc, filename)
    # The traceback holds the block's frames, and they the namespace and whatever the code made:
    # dropped now, so a finished session is freed without waiting for the cycle collector.
    _clear_frames(exc)


def _timed_out(result: ExecResult, limit: Limit) -> None:
    result.timed_out = True
    result.error_type = "IterationTimeout"
    if limit.abandoned:
        result.error = (
            f"IterationTimeout: the code ran longer than {limit.seconds:g} s and did not stop when "
            "interrupted (a blocking call, such as time.sleep or a read that never returns, off the "
            "main thread). It was left running in the background and may still change variables "
            "or print; the session goes on without it (RLM.iteration_timeout). Avoid blocking "
            "calls; give them their own timeouts."
        )
    else:
        result.error = (
            f"IterationTimeout: the code ran longer than {limit.seconds:g} s and was stopped "
            "(RLM.iteration_timeout). Work on smaller pieces, or batch sub-calls with llm_batch."
        )


def _clear_frames(exc: BaseException) -> None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


def _split_last_expression(code: str, filename: str) -> tuple[Any, Any]:
    try:
        tree = _astparse.parse(code, filename)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body[-1].value)
            tree.body.pop()
        body = compile(tree, filename, "exec") if tree.body else None
        return body, (compile(last, filename, "eval") if last is not None else None)
    except (MemoryError, RecursionError):
        # Python's parser and compiler run out of stack on pathologically nested code ("-" * 10**5):
        # the model's error, worded as one, not a traceback of this module.
        raise SyntaxError("the code is too deeply nested to parse; write it flatter") from None


def _safe_repr(value: object, limit: int = 10_000) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the iteration
        text = f"<unrepresentable {type(value).__name__}: {exc}>"
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} chars more]"


def _format_exception(exc: BaseException, filename: str) -> str:
    if isinstance(exc, SyntaxError):
        return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    tb = exc.__traceback__
    # Skip this module's frames: the model should see its own code, not our exec machinery.
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb if tb is not None else exc.__traceback__)
    return "".join(lines).rstrip()


def _forget(sources: list[str]) -> None:
    """Drop an executor's block sources from linecache (its finalizer: no reference to it)."""
    for filename in sources:
        linecache.cache.pop(filename, None)
