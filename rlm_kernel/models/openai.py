"""The ``openai`` SDK client: OpenAI, Azure OpenAI, and every OpenAI-compatible server.

Retries are the SDK's own (exponential backoff with jitter, ``Retry-After`` honoured, on 429, 5xx,
timeouts and connection errors), sized by ``RLM.max_retries``, except for a refused connection to a
server on this machine, which is reported at once. What is left after the retries is turned into an
``RLMError`` that names the endpoint and the setting to change; a 404 is looked into (``/v1`` missing
from the URL, or a model the server's ``GET /models`` does not list: ``_diagnosis``). Every call goes
through the SDK's own transports, except root calls to an unproxied ``http://`` endpoint when
``RLM.lean_http`` is set (opt-in): those go through rlm_kernel's lean transport under the SDK
(``_transport``, h11 over pooled sockets). Which calls go where, and how their failures compare:
``_http_clients``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import openai
from openai import Stream
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from .. import _logging, _pricing
from .. import _stdjson as json
from .._config import RLM
from .._secrets import redact_url
from ..errors import (
    ModelConnectionError,
    ModelError,
    ModelRateLimitError,
    ModelResponseError,
    ModelServerError,
)
from . import _diagnosis, _request, _retries, _transport
from ._base import Completion, DeltaCallback, Message, ToolCall, Usage, estimated_usage
from ._http_clients import AsyncHTTP, LocalRefusal, SyncHTTP, WallTimeoutCut, http_library

# The request goes through the SDK's client (auth, retries, Retry-After, Azure routing, errors) but not
# through chat.completions.create, whose argument transform costs ~0.14 ms per message on every call:
# 6 ms a call by iteration 20, more than the rest of the loop. The messages are already plain dicts.
_PATH = "/chat/completions"
# Non-streamed answers are asked for as `object`: the SDK then hands back the decoded JSON (a dict)
# instead of building a pydantic ChatCompletion, of which only five fields are read. That saves about
# 0.15 ms of CPU per call, twice that when the call wakes the process from idle (cold caches).
_JSON = object

# Local servers (vLLM, Ollama, llama.cpp) ignore the key but the SDK insists on one.
_KEYLESS_PLACEHOLDER = "not-needed"
# Asking the server which models it has, after a 404: once, and not for long.
_LIST_OPTIONS: Any = {"max_retries": 0, "timeout": 10.0}


# SDK clients are shared by every session with the same endpoint settings, for the life of the process.
# An async client dropped while its connections live on the shared sub-call loop closes them late:
# asyncio has by then reused the file descriptors for a new batch's connections, whose readers the late
# close unregisters, and those requests hang.
_ClientKey = tuple[
    str, str, str, str, float, int, bool, tuple[tuple[str, str], ...], tuple[tuple[str, Any], ...]
]
_SYNC: dict[_ClientKey, openai.OpenAI] = {}
_ASYNC: dict[_ClientKey, openai.AsyncOpenAI] = {}
_LOCK = threading.Lock()
# One TLS context for all of them. Left to itself, every SDK client loads the CA bundle into a context
# of its own (~20 ms, even for an http:// endpoint): twice per endpoint, and the async client was built
# inside the first llm_batch. The context is made the way the SDK's HTTP library makes its default one
# (its own create_ssl_context(), which honours SSL_CERT_FILE / SSL_CERT_DIR), once per process.
_TLS: list[Any] = []


# The HTTP library under the SDK (the name the tests import).
_http_library = http_library


def _tls_context() -> Any:
    """The shared ``ssl.SSLContext``, or None when the SDK's HTTP library does not offer one."""
    if not _TLS:
        library = _http_library()
        try:
            context = library.create_ssl_context() if library is not None else None
        except Exception:  # let each client make its own
            context = None
        _TLS.append(context)
    return _TLS[0]


