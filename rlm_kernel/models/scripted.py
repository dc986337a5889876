"""A client that answers from a script: a list of responses or a function of the request.

For tests and teaching material that must not touch the network. Usage is estimated (chars/4) and
flagged as such.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ModelResponseError
from ._base import Completion, DeltaCallback, Message, estimated_usage

ScriptFunction = Callable[[Sequence[Message], str], str]


class ScriptedClient:
    """A model client that answers from a script, with no network: for tests and teaching.

    ``ScriptedClient(["```repl\\nprint(len(P))\\n```", ...])`` answers each request with the next
    response of the list, whichever model it names; ``ScriptedClient(fn)`` answers with
    ``fn(messages, model)``. Pass it as ``client=`` (and ``sub_client=``) to ``Session``.
    """

    def __init__(self, script: Sequence[str] | ScriptFunction) -> None:
        self._script = script
        self._index = 0
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """Always ``"scripted"``."""
        return "scripted"

    def _next(self, messages: Sequence[Message], model: str) -> str:
        if callable(self._script):
            return self._script(messages, model)
        with self._lock:
            if self._index >= len(self._script):
                raise ModelResponseError(
                    f"The scripted client ran out after {len(self._script)} responses",
                    fix="Add more responses to the script",
                    endpoint=self.endpoint,
                )
            text = self._script[self._index]
            self._index += 1
        return text

    def complete(
        self, messages: Sequence[Message], *, model: str, on_delta: DeltaCallback | None = None
    ) -> Completion:
        """The script's next response (or the function's answer), with estimated usage.

        A list that has run out raises ``ModelResponseError``.
        """
        started = time.perf_counter()
        text = self._next(messages, model)
        if on_delta is not None:
            on_delta(text)
        return Completion(
            text=text,
            model=model,
            usage=estimated_usage(messages, text),
            latency=time.perf_counter() - started,
            finish_reason="stop",
        )

    async def acomplete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> Completion:
        """``complete``, as a coroutine. A script answers in text only: offered ``tools``, it never
        calls one (the loopback ``ScriptedServer`` scripts tool calls)."""
        return self.complete(messages, model=model)
