"""The SDK's default HTTP clients, with one change: a refused connection to this machine is final.

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
