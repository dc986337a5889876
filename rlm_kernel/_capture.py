"""Per-session output capture: what one block of model code prints, and nothing else.

``contextlib.redirect_stdout`` replaces ``sys.stdout`` for the whole process, so sessions run in
threads of one process would see each other's output, a host thread's ``print`` would land in the
model's observation, and two overlapping redirects put back the wrong stream. Instead, while any
capture is active, ONE dispatching proxy sits on ``sys.stdout`` and ``sys.stderr`` (refcounted: it is
put in by the first capture and the stream that was there is put back when the last one ends, if
``sys.stdout`` is still the proxy). Each write goes to the capture of the context it is made in (a
``ContextVar``, so a child RLM nested on the same thread captures its own output, and the sub-call
loop's tasks write to the block that started them), or to the stream that was there.

Threads started by model code begin with an empty context: their output goes to the real stream,
never into this block's or a later block's observation. A capture that has ended takes no more
writes (an ``asyncio.to_thread`` worker still printing after its block goes to the real stream too).

A capture keeps at most ``limit`` characters: the first two thirds and the last third of what was
written, and counts what was dropped (``cut``), so printing a gigabyte costs no more memory than the
limit. The echo (a notebook cell's live output) still sees every write.
"""

from __future__ import annotations

import io
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO, cast

# The captures of the block running in this context: (stdout's, stderr's), or None.
_target: ContextVar[tuple[Capture, Capture] | None] = ContextVar("rlm_capture", default=None)
_lock = threading.Lock()
_active = 0  # captures in progress, all threads together
_proxies: dict[str, _Dispatch] = {}
# Every proxy ever put on a stream, kept for the life of the process: CPython's print() holds only a
# borrowed reference to sys.stdout, so a proxy freed while another thread prints through it would
# crash the interpreter. One per stream that was there; reused when that stream comes back.
_made: dict[tuple[str, int], _Dispatch] = {}
# Set while a thread is inside a capture's write: an echo that is (or wraps) the proxy itself must
# reach the real stream, not come back round to the capture.
_dispatching = threading.local()
_original_lock = threading.RLock()


def cut_marker(cut: int, setting: str = "RLM.max_capture_chars") -> str:
    """The line that stands where output was dropped (one wording, used wherever output is cut)."""
    return f"\n… [{cut:,} characters of output cut here ({setting})] …\n"


