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
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import _stdjson as json
from ._script import (
    CUT_REPLY,
    LATE_REPLY,
    TRICKLED_REPLY,
    Answer,
    ChatRequest,
    Fault,
    Injected,
    Reply,
    Responder,
    Script,
    ScriptError,
    Source,
    Timing,
    ToolUse,
    error_body,
    usage_of,
)

__all__ = [
    "ChatRequest",
    "Fault",
    "Reply",
    "Responder",
    "Script",
    "ScriptedServer",
    "Timing",
    "ToolUse",
]

_STREAM_PIECE = 20
# A long reply streams in bigger pieces: a 10 MB one in 20-character events would be half a million.
_MOST_PIECES = 1000
_CONNECTION_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
_JSON_TYPE = {"Content-Type": "application/json"}
_AZURE_CHAT = re.compile(r"/openai/deployments/[^/]+/chat/completions")


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_MAX_LINE = 65536
_MAX_HEADERS = 100


_PR_SET_TIMERSLACK = 29
_PRCTL: Any = None
if sys.platform == "linux":
    with contextlib.suppress(Exception):
        import ctypes

        _PRCTL = ctypes.CDLL(None).prctl


def _precise_timers() -> None:
    """Ask Linux to fire this thread's timers on time: the default slack lets a sleep run 50 µs long."""
    if _PRCTL is not None:
        with contextlib.suppress(Exception):
            _PRCTL(_PR_SET_TIMERSLACK, 1, 0, 0, 0)


class _BadRequest(Exception):
    pass


@dataclass
class _Parsed:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    target: str = ""  # the request target as sent, query included


