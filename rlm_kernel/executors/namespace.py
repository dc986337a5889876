"""Run iteration code in a plain Python namespace: the kernel's ``user_ns`` or a private dict.

Code runs like a notebook cell: statements execute in order and a trailing bare expression is echoed
(``Out: …``). stdout and stderr are captured for the model and, when ``echo`` is set, also passed through
live (the inline notebook driver shows them as they happen). Tracebacks show the model's own source lines.
"""

from __future__ import annotations

import ast
import io
import linecache
import time
import traceback
from collections.abc import MutableMapping
from contextlib import redirect_stderr, redirect_stdout
from typing import Any, TextIO

from .._timeout import Limit, time_limit
from ..errors import IterationTimeout
from ._base import ExecResult


class _Tee(io.TextIOBase):
    """Collects what the code writes and, optionally, forwards it live to another stream."""

    def __init__(self, echo: TextIO | None) -> None:
        self._parts: list[str] = []
        self._echo = echo

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._parts.append(text)
        if self._echo is not None:
            self._echo.write(text)
        return len(text)

    def flush(self) -> None:
        if self._echo is not None:
            self._echo.flush()

    def getvalue(self) -> str:
        return "".join(self._parts)


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
    ) -> None:
        self._namespace: MutableMapping[str, Any] = {} if namespace is None else namespace
        self._echo_stdout = echo_stdout
        self._echo_stderr = echo_stderr

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
        out, err = _Tee(self._echo_stdout), _Tee(self._echo_stderr)
        result = ExecResult()
        started = time.perf_counter()
        limit: Limit | None = None
        try:
            body, last = _split_last_expression(code, filename)
            with redirect_stdout(out), redirect_stderr(err), time_limit(timeout) as limit:
                ns: dict[str, Any] = self._namespace  # type: ignore[assignment]
                if body is not None:
                    exec(body, ns)
                if last is not None:
                    value = eval(last, ns)
                    if value is not None:
                        result.value = _safe_repr(value)
        except IterationTimeout:
            if limit is None or not limit.fired:
                raise  # an outer iteration's limit (this is a child RLM's code): not ours to report
            result.timed_out = True
            result.error_type = "IterationTimeout"
            result.error = (
                f"IterationTimeout: the code ran longer than {timeout:g} s and was stopped "
                "(RLM.iteration_timeout). Work on smaller pieces, or batch sub-calls with llm_batch."
            )
        except KeyboardInterrupt:
            result.interrupted = True
            result.error_type = "KeyboardInterrupt"
            result.error = "KeyboardInterrupt: the iteration was interrupted."
        except BaseException as exc:  # the model's code may raise anything, SystemExit included
            result.error_type = type(exc).__name__
            result.error = _format_exception(exc, filename)
        result.duration = time.perf_counter() - started
        result.stdout = out.getvalue()
        result.stderr = err.getvalue()
        return result


def _split_last_expression(code: str, filename: str) -> tuple[Any, Any]:
    try:
        tree = ast.parse(code, filename=filename, mode="exec")
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