class Capture(io.TextIOBase):
    """What one block wrote to one stream: the head and tail up to ``limit`` characters, with the
    number of characters dropped between them, optionally echoed live to ``echo`` in full."""

    def __init__(self, echo: TextIO | None = None, limit: int | None = None) -> None:
        self._echo = _real(echo)
        self._limit = limit
        self._head_room = (limit * 2 // 3) if limit is not None else None
        self._tail_room = (limit - limit * 2 // 3) if limit is not None else 0
        self._head: list[str] = []
        self._head_len = 0
        self._tail: deque[str] = deque()
        self._tail_len = 0
        self.cut = 0  # characters dropped between the head and the tail
        self.ended = False
        self._lock = threading.Lock()  # host functions on other threads may write at once

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._keep(text)
        if self._echo is not None:
            self._echo.write(text)
        return len(text)

    def _keep(self, text: str) -> None:
        if self._head_room is None:
            self._head.append(text)
            return
        room = self._head_room - self._head_len
        if room > 0:
            self._head.append(text[:room])
            self._head_len += min(room, len(text))
            text = text[room:]
        if not text:
            return
        if len(text) >= self._tail_room:  # the whole tail is this text's end
            self.cut += self._tail_len + len(text) - self._tail_room
            self._tail.clear()
            text = text[len(text) - self._tail_room :] if self._tail_room else ""
            self._tail_len = 0
        if text:
            self._tail.append(text)
            self._tail_len += len(text)
        while self._tail_len > self._tail_room:  # drop from the tail's start
            over = self._tail_len - self._tail_room
            first = self._tail[0]
            if len(first) <= over:
                self._tail.popleft()
                self._tail_len -= len(first)
                self.cut += len(first)
            else:
                self._tail[0] = first[over:]
                self._tail_len -= over
                self.cut += over

    def flush(self) -> None:
        if self._echo is not None:
            self._echo.flush()

    def getvalue(self) -> str:
        """What was kept: the head, the cut marker when something was dropped, and the tail."""
        with self._lock:
            head, tail = "".join(self._head), "".join(self._tail)
        return head + cut_marker(self.cut) + tail if self.cut else head + tail


class _Dispatch:
    """Sits on ``sys.stdout`` (or ``sys.stderr``): writes go to this context's capture, or to the
    stream that was there. Anything else (``encoding``, ``fileno``…) is the same object's (not an
    ``io`` subclass: its ``encoding``, ``closed``… would shadow the stream's)."""

    def __init__(self, index: int, original: TextIO) -> None:
        self._index = index
        self.original = original

    def _current(self) -> TextIO | Capture:
        targets = _target.get()
        if targets is not None and not getattr(_dispatching, "on", False):
            capture = targets[self._index]
            if not capture.ended:
                return capture
        return self.original

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        stream = self._current()
        if stream is self.original:
            # One writer at a time: threads that share the real stream (threads the model's code
            # started, the host's) would otherwise race inside it.
            with _original_lock:
                return stream.write(text)
        _dispatching.on = True
        try:
            return stream.write(text)
        finally:
            _dispatching.on = False

    def flush(self) -> None:
        self._current().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._current(), name)


def _real(stream: TextIO | None) -> TextIO | None:
    """An echo given as ``sys.stdout`` while a proxy is in: the stream behind it (no loop)."""
    found: object = stream
    while isinstance(found, _Dispatch):
        found = found.original
    return cast("TextIO | None", found)


def is_proxy(stream: object) -> bool:
    """Whether ``stream`` is the capture's proxy (``sys.stdout`` while captures are active)."""
    return isinstance(stream, _Dispatch)


def _install() -> None:
    global _active
    with _lock:
        _active += 1
        if _active > 1:
            return
        for index, name in enumerate(("stdout", "stderr")):
            current = getattr(sys, name)
            # A proxy a caller put back after the last capture ended (their redirect saved it) is
            # reused: it still dispatches, and it is taken out again when this capture ends.
            made = _made.get((name, id(current)))
            if isinstance(current, _Dispatch):
                proxy = current
            elif made is not None and made.original is current:
                proxy = made
            else:
                proxy = _made[(name, id(current))] = _Dispatch(index, current)
            _proxies[name] = proxy
            setattr(sys, name, proxy)


def _uninstall() -> None:
    global _active
    with _lock:
        _active -= 1
        if _active > 0:
            return
        for name, proxy in list(_proxies.items()):
            # Someone else replaced the stream meanwhile (and will put theirs back): leave it be.
            if getattr(sys, name) is proxy:
                setattr(sys, name, proxy.original)
            del _proxies[name]


def proxies() -> dict[str, object]:
    """The proxies in place now, by stream name (empty when no capture is active)."""
    with _lock:
        return dict(_proxies)


@contextmanager
def capturing(
    echo_stdout: TextIO | None = None,
    echo_stderr: TextIO | None = None,
    *,
    limit: int | None = None,
) -> Iterator[tuple[Capture, Capture]]:
    """Capture what this context writes to ``sys.stdout`` and ``sys.stderr`` until the block ends."""
    out, err = Capture(echo_stdout, limit), Capture(echo_stderr, limit)
    _install()
    token = _target.set((out, err))
    try:
        yield out, err
    finally:
        out.ended = err.ended = True
        try:
            _target.reset(token)
        except ValueError:  # reset from another context (cannot happen in a with block; be safe)
            _target.set(None)
        _uninstall()
