"""Tools for sub-models (``sub_tools=``): Python functions and MCP servers' tools that ``llm_query`` /
``llm_batch`` calls may call through the endpoint's tool calling, in a bounded loop.

The root model never sees this traffic: its code gets the sub-model's final answer back, as from any
sub-call, and the sub-call's record keeps every turn (``tool_turns``: each model call, the tools it
asked for, their arguments, results or errors, and how long each took). A tool that raises, is not
known, or is given arguments that do not fit its schema answers the sub-model with the error, as its
result, so the sub-model can correct itself; only a failed model call ends the sub-call.

A Python function's schema comes from its signature (pydantic builds the JSON schema and validates the
arguments against it) and its docstring (the description the sub-model reads).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _stdjson as json
from ._schema import ToolCallRecord, ToolTurnRecord
from .errors import ConfigError, ToolArgumentsError
from .models import Completion, Message

# What chat-completions endpoints accept as a function's name.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class SubTool:
    """A tool a sub-model may call: its name, description and JSON-schema ``parameters`` as the model
    reads them, and ``run``, which takes the decoded arguments and returns the result's text (or
    raises: the error goes back to the model). ``source`` says where it comes from (``python``, or
    ``mcp:<server>``)."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any]], Awaitable[str]] = field(repr=False, compare=False)
    source: str = "python"

    def schema(self) -> dict[str, Any]:
        """The chat-completions tool schema (an entry of a request's ``tools``)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def result_text(value: object) -> str:
    """What a tool returned, as the text the model reads: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    dump = getattr(value, "model_dump", None)  # a pydantic model
    if callable(dump):
        value = dump(mode="json")
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def python_tool(fn: Callable[..., Any], name: str | None = None) -> SubTool:
    """A ``SubTool`` for a Python function (sync or async): the schema from its signature, the
    description from its docstring. A sync function runs on a worker thread, off the sub-call loop."""
    import pydantic  # here, not at import: only sessions with sub-tools need it

    name = name or str(getattr(fn, "__name__", ""))
    if not _NAME.match(name):
        raise ConfigError(
            f"sub_tools: {name!r} cannot be a tool name (letters, digits, _ and -, at most 64)",
            fix="Pass it under another name: sub_tools={'lookup': fn}",
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"sub_tools: the signature of {name!r} cannot be read ({exc})",
            fix="Wrap it in a def with named, annotated parameters",
        ) from exc
    fields: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(
                f"sub_tools: {name!r} takes *{param.name}; a tool's arguments must be named",
                fix="Give the function named parameters, one per argument the model passes",
            )
        annotation = Any if param.annotation is param.empty else param.annotation
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, default)
    try:
        arguments = pydantic.create_model(f"{name}_arguments", **fields)
        parameters = arguments.model_json_schema()
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError, TypeError) as exc:
        raise ConfigError(
            f"sub_tools: no JSON schema can describe the parameters of {name!r} ({exc})",
            fix="Annotate its parameters with JSON types (str, int, float, bool, list, dict, a "
            "pydantic model)",
        ) from exc
    parameters.pop("title", None)
    is_async = inspect.iscoroutinefunction(fn)

    async def run(raw: dict[str, Any]) -> str:
        try:
            validated = arguments.model_validate(raw)
        except pydantic.ValidationError as exc:
            raise ToolArgumentsError(_validation_text(exc)) from None
        kwargs = {key: getattr(validated, key) for key in fields}
        if is_async:
            value = await fn(**kwargs)
        else:
            value = await asyncio.to_thread(fn, **kwargs)
        return result_text(value)

    return SubTool(name, inspect.getdoc(fn) or "", parameters, run)


def _validation_text(exc: Any) -> str:
    problems = [
        f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
        for error in exc.errors()
    ]
    return "invalid arguments: " + "; ".join(problems)


def sub_tools(tools: Iterable[Any] | Mapping[str, Any] | None) -> list[SubTool]:
    """``sub_tools=`` without MCP servers (``_mcp.toolbox`` starts those) as a list of ``SubTool``:
    functions (by their names, or under the mapping's keys) and ``SubTool`` values; a name given
    twice is a ConfigError."""
    if tools is None:
        return []
    named = list(tools.items()) if isinstance(tools, Mapping) else [(None, t) for t in tools]
    result = [as_sub_tool(value, name) for name, value in named]
    check_unique([tool.name for tool in result])
    return result


def as_sub_tool(value: object, name: str | None = None) -> SubTool:
    """One entry of ``sub_tools=`` that is not an MCP server: a ``SubTool``, or a function."""
    if isinstance(value, SubTool):
        return value
    if callable(value):
        return python_tool(value, name)
    raise ConfigError(
        f"sub_tools: {value!r} is neither a function nor an MCP server",
        fix="Pass functions (sub_tools=[search]) or rlm_kernel.MCPServer(...) specs",
    )


