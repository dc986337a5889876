"""A lean HTTP/1.1 transport for the SDK's sync client, for plain ``http://`` endpoints.

Local model servers (vLLM, Ollama, llama.cpp, the test server) answer in milliseconds, so the client's
own cost shows: the SDK's default transport (httpcore and h11 under httpx) spends about 0.5 ms of CPU per
root call once the process wakes from waiting on the model, a sixth of the per-iteration budget. This
transport keeps the SDK on top — it still builds every request, retries, honours ``Retry-After`` and
maps errors — and sends the finished request over a pooled connection of its own (``_http11``).

It is used only where it cannot change behaviour: ``http://`` URLs with no proxy from the environment
(a custom transport turns the HTTP library's own proxy handling off). Anything else — ``https://``, a
redirect elsewhere — goes to the library's default transport.
"""

from __future__ import annotations

import functools
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from ._http11 import Body, Connection, LocalProtocolError, ProtocolError

# As httpcore's default: an idle connection older than this is closed rather than reused, because the
# server may be closing it at the same moment (uvicorn, which serves vLLM, closes after 5 s).
KEEPALIVE_EXPIRY = 5.0
_MAX_IDLE = 16  # per host; more are closed when they come back
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
        self.local: _ErrorType = library.LocalProtocolError

    def on_connect(self, exc: OSError, request: Any) -> Exception:
        if isinstance(exc, TimeoutError):
            return self.connect_timeout(f"timed out connecting: {exc}", request=request)
        return self.connect(str(exc) or type(exc).__name__, request=request)

    def on_exchange(self, exc: Exception, request: Any, *, sending: bool) -> Exception:
        if isinstance(exc, TimeoutError):
            cls = self.write_timeout if sending else self.read_timeout
            return cls(f"timed out {'sending' if sending else 'reading'}: {exc}", request=request)
        if isinstance(exc, ProtocolError):
            return self.protocol(str(exc), request=request)
        if isinstance(exc, LocalProtocolError):
            return self.local(str(exc), request=request)
        if isinstance(exc, ConnectionError):
            message = "Server disconnected without sending a complete response."
            return self.protocol(f"{message} ({exc})", request=request)
        cls = self.write if sending else self.read
        return cls(str(exc) or type(exc).__name__, request=request)


class _Pool:
    """Idle keep-alive connections per (host, port); each request has one to itself."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[Connection]] = {}
        self._lock = threading.Lock()

    def take(self, host: str, port: int) -> Connection | None:
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

    def give(self, host: str, port: int, conn: Connection) -> None:
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

        def __init__(self, body: Body, request: Any, done: Callable[[bool], None]) -> None:
            self._body = body
            self._request = request
            self._done: Callable[[bool], None] | None = done  # True: the connection may be reused

        def __iter__(self) -> Iterator[bytes]:
            try:
                yield from self._body
            except Exception as exc:
                raise errors.on_exchange(exc, self._request, sending=False) from exc

        def close(self) -> None:
            if self._done is not None:
                done, self._done = self._done, None
                done(self._body.reusable)

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
                    conn = Connection(host, port, timeouts.get("connect"))
                except OSError as exc:
                    raise errors.on_connect(exc, request) from exc
            method = request.method.encode("ascii")
            sending = True
            try:
                conn.set_timeout(timeouts.get("write"))
                conn.send(method, url.raw_path, _headers(request), request.read())
                sending = False
                conn.set_timeout(timeouts.get("read"))
                head = conn.read_head()
                body = conn.body(head, method)
            except Exception as exc:
                conn.close()
                raise errors.on_exchange(exc, request, sending=sending) from exc
            except BaseException:
                conn.close()  # interrupted halfway through the exchange: not reusable
                raise

            def done(reusable: bool) -> None:
                if reusable:
                    self._pool.give(host, port, conn)
                else:
                    conn.close()

            return library.Response(
                head.status,
                headers=head.headers,
                stream=Stream(body, request, done),
                extensions={"http_version": head.version, "reason_phrase": head.reason},
            )

        def close(self) -> None:
            self._pool.close()
            self._fallback.close()

    return LeanTransport


def _headers(request: Any) -> list[tuple[bytes, bytes]]:
    """The request's headers as sent: a body of unknown length is read whole, so it gets a length."""
    headers: list[tuple[bytes, bytes]] = request.headers.raw
    if any(name.lower() == b"transfer-encoding" for name, _ in headers):
        length = str(len(request.read())).encode("ascii")
        kept = [
            (n, v) for n, v in headers if n.lower() not in (b"transfer-encoding", b"content-length")
        ]
        headers = [*kept, (b"Content-Length", length)]
    return headers
