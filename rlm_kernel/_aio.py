"""A private asyncio loop on a daemon thread, for concurrent sub-calls.

Iteration code is synchronous and may run on the kernel's main thread, whose own event loop is busy
running the cell. ``llm_batch`` therefore hands its coroutines to this loop and waits on a
``concurrent.futures.Future``: that wait is interruptible on the main thread, so a kernel interrupt or an
iteration timeout still lands, and the in-flight requests are cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
# How often a waiting caller looks up, so that an asynchronous exception can land (run_sync).
_POLL = 0.05

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="rlm-kernel-subcalls", daemon=True
            )
            thread.start()
            _loop = loop
        return _loop


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the background loop and wait for it; cancel it if the wait is interrupted.

    The wait is short waits, not one long one. Off the main thread an iteration's time limit stops
    the block with an asynchronous exception (``_timeout``), which lands only between waits: a wait
    on a lock does not end for it. Waited in one piece, a block stuck in ``llm_batch`` past its limit
    ran on, abandoned, until its sub-calls finished, and under load the sub-calls of many such
    blocks piled up on the loop. Now they are cancelled and the block ends at its limit.
    """
    future = asyncio.run_coroutine_threadsafe(coro, background_loop())
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            left = _POLL if deadline is None else max(0.0, min(_POLL, deadline - time.monotonic()))
            try:
                # Future.result, not concurrent.futures.wait: the exception may land anywhere in
                # Python code, and wait() takes the future's lock in a helper's __enter__, which an
                # exception landing there leaves held, so the loop could never finish the future.
                return future.result(left)
            except concurrent.futures.TimeoutError:
                if future.done():  # the coroutine's own TimeoutError
                    return future.result()
                if deadline is not None and time.monotonic() >= deadline:
                    raise
    except BaseException:
        future.cancel()
        raise
