"""A private asyncio loop on a daemon thread, for concurrent sub-calls.

Iteration code is synchronous and may run on the kernel's main thread, whose own event loop is busy
running the cell. ``llm_batch`` therefore hands its coroutines to this loop and waits on a
``concurrent.futures.Future``: that wait is interruptible on the main thread, so a kernel interrupt or an
iteration timeout still lands, and the in-flight requests are cancelled.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

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
    """Run ``coro`` on the background loop and wait for it; cancel it if the wait is interrupted."""
    future = asyncio.run_coroutine_threadsafe(coro, background_loop())
    try:
        return future.result(timeout)
    except BaseException:
        future.cancel()
        raise
