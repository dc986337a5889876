"""A lean HTTP/1.1 transport for the SDK's sync client, for plain ``http://`` endpoints (opt-in).

Local model servers (vLLM, Ollama, llama.cpp, the test server) answer in milliseconds, so the client's
own cost shows. This transport keeps the SDK on top — it still builds every request, retries, honours
``Retry-After`` and maps errors — and sends the finished request over a pooled connection of its own,
framed by ``h11``, the HTTP/1.1 state machine under the SDK's transport too: one socket write per
request and one read for a short answer, without httpcore's pool, tracing and locks. That is about
0.2–0.3 ms less per root call than the SDK's default transport once the process wakes from waiting on
the model, though about 0.15 ms more than a hand-written parser, so ``RLM.lean_http`` is off unless
asked for (benchmarks/README.md).

Failures come out as the HTTP library's own exceptions, as its transport raises them: timeouts as
``ConnectTimeout`` / ``WriteTimeout`` / ``ReadTimeout``, socket errors as ``ConnectError`` /
``ReadError``, a broken answer as ``RemoteProtocolError``, a request h11 refuses (a header with a line
break) as ``LocalProtocolError``. Like httpcore, a request the server stops taking — it answered early
and closed, as a server does with ``413`` for an oversized prompt before reading the body — is not a
failure: the answer already sent is read and returned (RFC 9112 §9.5). Unlike httpcore, an answer that
arrives while the body is still being written ends the writing at once, closed connection or not,
rather than after the write timeout.

It is used only where it cannot change behaviour: ``http://`` URLs with no proxy from the environment
(a custom transport turns the HTTP library's own proxy handling off). Anything else — ``https://``, a
redirect elsewhere — goes to the library's default transport. The transport uses only the library's
public transport interface (``BaseTransport``, ``Request``, ``Response``, ``SyncByteStream`` and its
exception classes).
"""

from __future__ import annotations

import contextlib
import functools
import select
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import h11

# As httpcore's default: an idle connection older than this is closed rather than reused, because the
# server may be closing it at the same moment (uvicorn, which serves vLLM, closes after 5 s).
KEEPALIVE_EXPIRY = 5.0
_MAX_IDLE = 16  # per host; more are closed when they come back
_READ = 65536  # bytes per read, as httpcore
_MAX_HEAD = 100 * 1024  # the longest status line and headers accepted, as httpcore
_ANSWERED = select.POLLIN | select.POLLERR | select.POLLHUP if hasattr(select, "poll") else 0
_ErrorType = Callable[..., Exception]  # an HTTP library exception class: (message, *, request)
# A request extension: when (``time.monotonic()``) the whole exchange must be over. ``SyncHTTP`` sets
# it; every read here, the answer's head included, waits no longer than the time left.
DEADLINE = "rlm_kernel.deadline"


def applies(base_url: str) -> bool:
    """Whether requests to ``base_url`` may use the lean transport: plain http, and no proxy.

    With an http proxy configured at all, the HTTP library keeps the request, so that its own reading
    of ``NO_PROXY`` decides, exactly as without rlm_kernel.
    """
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    proxies = urllib.request.getproxies()  # what the HTTP library reads, system settings included
    return not (proxies.get("http") or proxies.get("all"))


def lean_transport(library: ModuleType, fallback: Any) -> Any:
    """A transport for ``library`` (``httpx`` or ``httpx2``, whichever the SDK uses).

    ``fallback`` is the library's own transport, for requests this one does not handle.
    """
    return _classes(library)(fallback)


class _Disconnected(Exception):
    """The server closed the connection before it started its answer."""


