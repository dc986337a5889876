"""A minimal HTTP/1.1 client connection over a plain socket: one request at a time, kept alive.

The lean transport (``_transport``) sends the SDK's finished requests through it. It does only what a
chat-completions exchange needs: write a request with a known length, then read a response framed by
``Content-Length``, chunked transfer coding, or the connection's close (RFC 9112 §6.3), skipping
informational (1xx) answers. It parses headers itself: ``http.client`` hands them to the ``email``
package, which costs about 0.2 ms each time the process wakes from waiting on the model.
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

Header = tuple[bytes, bytes]

_MAX_LINE = 65536
_MAX_HEADERS = 256
_CHUNK = 65536
_HEX = b"0123456789abcdefABCDEF"


class ProtocolError(Exception):
    """The server's answer does not follow HTTP/1.1, or stops before it is complete."""


class LocalProtocolError(ValueError):
    """The request cannot be written as HTTP/1.1 (a header with a line break in it)."""


@dataclass
class Head:
    """A response's status line and headers."""

    status: int
    reason: bytes
    version: bytes  # b"HTTP/1.1" or b"HTTP/1.0"
    headers: list[Header]

    def values(self, name: bytes) -> list[bytes]:
        """Every value of header ``name`` (lower case), comma-separated lists split."""
        found: list[bytes] = []
        for key, value in self.headers:
            if key.lower() == name:
                found.extend(part.strip() for part in value.split(b","))
        return found

    @property
    def keeps_alive(self) -> bool:
        tokens = [t.lower() for t in self.values(b"connection")]
        if b"close" in tokens:
            return False
        return self.version == b"HTTP/1.1" or b"keep-alive" in tokens


class Connection:
    """One keep-alive connection to ``host:port``."""

    def __init__(self, host: str, port: int, connect_timeout: float | None) -> None:
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        try:
            # Small writes go out at once: Nagle plus delayed ACKs can hold one back for 40 ms.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._in = self.sock.makefile("rb")
        except OSError:
            self.sock.close()
            raise
        self.idle_since = 0.0

    def set_timeout(self, seconds: float | None) -> None:
        if (
            self.sock.gettimeout() != seconds
        ):  # settimeout is a system call; the value rarely changes
            self.sock.settimeout(seconds)

    def still_open(self) -> bool:
        """False when the server has closed the idle connection (or sent something unasked)."""
        # Readable while idle means EOF or stray bytes; either way the connection is not reusable.
        # (A recv with MSG_DONTWAIT would wait anyway: Python polls sockets that have a timeout.)
        try:
            if hasattr(select, "poll"):  # select() cannot take descriptors past 1023
                poller = select.poll()
                poller.register(self.sock, select.POLLIN)
                return not poller.poll(0)
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def send(self, method: bytes, target: bytes, headers: Sequence[Header], body: bytes) -> None:
        lines = [b"%s %s HTTP/1.1" % (method, target)]
        for name, value in headers:
            if b"\n" in name or b"\r" in name or b"\n" in value or b"\r" in value:
                raise LocalProtocolError(f"header {name!r} contains a line break")
            lines.append(b"%s: %s" % (name, value))
        lines.append(b"\r\n")
        # One write, so the server gets the request in one piece.
        self.sock.sendall(b"\r\n".join(lines) + body)

    def read_head(self) -> Head:
        while True:
            line = self.read_line()
            if not line.endswith(b"\n"):
                raise ProtocolError("Server disconnected without sending a response.")
            version, status, reason = _status_line(line)
            headers = self.read_headers()
            if 100 <= status < 200 and status != 101:
                continue  # informational; the real answer follows
            return Head(status, reason, version, headers)

    def body(self, head: Head, method: bytes) -> Body:
        return Body(self, head, method)

    def close(self) -> None:
        for closeable in (self._in, self.sock):
            with contextlib.suppress(OSError):
                closeable.close()

    def read_line(self) -> bytes:
        line = self._in.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise ProtocolError("a line of the response is too long")
        return line

    def read_headers(self) -> list[Header]:
        headers: list[Header] = []
        while True:
            line = self.read_line()
            if line in (b"\r\n", b"\n"):
                return headers
            if not line.endswith(b"\n"):
                raise ProtocolError("Server disconnected in the middle of the response headers.")
            if len(headers) >= _MAX_HEADERS:
                raise ProtocolError("the response has too many headers")
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise ProtocolError(f"malformed response header line {line[:80]!r}")
            headers.append((name, value.strip()))

    def read1(self, limit: int) -> bytes:
        return self._in.read1(limit)


def _status_line(line: bytes) -> tuple[bytes, int, bytes]:
    version, _, rest = line.rstrip(b"\r\n").partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"malformed status line {line[:80]!r}")
    return version, int(code), reason


class Body:
    """A response body, read as it arrives; ``reusable`` once read to its end on a kept-alive line."""

    def __init__(self, conn: Connection, head: Head, method: bytes) -> None:
        self._conn = conn
        self._length: int | None = None
        self._chunked = False
        self._to_close = not head.keeps_alive
        self.complete = False
        if method == b"HEAD" or head.status in (204, 304) or 100 <= head.status < 200:
            self.complete = True
            return
        encodings = [e.lower() for e in head.values(b"transfer-encoding")]
        if encodings:
            if encodings[-1] != b"chunked":
                self._to_close = True  # the body runs to the connection's close
            else:
                self._chunked = True
            return
        lengths = set(head.values(b"content-length"))
        if not lengths:
            self._to_close = True
            return
        if len(lengths) > 1 or not all(n.isdigit() for n in lengths):
            raise ProtocolError(f"invalid Content-Length {sorted(lengths)!r}")
        self._length = int(lengths.pop())
        self.complete = self._length == 0

    @property
    def reusable(self) -> bool:
        return self.complete and not self._to_close

    def __iter__(self) -> Iterator[bytes]:
        if self.complete:
            return
        if self._chunked:
            yield from self._chunks()
        elif self._length is not None:
            yield from self._exactly(self._length)
        else:
            while piece := self._conn.read1(_CHUNK):
                yield piece
        self.complete = True

    def _exactly(self, n: int) -> Iterator[bytes]:
        while n:
            piece = self._conn.read1(min(n, _CHUNK))
            if not piece:
                raise ProtocolError(
                    f"Server disconnected with {n} bytes of the body still to come."
                )
            n -= len(piece)
            yield piece

    def _chunks(self) -> Iterator[bytes]:
        while True:
            line = self._conn.read_line()
            size_field = line.split(b";", 1)[0].strip()
            if not size_field or size_field.strip(_HEX):
                raise ProtocolError(f"malformed chunk size line {line[:80]!r}")
            size = int(size_field, 16)
            if size == 0:
                self._conn.read_headers()  # trailer fields, up to the blank line that ends the body
                return
            yield from self._exactly(size)
            if self._conn.read_line() not in (b"\r\n", b"\n"):
                raise ProtocolError("a chunk of the response is not followed by a line break")
