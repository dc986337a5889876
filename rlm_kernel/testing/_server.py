"""A loopback, scripted, OpenAI-compatible chat-completions server for tests and benchmarks.

Mocking the SDK would test our assumptions about the SDK, not the SDK: retries, timeouts, connection
pooling, streaming and error mapping all live below the point a mock replaces. This server speaks
real HTTP on 127.0.0.1 so the real ``openai`` client runs end to end, while every answer comes from
a script the test controls: fixed replies, per-model routing, callables that read the prompt, and
injected faults (HTTP errors, hangs, broken JSON, dropped connections). It is stdlib-only and cheap
per request, because benchmarks use it to measure framework overhead of a few milliseconds.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeAlias

__all__ = ["ChatRequest", "Fault", "Reply", "Responder", "Script", "ScriptedServer"]

_FAULT_KINDS = frozenset({"status", "timeout", "malformed", "empty_choices", "disconnect"})
# What a client that gave up on a timeout fault would have received; answering this instead of
# consulting the script keeps the script's order independent of when the late answer goes out.
_LATE_REPLY = "scripted server: late answer after a timeout fault"
_STREAM_PIECE = 20
_CONNECTION_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(str(p.get("text", "")) for p in parts)
    return ""  # None, e.g. an assistant message that only carries tool calls


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion request as the server received it."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    params: dict[str, Any]
    headers: dict[str, str]

    @property
    def prompt(self) -> str:
        """Text of the last user message, or "" when there is none."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return _text_of(message.get("content"))
        return ""

    @property
    def prompt_chars(self) -> int:
        return sum(len(_text_of(m.get("content"))) for m in self.messages)


@dataclass(frozen=True)
class Reply:
    """A successful answer; token counts left as None are estimated at four characters a token."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    cost: float | None = None
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Fault:
    """Something going wrong on the server side, answered instead of a reply."""

    kind: str
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}, not in {sorted(_FAULT_KINDS)}")

    @classmethod
    def status_code(cls, code: int, retry_after: float | None = None) -> Fault:
        return cls("status", status=code, retry_after=retry_after)

    @classmethod
    def timeout(cls, delay: float) -> Fault:
        return cls("timeout", delay=delay)

    @classmethod
    def malformed(cls) -> Fault:
        return cls("malformed")

    @classmethod
    def empty_choices(cls) -> Fault:
        return cls("empty_choices")

    @classmethod
    def disconnect(cls) -> Fault:
        return cls("disconnect")


Answer: TypeAlias = str | Reply | Fault
Responder: TypeAlias = Callable[[ChatRequest], Answer]
Script: TypeAlias = Responder | Sequence[Answer] | Mapping[str, Responder | Sequence[Answer]]


@dataclass
class _Injected:
    fault: Fault
    times: int
    model: str | None  # None matches every model


class _ScriptError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class _Source:
    """One model's script: a callable, or a list read through a cursor shared by all threads."""

    def __init__(self, script: Responder | Sequence[Answer]) -> None:
        if isinstance(script, str | bytes) or not (
            callable(script) or isinstance(script, Sequence)
        ):
            raise TypeError(f"a script must be a callable or a list of answers, not {script!r}")
        self._responder = script if callable(script) else None
        self._items: tuple[Answer, ...] = () if callable(script) else tuple(script)
        self._cursor = 0
        self._lock = threading.Lock()

    def next(self, request: ChatRequest) -> Answer:
        if self._responder is not None:
            return self._responder(request)
        with self._lock:
            self._cursor += 1
            if self._cursor <= len(self._items):
                return self._items[self._cursor - 1]
        what = f"the script for model '{request.model}' ran out after {len(self._items)} responses"
        raise _ScriptError(500, f"scripted server: {what}", "script_exhausted")


def _usage(request: ChatRequest, reply: Reply) -> dict[str, Any]:
    prompt = reply.prompt_tokens
    prompt = max(1, math.ceil(request.prompt_chars / 4)) if prompt is None else prompt
    completion = reply.completion_tokens
    completion = max(1, math.ceil(len(reply.text) / 4)) if completion is None else completion
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
    }
    if reply.cost is not None:
        usage["cost"] = reply.cost  # OpenRouter reports the price of the call here
    return usage