def _build(key: _ClientKey, asynchronous: bool) -> Any:
    provider, url, api_key, version, timeout, retries, lean_http, headers, query = key
    common: dict[str, Any] = {"api_key": api_key, "timeout": timeout, "max_retries": retries}
    # RLM.model_kwargs' headers and query go on the client, not on each request: the SDK's debug log
    # of older versions prints every request's options, and these may hold credentials.
    if headers:
        common["default_headers"] = dict(headers)
    if query:
        common["default_query"] = dict(query)
    context = _tls_context()
    # The SDK's own defaults (timeouts, connection limits, redirects), with the shared context.
    http: Any = AsyncHTTP if asynchronous else SyncHTTP
    tls: dict[str, Any] = {} if context is None else {"verify": context}
    library = _http_library()
    if lean_http and not asynchronous and library is not None and _transport.applies(url):
        fallback = library.HTTPTransport(**tls)
        transport = _transport.lean_transport(library, fallback)
        common["http_client"] = http(transport=transport, **tls)
    else:
        common["http_client"] = http(**tls)
    if provider == "azure":
        cls: Any = _retries.AsyncAzureOpenAI if asynchronous else _retries.AzureOpenAI
        return cls(azure_endpoint=url, api_version=version, **common)
    cls = _retries.AsyncOpenAI if asynchronous else _retries.OpenAI
    return cls(base_url=url or None, **common)