def check_unique(names: Iterable[str]) -> None:
    """A ConfigError when two sub-model tools have the same name: the model could not tell them apart."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(
                f"sub_tools: two tools are named {name!r}",
                fix="Give one of them another name (sub_tools={'other_name': fn}), or a server a "
                "prefix: MCPServer(..., prefix='docs_')",
            )
        seen.add(name)


# A model call of the loop: (messages, tools offered or None) -> its completion and request key.
Complete = Callable[[list[Message], list[dict[str, Any]] | None], Awaitable[tuple[Completion, str]]]


@dataclass
class LoopResult:
    """How a tool loop ended: the final completion, every turn, and whether the turn limit cut it."""

    completion: Completion
    turns: list[ToolTurnRecord]
    cut: bool


def limit_note(turns: int) -> str:
    """What the sub-model is told when it has used every round of tool calls it may make."""
    return (
        f"You have used all {turns} round{'' if turns == 1 else 's'} of tool calls this request "
        f"allows (RLM.sub_tool_turns = {turns}). Do not call any more tools: answer now from what "
        "the tools returned."
    )


def cut_marker(turns: int) -> str:
    """Appended to the answer the root's code gets back when the turn limit cut the loop."""
    return (
        f"\n\n[rlm_kernel: the sub-model's tool calls were cut at RLM.sub_tool_turns = {turns}; "
        "it answered without further tools]"
    )


async def tool_loop(
    complete: Complete,
    messages: list[Message],
    tools: Sequence[SubTool],
    max_turns: int,
    scrub: Callable[[str], str] = lambda text: text,
    turns: list[ToolTurnRecord] | None = None,
) -> LoopResult:
    """Ask with ``tools`` until the model answers without calling one, running each call it asks for
    and sending the results back, for at most ``max_turns`` rounds of calls; then one last call
    without tools, told why. ``scrub`` cleans a tool's result before the model reads it (secrets).
    Each turn is appended to ``turns`` as it happens, so a loop a failed call ends keeps them."""
    by_name = {tool.name: tool for tool in tools}
    schemas = [tool.schema() for tool in tools]
    conversation = list(messages)
    turns = [] if turns is None else turns
    for _ in range(max_turns):
        completion, key = await complete(conversation, schemas)
        turn = _turn(completion, key)
        turns.append(turn)
        if not completion.tool_calls:
            return LoopResult(completion, turns, cut=False)
        conversation.append(
            {
                "role": "assistant",
                "content": completion.text,
                "tool_calls": [call.to_dict() for call in completion.tool_calls],
            }
        )
        for call in completion.tool_calls:
            record = await _run_call(by_name, call.id, call.name, call.arguments, scrub)
            turn["calls"].append(record)
            text = record["result"] if record["error"] is None else f"Error: {record['error']}"
            conversation.append({"role": "tool", "tool_call_id": call.id, "content": text or ""})
    conversation.append({"role": "user", "content": limit_note(max_turns)})
    completion, key = await complete(conversation, None)
    turns.append(_turn(completion, key))
    return LoopResult(completion, turns, cut=True)


def _turn(completion: Completion, key: str) -> ToolTurnRecord:
    return {
        "request_key": key,
        "model": completion.model,
        "text": completion.text,
        "finish_reason": completion.finish_reason,
        "usage": completion.usage.to_dict(),
        "latency": completion.latency,
        "cached": completion.cached,
        "calls": [],
    }


async def _run_call(
    tools: Mapping[str, SubTool],
    call_id: str,
    name: str,
    arguments: str,
    scrub: Callable[[str], str],
) -> ToolCallRecord:
    started = time.perf_counter()
    result: str | None = None
    try:
        result = scrub(await _call(tools, name, arguments))
        error = None
    except ToolArgumentsError as exc:
        error = exc.what
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the tool's own failure: the model reads it and may try again
        error = scrub(f"{type(exc).__name__}: {exc}")
    return {
        "id": call_id,
        "name": name,
        "arguments": arguments,
        "result": result,
        "error": error,
        "duration": time.perf_counter() - started,
    }


async def _call(tools: Mapping[str, SubTool], name: str, arguments: str) -> str:
    tool = tools.get(name)
    if tool is None:
        known = ", ".join(tools) or "none"
        raise ToolArgumentsError(f"there is no tool named {name!r}; the tools are: {known}")
    try:
        decoded = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError as exc:
        raise ToolArgumentsError(
            f"the arguments are not valid JSON ({exc.msg} at character {exc.pos})"
        ) from None
    if not isinstance(decoded, dict):
        raise ToolArgumentsError(
            f"the arguments must be a JSON object, not {type(decoded).__name__}"
        )
    return await tool.run(decoded)
