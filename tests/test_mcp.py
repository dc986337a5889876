"""MCP servers as tools: a real server written with the mcp SDK (tests/fixtures/mcp_vault.py, two
tools) over stdio, as a subprocess, and over streamable HTTP, served on loopback in a thread."""

from __future__ import annotations

import inspect
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import rlm_kernel
from rlm_kernel import RLM
from rlm_kernel._aio import run_sync
from rlm_kernel._mcp import MCPConnection, MCPServer, start_servers
from rlm_kernel._subtools import tool_loop
from rlm_kernel.errors import ConfigError, MCPServerError, MCPToolError
from rlm_kernel.models import Completion, Message, request_key, tool_key
from rlm_kernel.models.openai import OpenAIClient
from rlm_kernel.testing import ChatRequest, Reply, ScriptedServer, ToolUse, fence, settings

VAULT = Path(__file__).parent / "fixtures" / "mcp_vault.py"


def stdio_spec(*extra: str) -> MCPServer:
    return MCPServer(command=[sys.executable, str(VAULT), *extra])


@pytest.fixture
def stdio() -> Iterator[MCPConnection]:
    connection = MCPConnection(stdio_spec()).start()
    yield connection
    connection.stop()


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """The vault served over streamable HTTP by uvicorn on a loopback port, in a thread."""
    import uvicorn

    sys.path.insert(0, str(VAULT.parent))
    try:
        import mcp_vault
    finally:
        sys.path.remove(str(VAULT.parent))
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(mcp_vault.app.streamable_http_app(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}/mcp"
    server.should_exit = True
    thread.join(10)


def check_vault(connection: MCPConnection) -> None:
    tools = {t.name: t for t in connection.tools}
    assert sorted(tools) == ["multiply", "open_drawer"]
    # The server's own descriptions and input schemas, as it lists them.
    assert tools["multiply"].description == "Multiply two integers."
    assert tools["multiply"].input_schema["required"] == ["a"]
    assert tools["open_drawer"].input_schema["properties"]["name"]["type"] == "string"
    # As functions for the model's code: a signature from the schema, the text back.
    functions = connection.functions()
    assert str(inspect.signature(functions["multiply"])) == "(a, b=None)"
    assert functions["multiply"].__doc__ == "Multiply two integers."
    assert functions["multiply"](6, b=7) == "42"
    assert functions["open_drawer"](name="gold") == "GOLD-7731"
    with pytest.raises(MCPToolError, match="open_drawer"):
        functions["open_drawer"]("copper")
    # As sub-model tools.
    sub = {t.name: t for t in connection.sub_tools()}
    assert (
        sub["open_drawer"].schema()["function"]["parameters"] == tools["open_drawer"].input_schema
    )
    assert sub["open_drawer"].source == f"mcp:{connection.spec.label}"
    assert run_sync(sub["multiply"].run({"a": 5})) == "10"


def test_a_stdio_server_lists_its_two_tools_and_answers_calls(stdio: MCPConnection) -> None:
    check_vault(stdio)


def test_a_streamable_http_server_lists_its_two_tools_and_answers_calls(http_url: str) -> None:
    connection = MCPConnection(MCPServer(url=http_url, prefix="")).start()
    try:
        check_vault(connection)
    finally:
        connection.stop()


def test_a_prefix_tells_two_servers_tools_apart(http_url: str) -> None:
    connections = start_servers([stdio_spec(), MCPServer(url=http_url, prefix="remote_")])
    try:
        names = [t.name for c in connections for t in c.tools]
        assert sorted(names) == ["multiply", "open_drawer", "remote_multiply", "remote_open_drawer"]
        assert connections[1].functions()["remote_multiply"](a=3) == "6"
    finally:
        for connection in connections:
            connection.stop()


def test_a_server_that_fails_to_start_names_its_command_and_stderr() -> None:
    spec = stdio_spec("--fail")
    with pytest.raises(MCPServerError) as caught:
        MCPConnection(spec).start()
    message = str(caught.value)
    assert spec.label in message
    assert "vault: the key file /nowhere/vault.key is missing" in message
    assert caught.value.details["server"] == spec.label


def test_a_command_that_does_not_exist_is_a_clear_error() -> None:
    with pytest.raises(MCPServerError, match="no-such-mcp-server-here"):
        MCPConnection(MCPServer(command="no-such-mcp-server-here --stdio")).start()


def test_a_url_where_no_server_listens_is_a_clear_error() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(MCPServerError, match=f"127.0.0.1:{port}"):
        MCPConnection(MCPServer(url=f"http://127.0.0.1:{port}/mcp", start_timeout=10)).start()


def test_a_spec_needs_a_command_or_a_url() -> None:
    with pytest.raises(ConfigError, match="either command= or url="):
        MCPServer()
    with pytest.raises(ConfigError, match="either command= or url="):
        MCPServer(command=["x"], url="http://127.0.0.1:1/mcp")
    assert MCPServer(command="python -m vault --flag").command == (
        "python",
        "-m",
        "vault",
        "--flag",
    )
    assert "secret" not in MCPServer(url="http://user:secret@127.0.0.1:1/mcp").label


def test_a_stopped_server_has_ended_and_starts_again_until_closed(stdio: MCPConnection) -> None:
    before = _children()
    stdio.stop()
    deadline = time.monotonic() + 10
    while _children() & before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (_children() & before)
    stdio.stop()  # twice: nothing more happens
    # A session that goes on (a follow-up, a rewind) starts it again with its next call...
    assert run_sync(stdio.call("multiply", {"a": 4})) == "8"
    # ...until it is closed for good.
    stdio.close()
    with pytest.raises(RuntimeError, match="has stopped"):
        run_sync(stdio.call("multiply", {"a": 1}))


def _children() -> set[int]:
    """This process's child processes that run the vault server."""
    out = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(__import__("os").getpid())],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return {int(line.split()[0]) for line in out.splitlines() if "mcp_vault.py" in line}


