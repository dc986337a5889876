"""Tools for sub-models: tool calling through the real openai SDK against the loopback server, the
schemas made from Python functions, and the bounded tool loop (errors back to the model, turn limit)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import pytest

import rlm_kernel
from rlm_kernel import RLM
from rlm_kernel._aio import run_sync
from rlm_kernel._events import SubcallFinished
from rlm_kernel._replay import replay_session
from rlm_kernel._subtools import SubTool, python_tool, sub_tools, tool_loop
from rlm_kernel.errors import ConfigError, RecoveryWarning
from rlm_kernel.models import (
    Completion,
    Message,
    ToolCall,
    Usage,
    request_key,
    takes_tools,
    tool_key,
)
from rlm_kernel.models.openai import OpenAIClient
from rlm_kernel.models.replay import ReplayClient
from rlm_kernel.testing import ChatRequest, Reply, ScriptedServer, ToolUse, fence, settings


def add(a: int, b: int = 1) -> int:
    """Add two integers."""
    return a + b


def lookup(key: str) -> dict[str, str]:
    """Look a key up in the vault."""
    if key == "broken":
        raise KeyError("the vault has no drawer 'broken'")
    return {"key": key, "value": key.upper()}


def client_for(server: ScriptedServer) -> OpenAIClient:
    return OpenAIClient(RLM().with_overrides(settings(server)))


def test_a_sub_call_offered_tools_gets_tool_calls_back_through_the_sdk(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve([Reply(tool_calls=[ToolUse("add", {"a": 2, "b": 3})]), "plain"])
    client = client_for(server)
    schemas = [python_tool(add).schema()]
    messages: list[Message] = [{"role": "user", "content": "2+3?"}]
    got = run_sync(client.acomplete(messages, model="sub", tools=schemas))
    assert got.tool_calls == (ToolCall("call_1", "add", '{"a": 2, "b": 3}'),)
    assert got.finish_reason == "tool_calls"
    assert got.text == ""
    assert server.requests[0].tools == schemas
    assert server.requests[0].tool_names == ["add"]
    # Without tools the request carries none and the answer is read as always.
    plain = run_sync(client.acomplete(messages, model="sub"))
    assert plain.text == "plain"
    assert plain.tool_calls == ()
    assert "tools" not in server.requests[1].params
    assert takes_tools(client)


def test_a_completion_with_tool_calls_round_trips_through_its_record_form() -> None:
    calls = (ToolCall("c1", "add", '{"a": 1}'),)
    completion = Completion("", "sub", Usage(calls=1), 0.1, "tool_calls", tool_calls=calls)
    data = completion.to_dict()
    assert data["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 1}'}
    assert Completion.from_dict(data) == completion
    # A completion without tool calls keeps the form every older record has.
    assert "tool_calls" not in Completion("x", "m", completion.usage, 0.0).to_dict()


def test_python_functions_become_schemas_from_signature_and_docstring() -> None:
    tool = python_tool(add)
    assert tool.description == "Add two integers."
    params = tool.parameters
    assert params["type"] == "object"
    assert params["required"] == ["a"]
    assert params["properties"]["a"]["type"] == "integer"
    assert params["properties"]["b"]["default"] == 1
    assert run_sync(tool.run({"a": 4})) == "5"
    named = sub_tools({"plus": add, "lookup": lookup})
    assert [t.name for t in named] == ["plus", "lookup"]
    with pytest.raises(ConfigError, match="two tools are named 'add'"):
        sub_tools([add, add])
    with pytest.raises(ConfigError, match="must be named"):
        sub_tools({"spread": lambda *a: a})
    with pytest.raises(ConfigError, match="cannot be a tool name"):
        sub_tools({"has space": add})


async def _loop(
    server: ScriptedServer, tools: list[SubTool], turns: int
) -> tuple[Any, list[Message]]:
    client = client_for(server)
    sent: list[list[Message]] = []

    async def complete(
        messages: list[Message], schemas: list[dict[str, Any]] | None
    ) -> tuple[Completion, str]:
        sent.append(list(messages))
        if schemas:
            return await client.acomplete(messages, model="sub", tools=schemas), tool_key(
                "sub", messages, schemas
            )
        return await client.acomplete(messages, model="sub"), request_key("sub", messages)

    result = await tool_loop(complete, [{"role": "user", "content": "go"}], tools, turns)
    return result, sent[-1]


def test_tool_errors_and_bad_arguments_go_back_to_the_model_as_tool_results(
    serve: Callable[..., ScriptedServer],
) -> None:
    def script(request: ChatRequest) -> Reply:
        if not request.tool_results:
            return Reply(
                tool_calls=[
                    ToolUse("lookup", {"key": "broken"}),
                    ToolUse("add", {"a": "not a number"}),
                    ToolUse("add", "{not json"),
                    ToolUse("missing", {}),
                    ToolUse("lookup", {"key": "gold"}, id="call_gold"),
                ]
            )
        return Reply("the value is GOLD")

    server = serve(script)
    result, last = run_sync(_loop(server, sub_tools([add, lookup]), turns=5))
    assert result.completion.text == "the value is GOLD"
    assert not result.cut
    calls = result.turns[0]["calls"]
    assert [c["name"] for c in calls] == ["lookup", "add", "add", "missing", "lookup"]
    assert calls[0]["error"] == "KeyError: \"the vault has no drawer 'broken'\""
    assert calls[1]["error"].startswith("invalid arguments: a: Input should be a valid integer")
    assert "not valid JSON" in calls[2]["error"]
    assert calls[3]["error"] == "there is no tool named 'missing'; the tools are: add, lookup"
    assert calls[4]["result"] == '{"key": "gold", "value": "GOLD"}'
    assert calls[4]["error"] is None
    assert all(c["duration"] >= 0 for c in calls)
    # What the model read: every call answered, errors as "Error: …", in order, by id.
    answered = server.requests[1].tool_results
    assert [m["tool_call_id"] for m in answered] == [
        "call_1",
        "call_2",
        "call_3",
        "call_4",
        "call_gold",
    ]
    assert answered[0]["content"].startswith("Error: KeyError")
    assert answered[4]["content"] == calls[4]["result"]
    assert server.requests[1].messages[1]["tool_calls"][0]["function"]["name"] == "lookup"
    assert len(result.turns) == 2
    assert result.turns[1]["calls"] == []
    assert last[-1]["role"] == "tool"


def test_the_turn_limit_cuts_the_loop_and_the_last_call_offers_no_tools(
    serve: Callable[..., ScriptedServer],
) -> None:
    def script(request: ChatRequest) -> Reply:
        if request.tools:
            return Reply(tool_calls=[ToolUse("add", {"a": len(request.tool_results)})])
        return Reply("stopped counting")

    server = serve(script)
    result, last = run_sync(_loop(server, sub_tools([add]), turns=2))
    assert result.cut
    assert result.completion.text == "stopped counting"
    assert [len(r.tools) for r in server.requests] == [1, 1, 0]
    assert "RLM.sub_tool_turns = 2" in last[-1]["content"]
    assert last[-1]["role"] == "user"
    assert [t["calls"][0]["result"] for t in result.turns[:2]] == ["1", "2"]


def test_replay_serves_a_tool_turn_by_its_key_with_its_tool_calls() -> None:
    messages: list[Message] = [{"role": "user", "content": "go"}]
    schemas = [python_tool(add).schema()]
    calls = (ToolCall("c1", "add", json.dumps({"a": 1})),)
    recorded = Completion("", "sub", Usage(), 0.0, "tool_calls", tool_calls=calls)
    replay = ReplayClient(keyed=[(tool_key("sub", messages, schemas), recorded)])
    got = run_sync(replay.acomplete(messages, model="sub", tools=schemas))
    assert got.tool_calls == recorded.tool_calls
    assert got.cached
    assert takes_tools(replay)


# --- through a session: llm_query / llm_batch with sub_tools ------------------------------------------


def vault_sub(request: ChatRequest) -> Reply:
    """A sub model that first opens a drawer that breaks, then the one asked for, then answers."""
    done = request.tool_results
    if not request.tools:
        return Reply(f"answered without tools after {len(done)} results")
    if not done:
        return Reply(tool_calls=[ToolUse("lookup", {"key": "broken"})])
    if len(done) == 1:
        drawer = "gold" if "gold" in request.prompt else "silver"
        return Reply(tool_calls=[ToolUse("lookup", {"key": drawer}, id="call_drawer")])
    return Reply("The drawer holds " + json.loads(done[-1]["content"])["value"])


def vault_session(
    server: ScriptedServer, **overrides: Any
) -> tuple[rlm_kernel.Session, list[SubcallFinished]]:
    session = rlm_kernel.Session(
        "What is in the gold drawer?",
        "a vault with drawers",
        config=RLM().with_overrides(settings(server, **overrides)),
        sub_tools=[lookup, add],
    )
    finished: list[SubcallFinished] = []
    session.subscribe(lambda e: finished.append(e) if isinstance(e, SubcallFinished) else None)
    return session, finished


ASK = fence('a = llm_query("What is in the gold drawer?")\nprint(len(a))')


def test_llm_query_runs_the_tool_loop_and_the_root_sees_only_the_answer(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [ASK, fence("FINAL(a)")], "sub": vault_sub})
    session, finished = vault_session(server)
    result = session.run()
    assert result.answer == "The drawer holds GOLD"
    root = [r for r in server.requests if r.model == "root"]
    # The root never sees the tool traffic: no tools offered, no tool messages, no tool results.
    assert all(not r.tools and not r.tool_results for r in root)
    root_text = json.dumps([r.messages for r in root])
    assert "no drawer" not in root_text
    assert "lookup" not in root_text
    subs = [r for r in server.requests if r.model == "sub"]
    assert [len(r.tool_results) for r in subs] == [0, 1, 2]
    assert subs[0].tool_names == ["lookup", "add"]
    # The sub-call's record: every turn, every call with its result or error and duration.
    (call,) = result.trajectory.iterations[0]["subcalls"]
    turns = call["tool_turns"]
    assert len(turns) == 3
    assert turns[0]["calls"][0]["error"] == "KeyError: \"the vault has no drawer 'broken'\""
    assert turns[1]["calls"][0]["result"] == '{"key": "gold", "value": "GOLD"}'
    assert turns[2]["calls"] == []
    assert call["response"] == "The drawer holds GOLD"
    assert call["request_key"] == turns[0]["request_key"]
    assert call["usage"]["calls"] == 3
    assert "tool_limit" not in call
    # The panel's event carries the same record; the session record lists the tools offered.
    assert finished[0].record["tool_turns"] == turns
    offered = result.trajectory.session["sub_tools"]
    assert [t["name"] for t in offered] == ["lookup", "add"]
    assert offered[0]["source"] == "python"
    assert offered[0]["parameters"]["required"] == ["key"]


def test_the_turn_limit_ends_the_loop_and_the_answer_says_so(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [ASK, fence("FINAL(a)")], "sub": vault_sub})
    session, _ = vault_session(server, sub_tool_turns=1)
    result = session.run()
    assert result.answer is not None
    assert result.answer.startswith("answered without tools after 1 results")
    assert "cut at RLM.sub_tool_turns = 1" in result.answer
    (call,) = result.trajectory.iterations[0]["subcalls"]
    assert call["tool_limit"] is True
    assert len(call["tool_turns"]) == 2
    last = [r for r in server.requests if r.model == "sub"][-1]
    assert not last.tools
    assert "RLM.sub_tool_turns = 1" in last.messages[-1]["content"]


def test_llm_batch_items_each_run_their_own_tool_loop(serve: Callable[..., ScriptedServer]) -> None:
    batch = fence('a = llm_batch(["the gold drawer?", "the silver drawer?"])\nprint(a)')
    server = serve({"root": [batch, fence("FINAL(' / '.join(a))")], "sub": vault_sub})
    session, _ = vault_session(server)
    result = session.run()
    assert result.answer == "The drawer holds GOLD / The drawer holds SILVER"
    calls = result.trajectory.iterations[0]["subcalls"]
    assert [len(c["tool_turns"]) for c in calls] == [3, 3]


def test_a_recorded_tool_loop_replays_offline_with_the_recorded_tool_results(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [ASK, fence("FINAL(a)")], "sub": vault_sub})
    session, _ = vault_session(server, autosave=True)
    assert session.run().answer == "The drawer holds GOLD"
    assert session.path is not None
    server.stop()  # no model from here on
    recording = rlm_kernel.Trajectory.load(session.path)
    # Without the functions: the recorded tools answer as they answered.
    replayed = replay_session(recording, None, "a vault with drawers").run()
    assert replayed.answer == "The drawer holds GOLD"
    (call,) = replayed.trajectory.iterations[0]["subcalls"]
    (recorded,) = recording.iterations[0]["subcalls"]

    def outcomes(record: Any) -> list[tuple[str, str, str | None, str | None]]:
        return [
            (c["name"], c["arguments"], c["result"], c["error"])
            for turn in record["tool_turns"]
            for c in turn["calls"]
        ]

    assert outcomes(call) == outcomes(recorded)
    assert all(t["cached"] for t in call["tool_turns"])
    # With the functions themselves: they run again, and the recording's model turns still fit.
    again = replay_session(recording, None, "a vault with drawers", sub_tools=[lookup, add]).run()
    assert again.answer == "The drawer holds GOLD"


def test_sub_tools_need_a_client_that_takes_tools() -> None:
    class Plain:
        endpoint = "plain"

        def complete(self, messages: Any, *, model: str, on_delta: Any = None) -> Completion:
            return Completion("x", model, Usage(), 0.0)

        async def acomplete(self, messages: Any, *, model: str) -> Completion:
            return Completion("x", model, Usage(), 0.0)

    with pytest.raises(ConfigError, match="does not take tools"):
        rlm_kernel.Session(
            "q", "ctx", config=RLM().with_overrides({"model": "m"}), client=Plain(), sub_tools=[add]
        )


@pytest.mark.parametrize("turns", [5, 1], ids=["answered", "cut"])
def test_exports_carry_the_tool_calls_in_their_formats(
    serve: Callable[..., ScriptedServer], tmp_path: Any, turns: int
) -> None:
    server = serve({"root": [ASK, fence("FINAL(a)")], "sub": vault_sub})
    session, _ = vault_session(server, sub_tool_turns=turns)
    trajectory = session.run().trajectory
    last = [r for r in server.requests if r.model == "sub"][-1]
    # The reference visualizer's log: the rlm_calls entry keeps its fields and adds ours.
    visual = tmp_path / "run.rlm.jsonl"
    trajectory.export(visual, "rlm-jsonl")
    lines = [json.loads(line) for line in visual.read_text().splitlines()]
    (entry,) = lines[1]["code_blocks"][0]["result"]["rlm_calls"]
    assert entry["response"] == trajectory.iterations[0]["subcalls"][0]["response"]
    assert entry["tool_calls"][0]["function"] == {
        "name": "lookup",
        "arguments": '{"key": "broken"}',
    }
    assert entry["tool_calls"][0]["error"].startswith("KeyError")
    assert entry["tool_calls"][0]["turn"] == 1
    assert entry["tool_limit"] is (turns == 1)
    # Its conversation is what the sub-model was sent, then its answer.
    assert entry["messages"][:-1] == last.messages
    assert entry["messages"][-1]["role"] == "assistant"
    # The SFT export: the root's conversation, and the tool loop in OpenAI's fine-tuning format.
    sft = tmp_path / "run.sft.jsonl"
    trajectory.export(sft, "sft")
    root_line, tool_line = [json.loads(line) for line in sft.read_text().splitlines()]
    assert all("tool_calls" not in m for m in root_line["messages"])
    assert tool_line["messages"][:-1] == last.messages
    assert tool_line["messages"][1]["tool_calls"][0]["type"] == "function"
    assert tool_line["messages"][2] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "Error: KeyError: \"the vault has no drawer 'broken'\"",
    }
    assert tool_line["tools"] == [python_tool(lookup).schema(), python_tool(add).schema()]
    assert tool_line["metadata"]["tool_limit"] is (turns == 1)


def test_a_session_with_sub_tools_is_taken_up_again_from_its_file(
    serve: Callable[..., ScriptedServer], tmp_path: Any
) -> None:
    server = serve({"root": [ASK, fence("FINAL(a)")], "sub": vault_sub})
    session, _ = vault_session(server, autosave=True)
    assert session.run().answer == "The drawer holds GOLD"
    assert session.path is not None
    asked = len(server.requests)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecoveryWarning)  # the re-run printed what the record says
        for tools in ([lookup, add], None):  # the functions again, or the recorded calls
            resumed = rlm_kernel.resume(
                session.path, "a vault with drawers", sub_tools=tools, **settings(server)
            )
            assert resumed.answer == "The drawer holds GOLD"
            (call,) = resumed.trajectory.iterations[0]["subcalls"]
            assert len(call["tool_turns"]) == 3
    assert len(server.requests) == asked  # the catch-up asked no model
    # The notebook export shows the calls too.
    notebook = tmp_path / "run.ipynb"
    session.trajectory.export(notebook, "ipynb")
    text = notebook.read_text()
    assert "1 tool call" in text or "2 tool calls" in text
    assert "lookup({" in text
    assert "vault has no drawer" in text
