"""The SDK's default HTTP clients, with two changes: a refused connection to this machine is final,
and a request's timeout bounds each attempt in whole (with the session's wall_timeout), not each read.

Which calls go where (``openai._build``):

- **Root calls** (``OpenAIClient.complete``: the root model's turns, streamed or not, a child RLM's
  from ``rlm_query`` included) go through the sync ``SyncHTTP``, with the SDK's default transport
  (httpcore over h11); with ``RLM.lean_http`` set (opt-in) and an unproxied ``http://`` endpoint,
  with rlm_kernel's lean one instead (``_transport``: h11 over a pooled socket).
- **Sub-calls** (``OpenAIClient.acomplete``: ``llm_query``, ``llm_batch``, and ``rlm_query`` where
  it is one plain call, all on the shared sub-call loop) go through the async ``AsyncHTTP`` with the
  SDK's default async transport (httpcore over anyio and h11), whatever the endpoint.

Both raise the HTTP library's own exception classes, which the SDK turns into ``APITimeoutError`` /
``APIConnectionError`` (retried) or, for an answer, ``APIStatusError``, and ``OpenAIClient._translate``
into rlm_kernel's errors: a failure reads the same from either (``tests/test_transport.py`` checks it).
One difference is the async transport's: an early answer that arrives while it is still writing a body
larger than the socket buffers (a ``413`` sent before the body is read, then the connection closed) is
lost there — anyio reads nothing during a write, and asyncio closes the socket, answer unread, once
the write fails — and becomes a connection error; both sync transports return the server's answer.

The SDK retries every connection error with exponential back-off (about 7 s over four retries). For a
server on this machine a refusal means nothing listens on that port, which back-off does not change, so
``send`` raises it as an SDK error instead: the SDK passes SDK errors from its HTTP client on as they
are, without retrying. Connections elsewhere keep the SDK's retries.

**Deadlines.** The HTTP library applies a request's timeout (``RLM.request_timeout``, which the SDK
sets on every request) to each socket operation on its own, so a server that sends a byte a second
would never time out. Here it is the whole attempt's: each attempt must have its answer in whole
within it, and within what is left of the session's ``RLM.wall_timeout`` when that is sooner (the
``call_deadline`` the session sets around its calls). The sync client asks the library for the body as
a stream, checks the deadline at every piece that arrives and, with every socket timeout cut to the
time left, is never blocked past it for longer than one wait between two bytes (the lean transport
bounds each of its reads by the deadline itself, the head's included); it then reads the body itself
when the SDK wanted it read. The async client waits for the whole exchange under ``asyncio.wait_for``.
An attempt out of ``request_timeout`` fails as the library's ``ReadTimeout`` (retried by the SDK, then
``APITimeoutError``); one cut by ``wall_timeout`` as ``WallTimeoutCut``, an SDK error the SDK passes on
without retrying, as no time is left for a retry.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import openai

from ._base import current_deadline
from ._diagnosis import connection_refused, is_local_host
from ._transport import DEADLINE


@functools.cache
def http_library() -> ModuleType | None:
    """The HTTP library under the SDK (``httpx``, or ``httpx2`` in newer SDKs), if it can be told."""
    try:
        roots = {c.__module__.partition(".")[0] for c in openai.DefaultHttpxClient.__mro__}
        return next(sys.modules[r] for r in ("httpx2", "httpx") if r in roots)
    except Exception:  # an SDK laid out differently: leave its HTTP set-up alone
        return None


class LocalRefusal(openai.APIConnectionError):
    """A refused connection to this machine. Raised from the HTTP client as an SDK error, which the
    SDK passes on as it is instead of retrying: nothing will be listening seconds of back-off later."""


class WallTimeoutCut(openai.APITimeoutError):
    """The session's ``RLM.wall_timeout`` ran out while the request was in flight. An SDK error, which
    the SDK passes on as it is instead of retrying: there is no time left for another attempt."""


def _check_refusal(exc: Exception, request: Any) -> None:
    url = request.url
    if is_local_host(url.host) and connection_refused(exc):
        raise LocalRefusal(request=request) from exc


@dataclass(frozen=True)
class _Attempt:
    """When one attempt of a request must be over, and which setting says so."""

    ends: float | None  # time.monotonic(); None: no timeout at all
    wall: bool  # the session's wall_timeout is sooner than the request's own timeout


def _attempt(request: Any) -> _Attempt:
    """The attempt's deadline, and the request's socket timeouts cut to the time it leaves.

    Raises when no time is left before it starts (a ``request_timeout`` of 0, a spent wall_timeout).
    """
    timeouts: dict[str, float | None] = dict(request.extensions.get("timeout") or {})
    seconds = timeouts.get("read")
    now = time.monotonic()
    ends = None if seconds is None else now + seconds
    wall = current_deadline()
    attempt = _Attempt(wall, True) if wall is not None and (ends is None or wall <= ends) else None
    attempt = attempt or _Attempt(ends, False)
    if attempt.ends is None:
        return attempt
    left = attempt.ends - now
    if left <= 0:
        # Not the library's timeout (the SDK would retry it, after back-off, to no avail); a socket
        # timeout of 0 would also read as "could not connect" (non-blocking mode).
        raise WallTimeoutCut(request=request) if attempt.wall else openai.APITimeoutError(request)
    # A fresh dict: the SDK may share the one it built between requests.
    request.extensions["timeout"] = {
        name: left if value is None else min(value, left)
        for name, value in {
            "connect": None,
            "read": None,
            "write": None,
            "pool": None,
            **timeouts,
        }.items()
    }
    request.extensions[DEADLINE] = attempt.ends
    return attempt


def _expired(attempt: _Attempt, request: Any, library: ModuleType) -> Exception:
    if attempt.wall:
        return WallTimeoutCut(request=request)
    return library.ReadTimeout(  # type: ignore[no-any-return]
        "the answer did not arrive in whole within the request's timeout", request=request
    )


def _reworded(exc: Exception, attempt: _Attempt, request: Any, library: ModuleType) -> None:
    """A timeout of the library under a wall deadline is that deadline's: the socket timeouts were
    cut to it, so they cannot fire before it."""
    if attempt.wall and isinstance(exc, library.TimeoutException):
        raise WallTimeoutCut(request=request) from exc


@functools.cache
def _deadline_stream(library: ModuleType) -> Any:
    """The class that wraps a response body to end it at its attempt's deadline (it must subclass
    the library's own sync stream)."""

    class DeadlineStream(library.SyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, attempt: _Attempt, request: Any) -> None:
            self._inner, self._attempt, self._request = inner, attempt, request

        def __iter__(self) -> Iterator[bytes]:
            ends = self._attempt.ends
            assert ends is not None
            try:
                for piece in self._inner:
                    if time.monotonic() >= ends:  # a trickle: bytes keep coming, too slowly
                        raise _expired(self._attempt, self._request, library)
                    yield piece
            except library.TimeoutException as exc:
                _reworded(exc, self._attempt, self._request, library)
                raise

        def close(self) -> None:
            self._inner.close()

    return DeadlineStream


