"""A lean HTTP/1.1 transport for the SDK's sync client, for plain ``http://`` endpoints.

Local model servers (vLLM, Ollama, llama.cpp, the test server) answer in milliseconds, so the client's
own cost shows: the SDK's default transport (httpcore and h11 under httpx) spends about 0.5 ms of CPU per
root call once the process wakes from waiting on the model, a sixth of the per-iteration budget. This
transport keeps the SDK on top — it still builds every request, retries, honours ``Retry-After`` and
maps errors — and sends the finished request over a pooled ``http.client`` connection instead.

It is used only where it cannot change behaviour: ``http://`` URLs with no proxy from the environment
(a custom transport turns the HTTP library's own proxy handling off). Anything else — ``https://``, a
redirect elsewhere — goes to the library's default transport.
"""

from __future__ import annotations

import functools
import http.client
import select
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

# As httpcore's default: an idle connection older than this is closed rather than reused, because the
# server may be closing it at the same moment (uvicorn, which serves vLLM, closes after 5 s).
KEEPALIVE_EXPIRY = 5.0
_MAX_IDLE = 16  # per host; more are closed when they come back
_CHUNK = 65536
_ErrorType = Callable[..., Exception]  # an HTTP library exception class: (message, *, request)


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


class _Errors:
    """The HTTP library's exception classes, which the SDK maps to its own (timeouts, connection)."""

    def __init__(self, library: ModuleType) -> None:
        self.connect: _ErrorType = library.ConnectError
        self.connect_timeout: _ErrorType = library.ConnectTimeout
        self.read: _ErrorType = library.ReadError
        self.read_timeout: _ErrorType = library.ReadTimeout
        self.write: _ErrorType = library.WriteError
        self.write_timeout: _ErrorType = library.WriteTimeout
        self.protocol: _ErrorType = library.RemoteProtocolError

    def on_connect(self, exc: OSError, request: Any) -> Exception:
        if isinstance(exc, TimeoutError):
            return self.connect_timeout(f"timed out connecting: {exc}", request=request)
        return self.connect(str(exc) or type(exc).__name__, request=request)

    def on_exchange(self, exc: Exception, request: Any, *, sending: bool) -> Exception:
        if isinstance(exc, TimeoutError):
            cls = self.write_timeout if sending else self.read_timeout
            return cls(f"timed out {'sending' if sending else 'reading'}: {exc}", request=request)
        if isinstance(exc, http.client.RemoteDisconnected | ConnectionError):
            message = "Server disconnected without sending a complete response."
            return self.protocol(message, request=request)
        if isinstance(exc, http.client.HTTPException):
            return self.protocol(f"malformed HTTP response: {exc!r}", request=request)
        cls = self.write if sending else self.read
        return cls(str(exc) or type(exc).__name__, request=request)


class _Pool:
    """Idle keep-alive connections per (host, port); each request has one to itself."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[tuple[http.client.HTTPConnection, float]]] = {}
        self._lock = threading.Lock()

    def take(self, host: str, port: int) -> http.client.HTTPConnection | None:
        now = time.monotonic()
        while True:
            with self._lock:
                idle = self._idle.get((host, port))
                if not idle:
                    return None
                conn, since = idle.pop()
            if now - since < KEEPALIVE_EXPIRY and _still_open(conn):
                return conn
            conn.close()

    def give(self, host: str, port: int, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault((host, port), [])
            if len(idle) < _MAX_IDLE:
                idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            conns = [conn for idle in self._idle.values() for conn, _ in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()


def _still_open(conn: http.client.HTTPConnection) -> bool:
    """False when the server has closed the idle connection (or sent something unasked)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        # Readable while idle means closed (EOF) or bytes nobody asked for; either way, not reusable.
        # (A recv with MSG_DONTWAIT would wait anyway: Python polls sockets that have a timeout.)
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _set_timeout(sock: socket.socket, seconds: float | None) -> None:
    if sock.gettimeout() != seconds:  # settimeout is a system call; the value rarely changes
        sock.settimeout(seconds)


@functools.cache
def _classes(library: ModuleType) -> Any:
    """The transport class for ``library``: its response stream must subclass the library's own."""
    errors = _Errors(library)

    class Body(library.SyncByteStream):  # type: ignore[name-defined,misc]
        """The response body, read as it arrives (streamed answers come in pieces)."""

        def __init__(self, response: http.client.HTTPResponse, request: Any, done: Any) -> None:
            self._response = response
            self._request = request
            self._done = done  # called with True when the connection may be reused

        def __iter__(self) -> Iterator[bytes]:
            try:
                while chunk := self._response.read1(_CHUNK):
                    yield chunk
            except Exception as exc:
                raise errors.on_exchange(exc, self._request, sending=False) from exc

        def close(self) -> None:
            response = self._response
            # Read to the end: http.client marks a chunked body closed, a sized one only at length 0.
            complete = response.isclosed() or response.length == 0
            reusable = complete and not response.will_close
            response.close()
            self._done(reusable)

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
                conn = http.client.HTTPConnection(host, port, timeout=timeouts.get("connect"))
                try:
                    conn.connect()
                except OSError as exc:
                    conn.close()
                    raise errors.on_connect(exc, request) from exc
            response = self._exchange(conn, request, timeouts)

            def done(reusable: bool) -> None:
                if reusable:
                    self._pool.give(host, port, conn)
                else:
                    conn.close()

            extensions = {
                "http_version": b"HTTP/1.1" if response.version == 11 else b"HTTP/1.0",
                "reason_phrase": response.reason.encode("latin-1", "replace"),
            }
            headers = [
                (name.encode("latin-1"), value.encode("latin-1", "replace"))
                for name, value in response.getheaders()
            ]
            return library.Response(
                response.status,
                headers=headers,
                stream=Body(response, request, done),
                extensions=extensions,
            )

        def _exchange(
            self, conn: http.client.HTTPConnection, request: Any, timeouts: dict[str, Any]
        ) -> http.client.HTTPResponse:
            sending = True
            try:
                assert conn.sock is not None
                _set_timeout(conn.sock, timeouts.get("write"))
                body = request.read()
                chunked = False
                conn.putrequest(
                    request.method,
                    request.url.raw_path.decode("ascii"),
                    skip_host=True,
                    skip_accept_encoding=True,
                )
                for name, value in request.headers.raw:
                    chunked = chunked or (
                        name.lower() == b"transfer-encoding" and b"chunked" in value.lower()
                    )
                    conn.putheader(name, value)
                conn.endheaders(body or None, encode_chunked=chunked)
                sending = False
                _set_timeout(conn.sock, timeouts.get("read"))
                return conn.getresponse()
            except Exception as exc:
                conn.close()
                raise errors.on_exchange(exc, request, sending=sending) from exc

        def close(self) -> None:
            self._pool.close()
            self._fallback.close()

    return LeanTransport
