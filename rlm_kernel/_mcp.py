"""MCP servers as tools: ``MCPServer(command=[...])`` (stdio) or ``MCPServer(url=...)`` (streamable
HTTP), started with the session and stopped with it, each of its tools offered under the server's own
name, description and input schema — to sub-models (``sub_tools=``) and to the model's code
(``tools=``).

The ``mcp`` package is an optional extra (``pip install 'rlm_kernel[mcp]'``) and is imported only when
a server is started: it takes most of a second to import, which no session without one should pay.
The client session lives on rlm_kernel's background loop (``_aio``), in one task that enters and leaves
the SDK's context managers (anyio wants both in the same task); synchronous code reaches it through
``_aio.run_sync``. A stdio server's stderr goes to a temporary file, so a server that fails to start
is reported with the command and the end of what it printed (``MCPServerError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import shlex
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from . import _aio
from . import _stdjson as json
from ._secrets import redact_url
from ._subtools import SubTool, as_sub_tool, check_unique
from .errors import ConfigError, MCPServerError, MCPToolError
from .models import ModelClient, takes_tools

_STDERR_TAIL = 2_000  # characters of a failed server's stderr put in the error


@dataclass(frozen=True)
class MCPServer:
    """An MCP server whose tools a session offers: ``command`` starts it and speaks over its stdin
    and stdout (``["python", "server.py"]``, or one string split like a shell line), or ``url`` is
    its streamable-HTTP endpoint (``http://127.0.0.1:8000/mcp``). ``env`` is added to the few
    variables a stdio server inherits (the MCP SDK passes on ``PATH``, ``HOME`` and the like, never
    API keys); ``headers`` go with every HTTP request (authorisation). ``prefix`` is put before
    every tool name (to tell two servers' tools apart); ``start_timeout`` bounds the start and the
    tool listing, ``call_timeout`` each tool call, in seconds."""

    command: Sequence[str] | str | None = None
    url: str | None = None
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    prefix: str = ""
    start_timeout: float = 30.0
    call_timeout: float = 120.0

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise ConfigError(
                "MCPServer needs either command= or url=, not both or neither",
                fix="MCPServer(command=['python', 'server.py']) for a stdio server, "
                "MCPServer(url='http://127.0.0.1:8000/mcp') for streamable HTTP",
            )
        if isinstance(self.command, str):
            object.__setattr__(self, "command", tuple(shlex.split(self.command)))
        elif self.command is not None:
            object.__setattr__(self, "command", tuple(str(part) for part in self.command))
            if not self.command:
                raise ConfigError("MCPServer(command=[]) names no program", fix="Give the command")

    @property
    def label(self) -> str:
        """The server as messages name it: its command line, or its URL without credentials."""
        if self.command is not None:
            return shlex.join(self.command)
        return redact_url(str(self.url))


@dataclass(frozen=True)
class MCPTool:
    """One tool a started server lists: its name (with the spec's prefix), the server's own name for
    it, description and input schema."""

    name: str
    remote: str
    description: str
    input_schema: dict[str, Any]


class MCPConnection:
    """A started MCP server: its tools, a way to call them, and ``stop``."""

    def __init__(self, spec: MCPServer) -> None:
        self.spec = spec
        self.tools: list[MCPTool] = []
        self._session: Any = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stderr: IO[str] | None = None
        # Set once started: a stopped server starts again on its next call (held while it does).
        self._restart: asyncio.Lock | None = None

    # --- start and stop -----------------------------------------------------------------------------
    def start(self) -> MCPConnection:
        """Start the server and list its tools; an MCPServerError says why it could not."""
        try:
            import mcp  # noqa: F401  (the optional extra)
        except ImportError as exc:
            raise MCPServerError(
                f"MCP server {self.spec.label!r} cannot be started: the mcp package is not installed",
                fix="pip install 'rlm_kernel[mcp]'",
            ) from exc
        _aio.run_sync(self._start())
        return self

    def close(self) -> None:
        """Stop the server for good: a later call fails instead of starting it again."""
        self._restart = None
        self.stop()

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[list[MCPTool]] = loop.create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._serve(ready))
        if self._restart is None:
            self._restart = asyncio.Lock()
        try:
            self.tools = await asyncio.wait_for(asyncio.shield(ready), self.spec.start_timeout)
        except asyncio.TimeoutError:
            await self._astop()
            raise self._failure(
                f"did not answer within {self.spec.start_timeout:g} s (start_timeout)"
            ) from None
        except Exception as exc:
            await self._astop()
            raise self._failure(_reason(exc)) from exc

    async def _serve(self, ready: asyncio.Future[list[MCPTool]]) -> None:
        from mcp import ClientSession

        assert self._stop is not None
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                tools = await self._list(session)
                self._session = session
                ready.set_result(tools)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            if not isinstance(exc, Exception):
                raise
        finally:
            self._session = None

    def _transport(self) -> contextlib.AbstractAsyncContextManager[Any]:
        spec = self.spec
        if spec.command is not None:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            program, *args = spec.command
            params = StdioServerParameters(
                command=program, args=list(args), env=dict(spec.env or {}) or None, cwd=spec.cwd
            )
            # Kept open for the server's life (stop() closes it): the tail goes in a start error.
            self._stderr = tempfile.TemporaryFile(  # noqa: SIM115
                mode="w+", encoding="utf-8", errors="replace"
            )
            return stdio_client(params, errlog=self._stderr)
        return _http(str(spec.url), dict(spec.headers or {}))

    async def _list(self, session: Any) -> list[MCPTool]:
        tools: list[MCPTool] = []
        cursor: str | None = None
        for _ in range(100):  # a server whose pages never end must not hang the start
            if cursor is None:
                listing = await session.list_tools()
            else:
                from mcp.types import PaginatedRequestParams

                listing = await session.list_tools(params=PaginatedRequestParams(cursor=cursor))
            for tool in listing.tools:
                tools.append(
                    MCPTool(
                        self.spec.prefix + tool.name,
                        tool.name,
                        tool.description or "",
                        dict(tool.input_schema or {"type": "object", "properties": {}}),
                    )
                )
            cursor = listing.next_cursor
            if not cursor:
                break
        return tools

    def stop(self) -> None:
        """Stop the server (a stdio server's process ends); stopping twice does nothing."""
        if self._task is None:
            return
        with contextlib.suppress(Exception):
            _aio.run_sync(self._astop(), timeout=self.spec.start_timeout + 10)
        if self._stderr is not None:
            with contextlib.suppress(OSError):
                self._stderr.close()
            self._stderr = None

    async def _astop(self) -> None:
        task, self._task = self._task, None
        if self._stop is not None:
            self._stop.set()
        if task is not None:
            try:
                await asyncio.wait_for(task, self.spec.start_timeout)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:  # the server failed on its way out: it is stopped all the same
                pass

    def _failure(self, why: str) -> MCPServerError:
        tail = ""
        if self._stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                self._stderr.flush()
                self._stderr.seek(0)
                text = self._stderr.read().strip()
                tail = text[-_STDERR_TAIL:]
        what = f"MCP server {self.spec.label!r} failed to start: {why}"
        if tail:
            what += f". Its stderr ended with:\n{tail}"
        kind = "command" if self.spec.command is not None else "URL"
        return MCPServerError(
            what,
            fix=f"Check that the {kind} starts an MCP server (run it yourself to see), or raise "
            "MCPServer(start_timeout=...) for a slow one",
            server=self.spec.label,
        )

    # --- calls ---------------------------------------------------------------------------------------
    async def call(self, remote: str, arguments: dict[str, Any]) -> str:
        """Call the server's tool ``remote``: the text it answered, or an error raised with its text
        (a tool's error, a stopped server, a call past ``call_timeout``)."""
        session = self._session
        if session is None and self._restart is not None:
            async with self._restart:  # a session taken up again (a follow-up, a rewind)
                if self._session is None:
                    await self._start()
            session = self._session
        if session is None:
            raise RuntimeError(f"the MCP server {self.spec.label!r} has stopped")
        result = await session.call_tool(
            remote, arguments, read_timeout_seconds=self.spec.call_timeout
        )
        text = _content_text(result)
        if getattr(result, "is_error", False):
            raise MCPToolError(text or f"the tool {remote!r} failed")
        return text

    def sub_tools(self) -> list[SubTool]:
        """The server's tools for sub-models."""

        def runner(remote: str) -> Callable[[dict[str, Any]], Any]:
            return lambda arguments: self.call(remote, arguments)

        source = f"mcp:{self.spec.label}"
        return [
            SubTool(t.name, t.description, t.input_schema, runner(t.remote), source)
            for t in self.tools
        ]

    def functions(self) -> dict[str, Callable[..., str]]:
        """The server's tools as functions for the model's code (``tools=``): named, documented and
        with a signature from the input schema; each returns the tool's text."""
        return {t.name: self._function(t) for t in self.tools}

    def _function(self, tool: MCPTool) -> Callable[..., str]:
        signature = _signature(tool.input_schema)
        remote = tool.remote

        def call(*args: Any, **kwargs: Any) -> str:
            bound = signature.bind(*args, **kwargs)
            return _aio.run_sync(self.call(remote, dict(bound.arguments)))

        call.__name__ = call.__qualname__ = tool.name
        call.__doc__ = tool.description
        call.__signature__ = signature  # type: ignore[attr-defined]
        return call


def _http(url: str, headers: dict[str, str]) -> contextlib.AbstractAsyncContextManager[Any]:
    from mcp.client.streamable_http import streamable_http_client

    if not headers:
        return streamable_http_client(url)
    return _with_headers(url, headers)


@contextlib.asynccontextmanager
async def _with_headers(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    import httpx2  # the HTTP library of the mcp SDK 2.x
    from mcp.client.streamable_http import streamable_http_client

    # The SDK's own default timeouts: a response stream may stay open long between events.
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as client,
        streamable_http_client(url, http_client=client) as streams,
    ):
        yield streams


def _content_text(result: Any) -> str:
    """A tool result's content as text: text parts joined, other parts as their JSON."""
    parts: list[str] = []
    for item in getattr(result, "content", None) or ():
        text = getattr(item, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            dump = getattr(item, "model_dump_json", None)
            parts.append(dump() if callable(dump) else str(item))
    if not parts and getattr(result, "structured_content", None) is not None:
        return json.dumps(result.structured_content, ensure_ascii=False, default=str)
    return "\n".join(parts)


def _signature(schema: Mapping[str, Any]) -> inspect.Signature:
    """A Python signature for an input schema: required properties first, the others default None."""
    properties = schema.get("properties") or {}
    required = [name for name in schema.get("required") or () if name in properties]
    optional = [name for name in properties if name not in required]
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(n, kind) for n in required if n.isidentifier()]
    params += [inspect.Parameter(n, kind, default=None) for n in optional if n.isidentifier()]
    return inspect.Signature(params)


def _reason(exc: BaseException) -> str:
    """The innermost useful message of a start failure (anyio wraps them in exception groups)."""
    while getattr(
        exc, "exceptions", None
    ):  # an exception group (Python 3.11+, or anyio's backport)
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def start_servers(specs: Sequence[MCPServer]) -> list[MCPConnection]:
    """Start every server, in order; if one fails, those already started are stopped first."""
    started: list[MCPConnection] = []
    try:
        for spec in specs:
            started.append(MCPConnection(spec).start())
    except BaseException:
        for connection in started:
            connection.stop()
        raise
    return started


@dataclass
class Toolbox:
    """What ``tools=`` and ``sub_tools=`` came to once their MCP servers started: functions for the
    model's code, tools for sub-models, and the servers (``stop`` between questions, ``close``)."""

    tools: dict[str, Callable[..., Any]] | None
    sub_tools: list[SubTool]
    servers: list[MCPConnection]

    def stop(self) -> None:
        """Stop every server; each starts again on its next call."""
        for server in self.servers:
            server.stop()

    def close(self) -> None:
        """Stop every server for good."""
        for server in self.servers:
            server.close()


def toolbox(tools: Any, sub_tools: Any) -> Toolbox:
    """Start the MCP servers among ``tools`` and ``sub_tools`` (a server given in both starts once)
    and put their tools in place of each: a list keeps its order, a mapping's server entries add
    the server's tools under their own names. Functions and ``SubTool`` values pass through."""
    specs: list[MCPServer] = []
    for value in (*_entries(tools), *_entries(sub_tools)):
        if isinstance(value, MCPServer) and value not in specs:
            specs.append(value)
    servers = start_servers(specs)
    try:
        by_spec = list(zip(specs, servers, strict=True))

        def server(spec: MCPServer) -> MCPConnection:
            return next(c for s, c in by_spec if s == spec)

        code: dict[str, Callable[..., Any]] | None = None
        if tools is not None:
            code = {}
            for name, value in _named(tools):
                if isinstance(value, MCPServer):
                    code.update(server(value).functions())
                elif callable(value):
                    code[name or value.__name__] = value
                else:
                    raise ConfigError(
                        f"tools: {value!r} is neither a function nor an MCP server",
                        fix="Pass functions (tools=[search]) or rlm_kernel.MCPServer(...) specs",
                    )
        sub: list[SubTool] = []
        for name, value in _named(sub_tools):
            if isinstance(value, MCPServer):
                sub.extend(server(value).sub_tools())
            else:
                sub.append(as_sub_tool(value, name))
        check_unique(t.name for t in sub)
    except BaseException:
        for connection in servers:
            connection.close()
        raise
    return Toolbox(code, sub, servers)


def session_toolbox(tools: Any, sub_tools: Any, sub_client: ModelClient) -> Toolbox | None:
    """A root session's ``toolbox``, its servers started, or None when there is nothing to start
    (no sub-tools and no server among ``tools``: plain functions are bound as they are). Sub-tools
    need a sub-call client whose ``acomplete`` takes ``tools=``: a ConfigError otherwise."""
    if not sub_tools and not any(isinstance(v, MCPServer) for v in _entries(tools)):
        return None
    box = toolbox(tools, sub_tools)
    if box.sub_tools and not takes_tools(sub_client):
        box.close()
        raise ConfigError(
            f"sub_tools: the sub-call client ({sub_client.endpoint}) does not take tools= in "
            "acomplete, so its sub-models cannot call tools",
            fix="Use a client that takes tools (the OpenAI client does), or leave sub_tools out",
        )
    return box


def _entries(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value.values()) if isinstance(value, Mapping) else list(value)


def _named(value: Any) -> list[tuple[str | None, Any]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(str(k), v) for k, v in value.items()]
    return [(None, v) for v in value]