def test_a_sub_model_calls_mcp_tools_through_the_tool_loop(
    stdio: MCPConnection, serve: Callable[..., ScriptedServer]
) -> None:
    def script(request: ChatRequest) -> Reply:
        if not request.tool_results:
            return Reply(
                tool_calls=[
                    ToolUse("open_drawer", {"name": "silver"}),
                    ToolUse("open_drawer", {"name": "copper"}),
                ]
            )
        return Reply("found " + request.tool_results[0]["content"])

    server = serve(script)
    client = OpenAIClient(RLM().with_overrides(settings(server)))

    async def complete(
        messages: list[Message], schemas: list[dict[str, Any]] | None
    ) -> tuple[Completion, str]:
        if schemas:
            answer = await client.acomplete(messages, model="sub", tools=schemas)
            return answer, tool_key("sub", messages, schemas)
        return await client.acomplete(messages, model="sub"), request_key("sub", messages)

    start: list[Message] = [{"role": "user", "content": "what is in the silver drawer?"}]
    result = run_sync(tool_loop(complete, start, stdio.sub_tools(), 5))
    assert result.completion.text == "found SILVER-0042"
    calls = result.turns[0]["calls"]
    assert calls[0]["result"] == "SILVER-0042"
    assert "copper" in str(calls[1]["error"])
    assert server.requests[0].tool_names == ["open_drawer", "multiply"]
    offered = server.requests[0].tools[0]["function"]
    assert offered["description"] == "Read what the vault's drawer `name` holds."


def test_importing_rlm_kernel_does_not_import_mcp() -> None:
    code = "import sys, rlm_kernel; print('mcp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- end to end through rlm_kernel.run -----------------------------------------------------------------


def drawer_sub(request: ChatRequest) -> Reply:
    """A sub model that opens the silver drawer with the MCP tool, after a drawer that is not there."""
    if not request.tool_results:
        return Reply(
            tool_calls=[
                ToolUse("open_drawer", {"name": "copper"}),
                ToolUse("open_drawer", {"name": "silver"}),
            ]
        )
    return Reply("silver holds " + request.tool_results[-1]["content"])


def test_a_sub_call_uses_a_stdio_mcp_server_end_to_end_through_run(
    serve: Callable[..., ScriptedServer],
) -> None:
    ask = fence('a = llm_query("What does the silver drawer hold?")\nprint(len(a))')
    server = serve({"root": [ask, fence("FINAL(a)")], "sub": drawer_sub})
    before = _children()
    result = rlm_kernel.run(
        "What does the silver drawer hold?",
        "a vault",
        sub_tools=[stdio_spec()],
        **settings(server),
    )
    assert result.answer == "silver holds SILVER-0042"
    (call,) = result.trajectory.iterations[0]["subcalls"]
    calls = call["tool_turns"][0]["calls"]
    assert calls[0]["error"] == (
        "MCPToolError: Error executing tool open_drawer: the vault has no drawer 'copper'."
    )
    assert calls[1]["result"] == "SILVER-0042"
    offered = result.trajectory.session["sub_tools"]
    assert [t["name"] for t in offered] == ["open_drawer", "multiply"]
    assert offered[0]["description"] == "Read what the vault's drawer `name` holds."
    assert offered[0]["source"] == f"mcp:{stdio_spec().label}"
    assert not [r for r in server.requests if r.model == "root" and r.tools]
    # The server stopped with the run.
    deadline = time.monotonic() + 10
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (_children() - before)


def test_the_models_code_calls_mcp_tools_given_as_tools(
    serve: Callable[..., ScriptedServer], http_url: str
) -> None:
    code = fence('print(open_drawer("gold"), multiply(6, b=7))')
    server = serve({"root": [code, fence('FINAL("done")')]})
    result = rlm_kernel.run(
        "Open it", "a vault", tools=[MCPServer(url=http_url)], **settings(server)
    )
    assert result.answer == "done"
    assert result.trajectory.iterations[0]["output"].strip() == "GOLD-7731 42"
    # The model was told of them in its system prompt, with the server's descriptions.
    system = server.requests[0].messages[0]["content"]
    assert "open_drawer(name)" in system
    assert "Multiply two integers." in system


def test_a_failing_server_fails_the_run_before_any_model_call(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [fence('FINAL("x")')]})
    with pytest.raises(MCPServerError, match=r"vault\.key is missing"):
        rlm_kernel.run("q", "ctx", sub_tools=[stdio_spec("--fail")], **settings(server))
    assert server.requests == []


def test_a_name_given_twice_is_refused_and_the_started_server_stopped() -> None:
    def multiply(a: int, b: int) -> int:
        """A function named like the server's tool."""
        return a * b

    before = _children()
    with pytest.raises(ConfigError, match=r"two tools are named 'multiply'.*prefix"):
        rlm_kernel.Session(
            "q",
            "ctx",
            config=RLM().with_overrides({"model": "m", "base_url": "http://127.0.0.1:9/v1"}),
            sub_tools=[stdio_spec(), multiply],
        )
    deadline = time.monotonic() + 10
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (_children() - before)