def _tool_calls(data: dict[str, Any]) -> tuple[ToolCall, ...]:
    """The tool calls of a decoded chat completion's first choice (malformed entries skipped)."""
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    if not isinstance(calls, list):
        return ()
    return tuple(
        ToolCall.from_dict(call)
        for call in calls
        if isinstance(call, dict) and isinstance(call.get("function"), dict)
    )


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` for a dict, ``obj.name`` for an SDK model (extra fields included), else None."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


class OpenAIClient:
    """Chat completions through the ``openai`` SDK, sync and async, optionally streamed."""

    def __init__(self, config: RLM) -> None:
        key = config.resolve_api_key()
        problem = _diagnosis.credentials_problem(config, key)
        if problem is not None:
            raise problem
        self._config = config
        self._extras = _request.split(config.model_kwargs)
        self._endpoint = redact_url(config.base_url) or "https://api.openai.com/v1"
        self._key: _ClientKey = (
            config.provider,
            config.base_url,
            key or _KEYLESS_PLACEHOLDER,
            config.api_version,
            config.request_timeout,
            config.max_retries,
            config.lean_http,
            tuple(sorted(self._extras.headers.items())),
            tuple(sorted(self._extras.query.items(), key=lambda item: item[0])),
        )
        # Built now (or taken from the cache): it is session set-up, not part of the first call or the
        # first llm_batch. With the shared TLS context, a client costs well under a millisecond.
        self._sync  # noqa: B018
        self._async  # noqa: B018

    @property
    def _sync(self) -> openai.OpenAI:
        with _LOCK:
            if self._key not in _SYNC:
                _SYNC[self._key] = _build(self._key, asynchronous=False)
            return _SYNC[self._key]

    @property
    def _async(self) -> openai.AsyncOpenAI:
        with _LOCK:
            if self._key not in _ASYNC:
                _ASYNC[self._key] = _build(self._key, asynchronous=True)
            return _ASYNC[self._key]

    @property
    def endpoint(self) -> str:
        """The base URL requests go to, without credentials (for messages, records and cache keys)."""
        return self._endpoint

    def _params(self, model: str, messages: Sequence[Message]) -> dict[str, Any]:
        if not model:
            # Checked per call, not when the client is built: a replay's live fallback is built
            # without a model and is asked with the recording's.
            raise _diagnosis.no_model_error()
        params: dict[str, Any] = {**self._extras.body, "model": model, "messages": list(messages)}
        cfg = self._config
        if cfg.temperature is not None:
            params["temperature"] = cfg.temperature
        if cfg.max_completion_tokens is not None:
            # OpenAI's own newer models want max_completion_tokens; compatible servers know max_tokens.
            name = (
                "max_tokens"
                if cfg.base_url and cfg.provider == "openai"
                else "max_completion_tokens"
            )
            params[name] = cfg.max_completion_tokens
        return params

    def _body(self, params: dict[str, Any]) -> dict[str, Any]:
        """``post``'s body argument: the JSON text made here, with the runtime's own ``json``
        (``_stdjson``), since the SDK looks ``json.dumps`` up at each request and namespace-executor
        code in another session may have rebound it process-wide for its block. Azure's client routes
        by the body's ``model``, so it is given the dict to serialise itself. The SDK decodes answers
        (and stream events) with ``json.loads`` looked up at call time: code that rebinds that breaks
        other sessions' calls until its block ends (docs/architecture.md, the namespace executor)."""
        if self._config.provider == "azure":
            return {"body": params}
        text = json.dumps(params, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return {"content": text.encode()}

    def complete(
        self, messages: Sequence[Message], *, model: str, on_delta: DeltaCallback | None = None
    ) -> Completion:
        """One chat completion for ``messages`` from ``model`` (streamed when ``on_delta`` is given or
        RLM.stream is on), with the SDK's retries; failures come back as rlm_kernel's ModelError."""
        params = self._params(model, messages)
        started = time.perf_counter()
        try:
            try:
                if on_delta is not None or self._config.stream:
                    completion = self._complete_stream(params, messages, started, on_delta)
                else:
                    data = self._sync.post(_PATH, **self._body(params), cast_to=_JSON)
                    completion = self._finish(data, messages, model, started)
            except (openai.OpenAIError, json.JSONDecodeError) as exc:
                offered = self._offered() if self._lists_models(exc) else None
                raise self._translate(exc, model, offered) from exc
        except ModelError as exc:
            self._log_failed(model, started, exc)
            raise
        self._log_done(completion)
        return completion

    async def acomplete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> Completion:
        """``complete`` on the async client, for sub-calls running side by side (``llm_batch``);
        with ``tools`` (chat-completions tool schemas) the answer may be tool calls; with
        ``response_format`` (a typed ``llm_query``) the endpoint's structured output."""
        params = self._params(model, messages)
        if tools:
            params["tools"] = list(tools)
        if response_format is not None:
            params["response_format"] = response_format
        started = time.perf_counter()
        try:
            try:
                data = await self._async.post(_PATH, **self._body(params), cast_to=_JSON)
            except (openai.OpenAIError, json.JSONDecodeError) as exc:
                offered = await self._aoffered() if self._lists_models(exc) else None
                raise self._translate(exc, model, offered) from exc
            completion = self._finish(data, messages, model, started)
        except ModelError as exc:
            self._log_failed(model, started, exc)
            raise
        if tools and isinstance(data, dict):
            # Read only when tools were offered: an answer without them has no calls to look for.
            completion = replace(completion, tool_calls=_tool_calls(data))
        self._log_done(completion)
        return completion

    # --- log lines (``_logging``): names and numbers only, scrubbed of the settings' secrets ---------
    def _log_done(self, completion: Completion) -> None:
        usage = completion.usage
        cost = "unknown" if usage.cost is None else f"${usage.cost:.6f}"
        _logging.emit(
            "rlm_kernel.requests",
            logging.DEBUG,
            f"{completion.model} at {self._endpoint}: {usage.prompt_tokens} prompt tokens "
            f"({usage.cached_tokens} cached), {usage.completion_tokens} completion tokens, cost "
            f"{cost}, {completion.latency:.3f} s, ok ({completion.finish_reason or 'no finish reason'})",
            self._config.secrets,
        )

    def _log_failed(self, model: str, started: float, error: ModelError) -> None:
        _logging.emit(
            "rlm_kernel.requests",
            logging.WARNING,
            f"{model} at {self._endpoint}: failed after {time.perf_counter() - started:.3f} s, "
            f"{type(error).__name__}: {error.what}",
            self._config.secrets,
        )

    # After a 404 the server is asked what it serves: the answer tells a wrong model name (it lists
    # others) from a wrong base URL (no list there either). Azure lists base models, not deployments.
    def _lists_models(self, exc: Exception) -> bool:
        return isinstance(exc, openai.NotFoundError) and self._config.provider == "openai"

    def _offered(self) -> list[str] | None:
        try:
            return _diagnosis.model_names(
                self._sync.get("/models", cast_to=_JSON, options=_LIST_OPTIONS)
            )
        except Exception:  # no list: the message says the model was not found, without one
            return None

    def models(self) -> list[str]:
        """The model names the endpoint's ``GET /models`` lists (asked once, no retries, 10 s at
        most); a ``ModelError`` that says why when it lists none (down, no such route, no list)."""
        try:
            names = _diagnosis.model_names(
                self._sync.get("/models", cast_to=_JSON, options=_LIST_OPTIONS)
            )
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            if isinstance(exc, openai.NotFoundError):
                raise _diagnosis.no_list_error(self._endpoint) from exc
            raise self._translate(exc, "(GET /models)") from exc
        if names is None:
            raise _diagnosis.no_list_error(self._endpoint)
        return names

    async def _aoffered(self) -> list[str] | None:
        try:
            listing = await self._async.get("/models", cast_to=_JSON, options=_LIST_OPTIONS)
        except Exception:
            return None
        return _diagnosis.model_names(listing)

    def _complete_stream(
        self,
        params: dict[str, Any],
        messages: Sequence[Message],
        started: float,
        on_delta: DeltaCallback | None,
    ) -> Completion:
        pieces: list[str] = []
        usage_obj: Any = None
        finish: str | None = None
        body = {**params, "stream": True, "stream_options": {"include_usage": True}}
        stream = self._sync.post(
            _PATH,
            **self._body(body),
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=Stream[ChatCompletionChunk],
        )
        model = str(params["model"])
        chose = False  # whether any chunk carried a choice
        try:
            for chunk in stream:
                if chunk.usage is not None:
                    usage_obj = chunk.usage
                for choice in chunk.choices:
                    chose = True
                    if choice.finish_reason:
                        finish = choice.finish_reason
                    text = choice.delta.content if choice.delta else None
                    if text:
                        pieces.append(text)
                        if on_delta is not None:
                            on_delta(text)
        except openai.APITimeoutError:
            raise
        except openai.APIConnectionError as exc:
            # The answer had begun: the connection broke during it, it did not fail to connect.
            raise self._cut_error(model, pieces, exc.__cause__ or exc) from exc
        except Exception as exc:
            # SDKs that pass the HTTP library's own errors out of a stream unwrapped.
            library = http_library()
            if library is None or not isinstance(exc, library.TransportError):
                raise
            if isinstance(exc, library.TimeoutException):
                raise openai.APITimeoutError(stream.response.request) from exc
            raise self._cut_error(model, pieces, exc) from exc
        text = "".join(pieces)
        if not chose and finish is None:
            raise self._empty_error(model)
        if finish is None:
            # Every chat-completions stream ends its choice with a finish reason; one that stops
            # without it was cut off (a proxy's or the server's limit, a dropped connection), even
            # when the HTTP message itself ended cleanly, and what came is only part of the reply.
            raise self._cut_error(model, pieces, None)
        return Completion(
            text=text,
            model=model,
            usage=self._usage(usage_obj, messages, text, model),
            latency=time.perf_counter() - started,
            finish_reason=finish,
        )

    def _finish(
        self, data: object, messages: Sequence[Message], model: str, started: float
    ) -> Completion:
        if isinstance(data, str):
            # The SDK returns the text when the Content-Type is not JSON; some servers label JSON wrongly.
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise self._translate(exc, model) from exc
        if not isinstance(data, dict):
            raise self._unreadable_error(f"expected a JSON object, got {type(data).__name__}")
        choices = data.get("choices")
        if not choices or not isinstance(choices, list):
            raise self._empty_error(model)
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        text = content if isinstance(content, str) else ""
        finish = choice.get("finish_reason")
        return Completion(
            text=text,
            model=str(data.get("model") or model),
            usage=self._usage(data.get("usage"), messages, text, model),
            latency=time.perf_counter() - started,
            finish_reason=finish if isinstance(finish, str) else None,
        )

    def _usage(self, usage: Any, messages: Sequence[Message], text: str, model: str) -> Usage:
        """Usage from the answer's ``usage``: a dict (plain answers) or the SDK's model (streams)."""
        if usage is None:
            result = estimated_usage(messages, text)
        else:
            details = _field(usage, "prompt_tokens_details")
            cost = _field(usage, "cost")  # OpenRouter's price of the call, an extra field
            result = Usage(
                prompt_tokens=int(_field(usage, "prompt_tokens") or 0),
                completion_tokens=int(_field(usage, "completion_tokens") or 0),
                cached_tokens=int(_field(details, "cached_tokens") or 0),
                cost=float(cost) if isinstance(cost, int | float) else None,
                calls=1,
            )
        if result.cost is None:
            result.cost = self._priced(model, result)
        return result

    def _priced(self, model: str, usage: Usage) -> float | None:
        cfg = self._config
        return _pricing.cost(
            model,
            usage.prompt_tokens,
            usage.cached_tokens,
            usage.completion_tokens,
            prices=cfg.prices,
            base_url=cfg.base_url or "https://api.openai.com/v1",
            table=cfg.known_prices,
        )

    def _empty_error(self, model: str) -> ModelResponseError:
        return ModelResponseError(
            f"The endpoint answered the request for model {model!r} with no choices",
            fix="Check that the server supports chat completions for this model (RLM.model / "
            "RLM.sub_model); some servers answer an empty list when a request is too long",
            endpoint=self._endpoint,
            setting="RLM.model",
        )

    @staticmethod
    def _broken_off(exc: BaseException) -> BaseException | None:
        """The HTTP library's error, when a connection was made and then failed (the answer broke
        off, the server closed it): not a failure to connect."""
        library = http_library()
        if library is None or not isinstance(exc, openai.APIConnectionError):
            return None
        if isinstance(exc, openai.APITimeoutError | LocalRefusal):
            return None
        cause: BaseException | None = exc.__cause__
        connecting = (library.ConnectError, library.ConnectTimeout, library.ProxyError)
        broke = isinstance(cause, library.TransportError) and not isinstance(cause, connecting)
        return cause if broke else None

    def _cut_error(
        self, model: str, pieces: list[str], cause: BaseException | None
    ) -> ModelConnectionError:
        got = sum(map(len, pieces))
        why = f": {cause}" if cause is not None and str(cause) else ""
        return ModelConnectionError(
            f"The stream ended before the model finished its reply ({model!r} sent {got:,} "
            f"characters and no finish reason){why}",
            fix="Resume the session to ask again; if it keeps happening, the server or a proxy in "
            "between is cutting streams off: set RLM.stream = False",
            endpoint=self._endpoint,
            setting="RLM.stream",
        )

    def _unreadable_error(self, what: str) -> ModelResponseError:
        return ModelResponseError(
            f"The endpoint's answer could not be read as a chat completion: {what}",
            fix="Check that RLM.base_url points to an OpenAI-compatible /v1 endpoint",
            endpoint=self._endpoint,
            setting="RLM.base_url",
        )

    def _translate(
        self,
        exc: openai.OpenAIError | json.JSONDecodeError,
        model: str,
        offered: list[str] | None = None,
    ) -> ModelError:
        ep = self._endpoint
        retries = self._config.max_retries
        if isinstance(exc, LocalRefusal):
            url = exc.request.url
            return _diagnosis.refused_error(url.host, url.port, ep)
        if isinstance(exc, WallTimeoutCut):
            wall = self._config.wall_timeout
            return ModelConnectionError(
                f"The call was cut when the session's time ran out (RLM.wall_timeout = {wall:g} s)"
                if wall is not None
                else "The call was cut when the session's time ran out (RLM.wall_timeout)",
                fix="Raise RLM.wall_timeout, or set it to None for no limit",
                endpoint=ep,
                setting="RLM.wall_timeout",
            )
        timeout = self._config.request_timeout
        if isinstance(exc, openai.APITimeoutError) and timeout <= 0:
            # Not a connection problem: no attempt had any time (a socket timeout of 0 would
            # otherwise have read as "could not connect").
            return ModelConnectionError(
                f"The endpoint did not answer within {timeout:g} s: RLM.request_timeout = "
                f"{timeout:g} leaves no time for an answer",
                fix="Set RLM.request_timeout to the seconds one answer may take, e.g. 120",
                endpoint=ep,
                setting="RLM.request_timeout",
            )
        if isinstance(exc, openai.APITimeoutError):
            # The whole answer, not just the silence between its bytes (``_http_clients``).
            return ModelConnectionError(
                f"The endpoint did not answer within {timeout:g} s (tried {retries + 1} times)",
                fix="Raise RLM.request_timeout, or check that the server is not overloaded",
                endpoint=ep,
                setting="RLM.request_timeout",
            )
        broken = self._broken_off(exc)
        if broken is not None:
            return ModelConnectionError(
                f"The connection to the model endpoint broke during the exchange (tried "
                f"{retries + 1} times): {broken}",
                fix="Check the server's logs (it closed the connection or crashed), or a proxy in "
                "between; RLM.max_retries sets how often a request is tried",
                endpoint=ep,
                setting="RLM.max_retries",
            )
        if isinstance(exc, openai.APIConnectionError):
            return ModelConnectionError(
                f"Could not connect to the model endpoint (tried {retries + 1} times): {exc}",
                fix="Check that the server is running and that RLM.base_url (OPENAI_BASE_URL) points to it",
                endpoint=ep,
                setting="RLM.base_url",
            )
        if isinstance(exc, openai.RateLimitError):
            return ModelRateLimitError(
                f"The endpoint kept answering 429 (rate limited) after {retries} retries",
                fix="Lower RLM.subcall_concurrency, raise RLM.max_retries, or wait and resume the session",
                endpoint=ep,
                setting="RLM.subcall_concurrency",
            )
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return _diagnosis.auth_error(self._config, exc.status_code, ep)
        if isinstance(exc, openai.NotFoundError):
            azure = self._config.provider == "azure"
            asked = redact_url(str(exc.request.url.copy_with(query=None)))
            if offered is None and not azure and _diagnosis.lacks_version(exc.request.url.path):
                return _diagnosis.path_error(asked, ep)
            if offered and model in offered:  # the model is there: the route is what is missing
                return _diagnosis.route_error(asked, model, ep)
            return _diagnosis.unknown_model_error(model, offered, ep, azure=azure)
        if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
            return ModelServerError(
                f"The endpoint kept failing with HTTP {exc.status_code} after {retries} retries",
                fix="Raise RLM.max_retries, or check the server's logs",
                endpoint=ep,
                setting="RLM.max_retries",
            )
        if isinstance(exc, openai.APIStatusError):
            return ModelResponseError(
                f"The endpoint rejected the request with HTTP {exc.status_code}: {exc.message}",
                fix="Check RLM.model and the endpoint's limits (a prompt may be too long for it)",
                endpoint=ep,
                setting="RLM.model",
            )
        return self._unreadable_error(str(exc))
