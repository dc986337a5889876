"""The SDK's default HTTP clients, with one change: a refused connection to this machine is final.

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
"""

from __future__ import annotations

from typing import Any

import openai

from ._diagnosis import connection_refused, is_local_host


class LocalRefusal(openai.APIConnectionError):
    """A refused connection to this machine. Raised from the HTTP client as an SDK error, which the
    SDK passes on as it is instead of retrying: nothing will be listening seconds of back-off later."""


def _check_refusal(exc: Exception, request: Any) -> None:
    url = request.url
    if is_local_host(url.host) and connection_refused(exc):
        raise LocalRefusal(request=request) from exc


class SyncHTTP(openai.DefaultHttpxClient):
    """The SDK's default HTTP client, reporting a refused local connection at once."""

    def send(self, request: Any, **kwargs: Any) -> Any:
        try:
            return super().send(request, **kwargs)
        except Exception as exc:
            _check_refusal(exc, request)
            raise


class AsyncHTTP(openai.DefaultAsyncHttpxClient):
    """The SDK's default async HTTP client, reporting a refused local connection at once."""

    async def send(self, request: Any, **kwargs: Any) -> Any:
        try:
            return await super().send(request, **kwargs)
        except Exception as exc:
            _check_refusal(exc, request)
            raise