class SyncHTTP(openai.DefaultHttpxClient):
    """The SDK's default HTTP client, reporting a refused local connection at once, and ending each
    attempt at its deadline (the module docstring says how)."""

    def send(self, request: Any, *, stream: bool = False, **kwargs: Any) -> Any:
        library = http_library()
        if library is None:  # an SDK laid out differently: its own timeouts only
            return self._send(request, stream=stream, **kwargs)
        attempt = _attempt(request)
        if attempt.ends is None:
            return self._send(request, stream=stream, **kwargs)
        try:
            response = self._send(request, stream=True, **kwargs)
        except Exception as exc:
            _reworded(exc, attempt, request, library)
            raise
        response.stream = _deadline_stream(library)(response.stream, attempt, request)
        if not stream:  # as the library's own send does, with the body read under the deadline
            try:
                response.read()
            except BaseException:
                response.close()
                raise
        return response

    def _send(self, request: Any, **kwargs: Any) -> Any:
        try:
            return super().send(request, **kwargs)
        except Exception as exc:
            _check_refusal(exc, request)
            raise


class AsyncHTTP(openai.DefaultAsyncHttpxClient):
    """The SDK's default async HTTP client, reporting a refused local connection at once, and ending
    each attempt at its deadline (for a streamed answer, its head's arrival)."""

    async def send(self, request: Any, **kwargs: Any) -> Any:
        library = http_library()
        attempt = _attempt(request) if library is not None else _Attempt(None, False)
        try:
            if attempt.ends is None:
                return await super().send(request, **kwargs)
            left = max(0.0, attempt.ends - time.monotonic())
            return await asyncio.wait_for(super().send(request, **kwargs), left)
        except asyncio.TimeoutError as exc:
            assert library is not None
            raise _expired(attempt, request, library) from exc
        except Exception as exc:
            _check_refusal(exc, request)
            if library is not None:
                _reworded(exc, attempt, request, library)
            raise
