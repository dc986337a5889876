"""The SDK's clients with a log line for each retry (``rlm_kernel.retries``).

Retries stay the SDK's own (backoff with jitter, ``Retry-After``); these subclasses only say when one
happens. The hook is ``_calculate_retry_timeout``, which the SDK calls once per retry, from inside the
``except`` block that caught the failure (so ``sys.exc_info()`` holds why), just before it sleeps for
the value returned. A private method of the SDK, and the one place rlm_kernel leans on one:
tests/test_logging.py fails if the SDK stops calling it (a retry without its log line).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, cast

import openai

from .. import _logging
from .._secrets import redact_url

__all__ = ["AsyncAzureOpenAI", "AsyncOpenAI", "AzureOpenAI", "OpenAI", "why_retried"]


def why_retried(exc: BaseException | None, headers: Any) -> str:
    """What failed, in a few words: an HTTP status, a timeout, a connection error."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        after = headers.get("retry-after") if headers is not None else None
        return f"HTTP {status}" + (f" (Retry-After: {after})" if after else "")
    if exc is None:
        return "a failed attempt"
    name = type(exc).__name__
    return "a timeout" if "Timeout" in name else f"{name} (no answer)"


class _LogsRetries:
    """Mixed in before an SDK client class: logs each retry the SDK is about to wait for."""

    def _calculate_retry_timeout(
        self, remaining_retries: int, options: Any, response_headers: Any = None
    ) -> float:
        wait = cast(Any, super())._calculate_retry_timeout(
            remaining_retries, options, response_headers
        )
        client = cast(Any, self)
        most = options.get_max_retries(client.max_retries)
        _logging.emit(
            "rlm_kernel.retries",
            logging.INFO,
            f"retry {most - remaining_retries + 1} of {most} to {redact_url(str(client.base_url))} "
            f"in {wait:.2f} s after {why_retried(sys.exc_info()[1], response_headers)}",
            lambda: [client.api_key],
        )
        return float(wait)


class OpenAI(_LogsRetries, openai.OpenAI):
    """``openai.OpenAI`` that logs its retries."""


class AsyncOpenAI(_LogsRetries, openai.AsyncOpenAI):
    """``openai.AsyncOpenAI`` that logs its retries."""


class AzureOpenAI(_LogsRetries, openai.AzureOpenAI):
    """``openai.AzureOpenAI`` that logs its retries."""


class AsyncAzureOpenAI(_LogsRetries, openai.AsyncAzureOpenAI):
    """``openai.AsyncAzureOpenAI`` that logs its retries."""