class _Connection:
    """One client connection on its own thread: HTTP/1.1 requests answered in turn (keep-alive).

    A small hand-written HTTP/1.1 reader, because the standard library's ``BaseHTTPRequestHandler``
    parses headers with the ``email`` package (~40 µs a request) and the answer then waits for it.
    """

    def __init__(self, owner: ScriptedServer, sock: socket.socket) -> None:
        self.owner = owner
        self.sock = sock
        self.rfile = sock.makefile("rb")
        self.close_connection = False

    def serve(self) -> None:
        _precise_timers()
        try:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                while not self.close_connection:
                    try:
                        parsed = self._read_request()
                    except _BadRequest as exc:
                        self.close_connection = True
                        self._error(
                            400, f"scripted server: malformed request: {exc}", "bad_request"
                        )
                        break
                    if parsed is None:
                        break
                    self.close_connection = not parsed.keep_alive
                    self._dispatch(parsed)
        except Exception:  # a bug in the server itself: show it, as socketserver would
            if not self.owner._stopping.is_set():
                traceback.print_exc()
        finally:
            self.owner._forget(self.sock)
            with contextlib.suppress(OSError):
                self.rfile.close()
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                self.sock.close()

    def _readline(self) -> bytes:
        line = self.rfile.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise _BadRequest("line too long")
        return line

    def _read_request(self) -> _Parsed | None:
        line = self._readline()
        while line in (b"\r\n", b"\n"):  # tolerated before a request line (RFC 9112 §2.2)
            line = self._readline()
        if not line:
            return None  # the client closed the connection
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise _BadRequest(f"request line {line[:80]!r}")
        method, target, version = parts
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            raw = self._readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, colon, value = raw.decode("latin-1").partition(":")
            if not colon:
                raise _BadRequest(f"header line {raw[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        else:
            raise _BadRequest("too many headers")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        else:
            try:
                length = int(headers.get("content-length") or 0)
            except ValueError:
                raise _BadRequest("Content-Length is not a number") from None
            body = self.rfile.read(length) if length > 0 else b""
            if len(body) < length:
                return None  # the client went away mid-body
        connection = headers.get("connection", "").lower()
        keep_alive = (
            "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
        )
        return _Parsed(method, target.split("?", 1)[0], headers, body, keep_alive, target)

    def _read_chunked(self) -> bytes:
        pieces: list[bytes] = []
        while True:
            size_line = self._readline().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _BadRequest("bad chunk size") from None
            if size == 0:
                while self._readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(pieces)
            pieces.append(self.rfile.read(size))
            self._readline()

    # Answers. Each is built in full first, then sent in one write (status line, headers and body).

    def _message(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> bytes:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
        lines.append(f"Content-Length: {len(body)}")
        lines += [f"{k}: {v}" for k, v in {**_JSON_TYPE, **(headers or {})}.items()]
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _error(self, status: int, message: str, code: str | None) -> None:
        self.sock.sendall(self._message(status, error_body(message, status, code)))

    def _dispatch(self, parsed: _Parsed) -> None:
        received = time.perf_counter()
        route = parsed.path.rstrip("/")
        self.owner.targets.append(f"{parsed.method} {parsed.target}")
        if _AZURE_CHAT.fullmatch(route):  # Azure OpenAI's path for a deployment's chat completions
            route = "/v1/chat/completions"
        if parsed.method == "GET" and route == "/v1/models" and not self.owner.list_models:
            self._error(404, "scripted server: this server keeps no model list", "not_found")
            return
        if parsed.method == "GET" and route == "/v1/models":
            names = self.owner._model_names or ["scripted"]
            data = [
                {"id": n, "object": "model", "created": 0, "owned_by": "scripted"} for n in names
            ]
            self.sock.sendall(
                self._message(200, json.dumps({"object": "list", "data": data}).encode())
            )
            return
        if parsed.method != "POST" or route != "/v1/chat/completions":
            what = f"no route for {parsed.method} {parsed.path}"
            self._error(404, f"scripted server: {what}", "not_found")
            return
        try:
            body = json.loads(parsed.body)
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
            headers=parsed.headers,
        )
        owner = self.owner
        owner.requests.append(request)
        try:
            answer = owner._answer_for(request)
        except ScriptError as exc:
            self._error(exc.status, exc.message, exc.code)
            return
        except Exception as exc:  # a responder bug must reach the test as a readable 500
            self._error(500, f"scripted server: the responder raised {exc!r}", "responder_error")
            return
        delay = owner._latency_for(request.model)
        if isinstance(answer, Fault) and answer.kind == "timeout":
            delay += answer.delay
            answer = Reply(LATE_REPLY)
        writes = self._render(request, answer)
        # The model's latency counts from the moment the request was in: parsing it and rendering the
        # answer happen within that time, as they would on a real server, and only the rest is waited.
        if not owner._wait_until(received + delay):
            return  # stop() was called: no late answer
        if isinstance(answer, Fault) and answer.kind == "trickle":
            self._trickle(b"".join(writes), answer.delay)
            return
        for piece in writes:
            self.sock.sendall(piece)
        owner._record(request.model, received, delay)

    def _trickle(self, message: bytes, interval: float) -> None:
        """The head at once, then the body a byte at a time, until it is sent or stop() is called
        (a client that gave up makes the next write fail, which ends the connection)."""
        end = message.index(b"\r\n\r\n") + 4
        self.sock.sendall(message[:end])
        next_byte = time.perf_counter()
        for i in range(end, len(message)):
            next_byte += interval
            if not self.owner._wait_until(next_byte):
                return
            self.sock.sendall(message[i : i + 1])

    def _render(self, request: ChatRequest, answer: Answer) -> list[bytes]:
        if isinstance(answer, str):
            answer = Reply(answer)
        if isinstance(answer, Reply):
            return self._reply(request, answer)
        if answer.kind == "disconnect":
            self.close_connection = True  # the connection is then closed without a byte sent
            return []
        if answer.kind == "status":
            retry = {} if answer.retry_after is None else {"Retry-After": f"{answer.retry_after:g}"}
            message = f"scripted server: injected HTTP {answer.status}"
            body = error_body(message, answer.status, "injected_fault")
            return [self._message(answer.status, body, retry)]
        if answer.kind == "trickle":
            return self._reply(request, Reply(TRICKLED_REPLY))
        if answer.kind == "cut":
            return self._cut(request, answer)
        if answer.kind == "malformed":
            if request.stream:
                return self._stream_events(['{"id": "chatcmpl-broken", "choices": [{'])
            return [self._message(200, b'{"id": "chatcmpl-broken", "choices": [{"index": 0, ')]
        return self._reply(request, Reply(""), empty=True)  # empty_choices

    def _cut(self, request: ChatRequest, fault: Fault) -> list[bytes]:
        self.close_connection = True  # rendered with "Connection: close", then closed
        writes = self._reply(request, Reply(CUT_REPLY))
        if not request.stream:  # the head promises the whole body; half of it comes
            message = writes[0]
            body = message.index(b"\r\n\r\n") + 4
            return [message[: body + (len(message) - body) // 2]]
        # writes: the head, the role's event, one event per piece of text, and the rest; cut after
        # ``after`` pieces, with the last HTTP chunk unless abrupt.
        kept = writes[: 2 + fault.after]
        return kept if fault.abrupt else [*kept, b"0\r\n\r\n"]

    def _reply(self, request: ChatRequest, reply: Reply, *, empty: bool = False) -> list[bytes]:
        cid = self.owner._next_id()
        head: dict[str, Any] = {"id": cid, "created": int(time.time()), "model": request.model}
        usage = usage_of(request, reply)
        if not request.stream:
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if reply.tool_calls:
                message["content"] = reply.text or None  # as OpenAI sends a message of calls only
                message["tool_calls"] = reply.calls()
            choice = {"index": 0, "message": message, "finish_reason": reply.finish_reason}
            completion = {**head, "object": "chat.completion", "usage": usage}
            completion["choices"] = [] if empty else [choice]
            return [self._message(200, json.dumps(completion).encode())]
        head["object"] = "chat.completion.chunk"
        size = max(_STREAM_PIECE, -(-len(reply.text) // _MOST_PIECES))
        pieces = [{"content": reply.text[i : i + size]} for i in range(0, len(reply.text), size)]
        calls = [{"index": i, **c} for i, c in enumerate(reply.calls())]
        deltas = [{"role": "assistant"}, *pieces, *([{"tool_calls": calls}] if calls else []), {}]
        choices: list[list[dict[str, Any]]]
        choices = [[{"index": 0, "delta": d, "finish_reason": None}] for d in deltas]
        choices[-1][0]["finish_reason"] = reply.finish_reason
        chunks = [] if empty else [{**head, "choices": c} for c in choices]
        options = request.params.get("stream_options")
        if empty or (isinstance(options, dict) and options.get("include_usage")):
            chunks.append({**head, "choices": [], "usage": usage})
        return self._stream_events([json.dumps(c) for c in chunks])

    def _stream_events(self, events: Sequence[str]) -> list[bytes]:
        head = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Cache-Control: no-cache"]
        head.append("Transfer-Encoding: chunked")
        if self.close_connection:
            head.append("Connection: close")
        writes = [("\r\n".join(head) + "\r\n\r\n").encode("latin-1")]
        # One HTTP chunk per event, each its own write, so a client can see the text arrive piece by piece.
        for event in [*events, "[DONE]"]:
            data = f"data: {event}\n\n".encode()
            writes.append(b"%x\r\n%s\r\n" % (len(data), data))
        writes.append(b"0\r\n\r\n")
        return writes


class ScriptedServer:
    """An OpenAI-compatible chat-completions endpoint on loopback that answers from a script.

    ``script`` is a callable ``ChatRequest -> str | Reply | Fault``; or a list consumed one item per
    request; or a mapping from model name to either, where the key ``"*"`` catches other models.

    ``latency`` (seconds, or a mapping from model name to seconds with ``"*"`` as the fallback) is how
    long after a request has arrived in full its answer is sent: the server's own work on the request
    happens within that time. ``timings`` records, per answered request, when it arrived and when the
    answer was written, so a benchmark can see the latency actually applied.
    """

    def __init__(
        self, script: Script, *, latency: float | Mapping[str, float] = 0.0, host: str = "127.0.0.1"
    ) -> None:
        if isinstance(script, Mapping):
            self._routes = {str(k): Source(v) for k, v in script.items()}
            self._model_names = [k for k in self._routes if k != "*"]
        else:
            self._routes = {"*": Source(script)}
            self._model_names = []
        self.latency = latency
        self.host = host
        self.requests: list[ChatRequest] = []
        # Every request received, any route, as "METHOD target" (query included), in order.
        self.targets: list[str] = []
        # False answers GET /v1/models with 404, as a server without a model list does.
        self.list_models = True
        self._faults: list[Injected] = []  # FIFO
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._connections: set[socket.socket] = set()
        # Client connections accepted so far: fewer than requests when clients keep connections alive.
        self.connections_accepted = 0
        self.timings: list[Timing] = []
        self._stopping = threading.Event()
        # Held while the server runs; handlers wait out latencies by trying to take it with a timeout
        # (a plain C-level timed wait, ~60 µs closer to the deadline than Event.wait's Condition), and
        # stop() releases it to wake them all at once (each waiter that gets it passes it on).
        self._gate = threading.Lock()
        self._gate.acquire()
        self._listener: socket.socket | None = None
        self._port = 0
        self._thread: threading.Thread | None = None

    def start(self) -> ScriptedServer:
        """Listen on a free loopback port and serve in the background; returns the server.

        Starting a running server does nothing; a stopped one can be started again (on a new port).
        ``with ScriptedServer(...) as server:`` starts it and stops it at the end.
        """
        if self._listener is not None:
            return self
        if self._stopping.is_set():  # restarted after stop(): hold the gate again
            self._gate.acquire()
            self._stopping.clear()
        listener = socket.create_server((self.host, 0), backlog=128)
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._thread = threading.Thread(
            target=self._accept, args=(listener,), name="scripted-server", daemon=True
        )
        self._thread.start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        # A blocking accept() with no poll interval: the thread sleeps until a client connects, and
        # stop() wakes it by shutting the listening socket down.
        while not self._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if self._stopping.is_set():
                conn.close()
                return
            # Without TCP_NODELAY, Nagle plus delayed ACKs can add 40 ms to a keep-alive round trip.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections.add(conn)
                self.connections_accepted += 1
            handler = _Connection(self, conn)
            threading.Thread(target=handler.serve, name="scripted-server-conn", daemon=True).start()

    def stop(self) -> None:
        """Stop serving: close the listener and every client connection, and wake waiting handlers."""
        listener, thread = self._listener, self._thread
        if listener is None:
            return
        self._listener = self._thread = None
        self._stopping.set()
        self._gate.release()  # wakes handlers waiting out a latency or a timeout fault
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        listener.close()
        if thread is not None:
            thread.join()
        # Pooled keep-alive connections would otherwise keep being served after stop().
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def close_idle(self, timeout: float = 5.0) -> None:
        """Close every client connection, as a server does once its keep-alive timeout passes.

        Returns when their handlers have finished, so the closes have reached the clients.
        """
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._connections & set(connections):
                    return
            time.sleep(0.005)
        raise TimeoutError(f"connections still being served {timeout:g} s after close_idle()")

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, to pass as ``RLM.base_url``; only while running."""
        if self._listener is None:
            raise RuntimeError("the scripted server is not running; call start() first")
        return f"http://{self.host}:{self._port}/v1"

    def inject(self, fault: Fault, *, times: int = 1, model: str | None = None) -> None:
        """Answer the next ``times`` requests for ``model`` (any model when None) with ``fault``."""
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(Injected(fault, times, model))

    def reset(self) -> None:
        """Forget the requests, targets and timings seen so far, and any injected faults left."""
        with self._lock:
            self.requests.clear()
            self.targets.clear()
            self.timings.clear()
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
            raise ScriptError(404, f"scripted server: {what}", "model_not_found")
        return source.next(request)

    def _latency_for(self, model: str) -> float:
        latency = self.latency
        if isinstance(latency, Mapping):
            return float(latency.get(model, latency.get("*", 0.0)))
        return float(latency)

    def _wait_until(self, deadline: float) -> bool:
        """Wait until ``time.perf_counter()`` reaches ``deadline``; False when stop() came first."""
        remaining = deadline - time.perf_counter()
        if remaining > 0 and self._gate.acquire(timeout=min(remaining, threading.TIMEOUT_MAX)):
            self._gate.release()  # stop() opened the gate: pass it on to the next waiter
            return False
        return not self._stopping.is_set()

    def _record(self, model: str, received: float, latency: float) -> None:
        self.timings.append(Timing(model, received, time.perf_counter(), latency))

    def _forget(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _next_id(self) -> str:
        return f"chatcmpl-scripted-{next(self._ids)}"