def _error_body(message: str, status: int, code: str | None) -> bytes:
    kind = {401: "authentication_error", 429: "rate_limit_error"}.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    owner: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (timeouts, disconnect faults, stop()) is expected, not an error.
        if not isinstance(sys.exc_info()[1], _CONNECTION_ERRORS):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY, Nagle plus delayed ACKs can add 40 ms to a keep-alive round trip.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.owner._lock:
            self.server.owner._connections.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.owner._lock:
            self.server.owner._connections.discard(self.connection)

    def handle(self) -> None:
        with contextlib.suppress(*_CONNECTION_ERRORS):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        # Status line, headers and body in one write: one syscall and one packet per answer.
        phrase = self.responses.get(status, ("Unknown",))[0]
        lines = [f"HTTP/1.1 {status} {phrase}", f"Content-Length: {len(body)}"]
        lines += [
            f"{k}: {v}" for k, v in {"Content-Type": "application/json", **(headers or {})}.items()
        ]
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _error(self, status: int, message: str, code: str | None) -> None:
        self._send(status, _error_body(message, status, code))

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            self._error(404, f"scripted server: no route for GET {self.path}", "not_found")
            return
        names = self.server.owner._model_names or ["scripted"]
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "scripted"} for n in names]
        self._send(200, json.dumps({"object": "list", "data": data}).encode())

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"scripted server: no route for POST {self.path}", "not_found")
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("the request body is not a JSON object")
        except ValueError as exc:
            self._error(400, f"scripted server: bad request body: {exc}", "invalid_json")
            return
        request = ChatRequest(
            model=str(body.get("model", "")),
            messages=list(body.get("messages") or []),
            stream=bool(body.get("stream", False)),
            params={k: v for k, v in body.items() if k not in ("model", "messages", "stream")},
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        owner = self.server.owner
        owner.requests.append(request)
        try:
            answer = owner._answer_for(request)
        except _ScriptError as exc:
            self._error(exc.status, exc.message, exc.code)
            return
        except Exception as exc:  # a responder bug must reach the test as a readable 500
            self._error(500, f"scripted server: the responder raised {exc!r}", "responder_error")
            return
        owner._sleep(owner._latency_for(request.model))
        self._answer(request, answer)

    def _answer(self, request: ChatRequest, answer: Answer) -> None:
        if isinstance(answer, str):
            answer = Reply(answer)
        if isinstance(answer, Reply):
            self._reply(request, answer)
            return
        if answer.kind == "disconnect":
            self.close_connection = True  # finish() then closes the socket without a byte sent
        elif answer.kind == "status":
            retry = {} if answer.retry_after is None else {"Retry-After": f"{answer.retry_after:g}"}
            message = f"scripted server: injected HTTP {answer.status}"
            self._send(answer.status, _error_body(message, answer.status, "injected_fault"), retry)
        elif answer.kind == "timeout":
            self.server.owner._sleep(answer.delay)
            self._reply(request, Reply(_LATE_REPLY))
        elif answer.kind == "malformed":
            if request.stream:
                self._stream_events(['{"id": "chatcmpl-broken", "choices": [{'])
            else:
                self._send(200, b'{"id": "chatcmpl-broken", "choices": [{"index": 0, ')
        else:  # empty_choices
            self._reply(request, Reply(""), empty=True)

    def _reply(self, request: ChatRequest, reply: Reply, *, empty: bool = False) -> None:
        cid = self.server.owner._next_id()
        head: dict[str, Any] = {"id": cid, "created": int(time.time()), "model": request.model}
        usage = _usage(request, reply)
        if not request.stream:
            message = {"role": "assistant", "content": reply.text}
            choice = {"index": 0, "message": message, "finish_reason": reply.finish_reason}
            completion = {**head, "object": "chat.completion", "usage": usage}
            completion["choices"] = [] if empty else [choice]
            self._send(200, json.dumps(completion).encode())
            return
        head["object"] = "chat.completion.chunk"
        size = _STREAM_PIECE
        pieces = [{"content": reply.text[i : i + size]} for i in range(0, len(reply.text), size)]
        deltas = [{"role": "assistant"}, *pieces, {}]
        choices: list[list[dict[str, Any]]]
        choices = [[{"index": 0, "delta": d, "finish_reason": None}] for d in deltas]
        choices[-1][0]["finish_reason"] = reply.finish_reason
        chunks = [] if empty else [{**head, "choices": c} for c in choices]
        options = request.params.get("stream_options")
        if empty or (isinstance(options, dict) and options.get("include_usage")):
            chunks.append({**head, "choices": [], "usage": usage})
        self._stream_events([json.dumps(c) for c in chunks])

    def _stream_events(self, events: Sequence[str]) -> None:
        head = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Cache-Control: no-cache"]
        head.append("Transfer-Encoding: chunked")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        # One HTTP chunk per event, so a client can see the text arrive piece by piece.
        for event in [*events, "[DONE]"]:
            data = f"data: {event}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")


class ScriptedServer:
    """An OpenAI-compatible chat-completions endpoint on loopback that answers from a script.

    ``script`` is a callable ``ChatRequest -> str | Reply | Fault``; or a list consumed one item per
    request; or a mapping from model name to either, where the key ``"*"`` catches other models.
    """

    def __init__(
        self, script: Script, *, latency: float | Mapping[str, float] = 0.0, host: str = "127.0.0.1"
    ) -> None:
        if isinstance(script, Mapping):
            self._routes = {str(k): _Source(v) for k, v in script.items()}
            self._model_names = [k for k in self._routes if k != "*"]
        else:
            self._routes = {"*": _Source(script)}
            self._model_names = []
        self.latency = latency
        self.host = host
        self.requests: list[ChatRequest] = []
        self._faults: list[_Injected] = []  # FIFO
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ScriptedServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer((self.host, 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        # A short poll interval keeps stop() quick; new connections still wake select() at once.
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        self._stopping.set()  # wakes handlers sleeping on latency or a timeout fault
        httpd.shutdown()
        httpd.server_close()
        # Pooled keep-alive connections would otherwise keep being served after stop().
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the scripted server is not running; call start() first")
        return f"http://{self.host}:{self._httpd.server_address[1]}/v1"

    def inject(self, fault: Fault, *, times: int = 1, model: str | None = None) -> None:
        """Answer the next ``times`` requests for ``model`` (any model when None) with ``fault``."""
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(_Injected(fault, times, model))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    # Internals used by the handler threads.

    def _answer_for(self, request: ChatRequest) -> Answer:
        with self._lock:
            for entry in self._faults:
                if entry.model is None or entry.model == request.model:
                    entry.times -= 1
                    if entry.times == 0:
                        self._faults.remove(entry)
                    return entry.fault
        source = self._routes.get(request.model) or self._routes.get("*")
        if source is None:
            what = f"the model '{request.model}' does not exist; scripted: {self._model_names}"
            raise _ScriptError(404, f"scripted server: {what}", "model_not_found")
        return source.next(request)

    def _latency_for(self, model: str) -> float:
        latency = self.latency
        if isinstance(latency, Mapping):
            return float(latency.get(model, latency.get("*", 0.0)))
        return float(latency)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _next_id(self) -> str:
        return f"chatcmpl-scripted-{next(self._ids)}"