class _Connection:
    """One keep-alive HTTP/1.1 connection: a socket, and h11's view of the exchange on it."""

    def __init__(self, host: str, port: int, connect_timeout: float | None) -> None:
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        try:
            # Small writes go out at once: Nagle plus delayed ACKs can hold one back for 40 ms.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            self.sock.close()
            raise
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self.idle_since = 0.0
        self._early: h11.Response | None = None  # an answer that came while writing the request
        # The exchange's deadline and read timeout (``DEADLINE``): set per request, reads obey both.
        self.deadline: float | None = None
        self.read_timeout: float | None = None

    def set_timeout(self, seconds: float | None) -> None:
        if self.sock.gettimeout() != seconds:  # settimeout is a system call; it rarely changes
            self.sock.settimeout(seconds)

    def still_open(self) -> bool:
        """False when the server has closed the idle connection (or sent something unasked)."""
        # Readable while idle means EOF or stray bytes; either way the connection is not reusable.
        try:
            return not _readable(self.sock, 0.0)
        except (OSError, ValueError):
            return False

    def send(self, request: h11.Request, body: bytes) -> None:
        """Write the request in one piece, unless the server answers or goes away first.

        Then the writing stops without an error, h11 is told the request was not sent in full (so
        the connection is not reused), and ``head()`` reads the answer that is there, if any.
        """
        conn = self.h11
        pieces = [conn.send(request) or b""]
        if body:
            pieces.extend(conn.send_with_data_passthrough(h11.Data(data=body)) or ())
        pieces.append(conn.send(h11.EndOfMessage()) or b"")
        data = memoryview(b"".join(pieces))
        try:
            sent = self.sock.send(data)  # all of it, unless it is larger than the socket's buffer
            while sent < len(data):
                if self._answered_meanwhile():
                    conn.send_failed()
                    return
                sent += self.sock.send(data[sent:])
        except TimeoutError:
            raise
        except OSError:  # reset or closed by the server: its answer may be waiting to be read
            conn.send_failed()

    def _answered_meanwhile(self) -> bool:
        """Wait until more can be written; True if the server answered (or closed) first."""
        timeout = self.sock.gettimeout()
        if hasattr(select, "poll"):  # select() cannot take descriptors past 1023
            poller = select.poll()
            poller.register(self.sock, select.POLLIN | select.POLLOUT)
            ready = poller.poll(None if timeout is None else timeout * 1000)
            if not ready:
                raise TimeoutError("timed out")
            if not ready[0][1] & _ANSWERED:
                return False
        else:
            readable, writable, _ = select.select([self.sock], [self.sock], [], timeout)
            if not (readable or writable):
                raise TimeoutError("timed out")
            if not readable:
                return False
        # Something came back. An informational (1xx) answer asks for the rest of the request; a
        # final one, or the connection's end, means the server will not read it.
        try:
            data = self.sock.recv(_READ)
        except OSError:
            return True
        if not data:
            return True
        self.h11.receive_data(data)
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                return False
            if isinstance(event, h11.Response):
                self._early = event
                return True

    def head(self) -> h11.Response:
        """The answer's status line and headers; informational (1xx) answers are skipped."""
        if self._early is not None:
            event, self._early = self._early, None
            return event
        while True:
            event = self.next_event()
            if isinstance(event, h11.Response):
                return event

    def next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = self._recv()
            # h11 would call this a protocol error in its own terms; httpcore words it so too.
            if not data and self.h11.their_state is h11.SEND_RESPONSE:
                raise _Disconnected("Server disconnected without sending a response.")
            self.h11.receive_data(data)

    def _recv(self) -> bytes:
        if self.deadline is not None:  # a server trickling bytes must not outlast the deadline
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            self.set_timeout(left if self.read_timeout is None else min(self.read_timeout, left))
        return self.sock.recv(_READ)

    @property
    def reusable(self) -> bool:
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _readable(sock: socket.socket, timeout: float) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    readable, _, _ = select.select([sock], [], [], timeout)
    return bool(readable)


class _Errors:
    """The HTTP library's exception classes, which the SDK maps to its own (timeouts, connection)."""

    def __init__(self, library: ModuleType) -> None:
        self.connect: _ErrorType = library.ConnectError
        self.connect_timeout: _ErrorType = library.ConnectTimeout
        self.read: _ErrorType = library.ReadError
        self.read_timeout: _ErrorType = library.ReadTimeout
        self.write_timeout: _ErrorType = library.WriteTimeout
        self.protocol: _ErrorType = library.RemoteProtocolError
        self.local: _ErrorType = library.LocalProtocolError

    def on_connect(self, exc: OSError, request: Any) -> Exception:
        if isinstance(exc, TimeoutError):
            return self.connect_timeout(str(exc) or "timed out", request=request)
        return self.connect(str(exc) or type(exc).__name__, request=request)

    def on_exchange(self, exc: Exception, request: Any, *, sending: bool) -> Exception:
        """What the library's transport raises for ``exc``. Only a timeout can stop the writing:
        any other socket error there is left for the reading to find (see ``_Connection.send``)."""
        if isinstance(exc, TimeoutError):
            cls = self.write_timeout if sending else self.read_timeout
            return cls(str(exc) or "timed out", request=request)
        if isinstance(exc, h11.LocalProtocolError):  # a request h11 will not write (a line break)
            return self.local(str(exc), request=request)
        if isinstance(exc, h11.RemoteProtocolError | _Disconnected):
            return self.protocol(str(exc), request=request)
        return self.read(str(exc) or type(exc).__name__, request=request)


class _Pool:
    """Idle keep-alive connections per (host, port); each request has one to itself."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._lock = threading.Lock()

    def take(self, host: str, port: int) -> _Connection | None:
        now = time.monotonic()
        while True:
            with self._lock:
                idle = self._idle.get((host, port))
                if not idle:
                    return None
                conn = idle.pop()
            if now - conn.idle_since < KEEPALIVE_EXPIRY and conn.still_open():
                return conn
            conn.close()

    def give(self, host: str, port: int, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        with self._lock:
            idle = self._idle.setdefault((host, port), [])
            if len(idle) < _MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            conns = [conn for idle in self._idle.values() for conn in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()


@functools.cache
def _classes(library: ModuleType) -> Any:
    """The transport class for ``library``: its response stream must subclass the library's own."""
    errors = _Errors(library)

    class Stream(library.SyncByteStream):  # type: ignore[name-defined,misc]
        """The response body, read as it arrives (streamed answers come in pieces)."""

        def __init__(self, conn: _Connection, request: Any, done: Callable[[bool], None]) -> None:
            self._conn = conn
            self._request = request
            self._done: Callable[[bool], None] | None = done  # True: the connection may be reused

        def __iter__(self) -> Iterator[bytes]:
            try:
                while True:
                    event = self._conn.next_event()
                    if isinstance(event, h11.Data):
                        yield bytes(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        return
            except Exception as exc:
                raise errors.on_exchange(exc, self._request, sending=False) from exc

        def close(self) -> None:
            if self._done is not None:
                done, self._done = self._done, None
                done(self._conn.reusable)

    class LeanTransport(library.BaseTransport):  # type: ignore[name-defined,misc]
        def __init__(self, fallback: Any) -> None:
            self._fallback = fallback
            self._pool = _Pool()

        def handle_request(self, request: Any) -> Any:
            url = request.url
            if url.scheme != "http":
                return self._fallback.handle_request(request)
            host, port = url.host, url.port or 80
            timeouts = request.extensions.get("timeout", {})
            conn = self._pool.take(host, port)
            if conn is None:
                try:
                    conn = _Connection(host, port, timeouts.get("connect"))
                except OSError as exc:
                    raise errors.on_connect(exc, request) from exc
            sending = True
            try:
                body = request.read()
                event = h11.Request(
                    method=request.method, target=url.raw_path, headers=_headers(request, body)
                )
                conn.set_timeout(timeouts.get("write"))
                conn.send(event, body)
                sending = False
                conn.deadline = request.extensions.get(DEADLINE)
                conn.read_timeout = timeouts.get("read")
                conn.set_timeout(conn.read_timeout)
                head = conn.head()
            except Exception as exc:
                conn.close()
                raise errors.on_exchange(exc, request, sending=sending) from exc
            except BaseException:
                conn.close()  # interrupted halfway through the exchange: not reusable
                raise

            def done(reusable: bool) -> None:
                if reusable:
                    conn.h11.start_next_cycle()
                    self._pool.give(host, port, conn)
                else:
                    conn.close()

            return library.Response(
                head.status_code,
                headers=head.headers.raw_items(),
                stream=Stream(conn, request, done),
                extensions={
                    "http_version": b"HTTP/" + head.http_version,
                    "reason_phrase": head.reason,
                },
            )

        def close(self) -> None:
            self._pool.close()
            self._fallback.close()

    return LeanTransport


def _headers(request: Any, body: bytes) -> list[tuple[bytes, bytes]]:
    """The request's headers as sent: a body of unknown length is read whole, so it gets a length."""
    headers: list[tuple[bytes, bytes]] = request.headers.raw
    if any(name.lower() == b"transfer-encoding" for name, _ in headers):
        kept = [
            (n, v) for n, v in headers if n.lower() not in (b"transfer-encoding", b"content-length")
        ]
        headers = [*kept, (b"Content-Length", str(len(body)).encode("ascii"))]
    return headers
