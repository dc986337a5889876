"""Re-enact a recorded session offline: the code runs again for real (at steps a person edited, the
person's code), the model answers come from the recording, so a replay needs no API key and spends no
tokens."""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, cast

from . import _stdjson as json
from ._config import RLM, setting_names
from ._context import describe_context, load_context
from ._output import spec_from_record
from ._retrieval_tools import require_retriever
from ._schema import (
    ModelCall,
    Record,
    SubcallRecord,
    ToolCallRecord,
    ToolTurnRecord,
    standing,
)
from ._session import Session
from ._subtools import SubTool
from ._trajectory import Trajectory
from .errors import ContextMismatchWarning, ToolArgumentsError, TrajectoryError
from .executors import Executor
from .models import Completion, ModelClient, ToolCall, Usage
from .models.replay import ReplayClient

# Settings that shape the loop and must match the recording for the replay to follow it.
_LOOP_SETTINGS = (
    "model",
    "sub_model",
    "max_iterations",
    "max_depth",
    "max_subcalls",
    "max_tokens",
    "max_cost",
    "max_output_chars",
    "max_reply_chars",
    "mode",
    "baseline_threshold",
    "compaction",
    "compaction_threshold",
    "context_window",
    "refuse_early_final",
    "iteration_timeout",
    "loop_guard",
    "output_repairs",
    "prose_nudge",
    "protocol",
    "strategy",
    # What a directory or glob context loaded: a re-run must load the same P to match its hash.
    "include",
    "exclude",
    "gitignore",
    "default_skips",
    "max_file_mb",
)


# Loop settings added after recordings were first made, with the value that behaves as the versions
# before them did: a recording that lacks one was made without it, and replays that way.
_BEFORE_THE_SETTING: dict[str, Any] = {
    "gitignore": False,
    "loop_guard": 0,
    "max_reply_chars": None,
    "prose_nudge": False,
    "protocol": "rlm_kernel",
    "strategy": "",
}


def recorded_settings(
    recording: Trajectory, names: tuple[str, ...] = _LOOP_SETTINGS
) -> dict[str, Any]:
    """The recorded values of ``names``: a re-run must use them to follow the recording (request
    keys name the models; limits decide when it ends). Settings this version lacks are skipped;
    settings the recording's version lacked take the value that behaves as that version did."""
    known = set(setting_names())
    recorded: Mapping[str, Any] = {**_BEFORE_THE_SETTING, **recording.session["config"]}
    return {k: v for k, v in recorded.items() if k in names and k in known}


def replay_session(
    recording: Trajectory,
    question: str | None,
    context: object,
    overrides: Mapping[str, Any] | None = None,
    *,
    executor: Executor | None = None,
    speed: float | None = None,
    base: RLM | None = None,
    fallback: ModelClient | None = None,
    output: object = None,
    sub_tools: object = None,
    retriever: object = None,
) -> Session:
    """A Session for ``context`` whose model calls are served from ``recording``.

    A session that searched a collection replays with ``retriever`` (its code runs again and
    searches it; a ConfigError without one); ``context`` may then be None, as it was recorded.

    A typed session (``output=``) replays typed: ``output`` (the user's class, so ``value`` is its
    instance again), or else the recorded JSON schema, whose ``value`` is plain JSON data.

    A session whose sub-models had tools replays with ``sub_tools`` (the functions or servers, run
    again for real), or else with the recorded tools, which answer each call as it was answered.

    ``base``: settings the recording does not decide (endpoint, timeouts, executor), default RLM().
    ``fallback``: answers what the recording lacks (an edited step's new sub-call, turns past its end)
    live; without one such a request raises ReplayMissError."""
    recorded = recording.session
    if question is not None and question.strip() != recorded["question"].strip():
        raise TrajectoryError(
            f"The recording answers a different question: {recorded['question']!r}",
            fix="Ask the recorded question to replay it, or run live with a model",
        )
    require_retriever(recorded, retriever)
    config = (base or RLM()).with_overrides({**recorded_settings(recording), **(overrides or {})})
    # Loaded under the replay's own limit (RLM.max_context_mb, from base or overrides), as a live run.
    loaded = (
        None
        if context is None and retriever is not None
        else load_context(context, **config.load_rules().options())
    )
    if describe_context(loaded).sha256 != recorded["context"]["sha256"]:
        warnings.warn(
            ContextMismatchWarning(
                "The context differs from the one the session was recorded on; the replayed model "
                "answers may not fit what the code now prints."
            ),
            stacklevel=2,
        )
    root, sub = replay_clients(recording, fallback=fallback, speed=speed)
    if output is None and "output" in recorded:
        output = spec_from_record(recorded["output"])
    session = Session(
        recorded["question"],
        loaded,
        config=config,
        client=root,
        sub_client=sub,
        executor=executor,
        output=output,
        sub_tools=cast(Any, sub_tools) if sub_tools is not None else recorded_tools(recording),
        retriever=retriever,
    )
    session.edits = recorded_edits(recording)
    return session


def recorded_edits(recording: Trajectory) -> dict[int, str]:
    """The code a person ran in place of the model's, by iteration, for the steps that stand (a
    step rewound and run again counts as run the second time)."""
    return {it["iteration"]: it["code"] for it in recording.iterations if it.get("edited_by_user")}


def replay_clients(
    recording: Trajectory, *, fallback: ModelClient | None = None, speed: float | None = None
) -> tuple[ReplayClient, ReplayClient]:
    """(root client, sub-call client) serving everything ``recording`` recorded."""
    turns: list[Completion] = []
    calls: list[tuple[str, Completion]] = []
    collect_answers(recording.records, turns, calls)
    return (
        ReplayClient(sequence=turns, fallback=fallback, speed=speed),
        ReplayClient(keyed=calls, fallback=fallback, speed=speed),
    )


def collect_answers(
    records: Iterable[Record], turns: list[Completion], calls: list[tuple[str, Completion]]
) -> None:
    """Append the recorded root turns of ``records`` to ``turns``, in the order they were asked (a
    child's turns come inside its parent's iteration), and their sub-call answers to ``calls`` by
    request key. Only the records that stand count (``_schema.standing``)."""
    for record, _ in standing(records):
        if record["type"] == "compaction":
            turns.append(recorded_completion(record["summary"], record["model_call"]))
        elif record["type"] == "guard" and record["model_call"] is not None:
            # A step the loop guard stopped before it ran: its proposal was a root turn.
            turns.append(recorded_completion(record["response"] or "", record["model_call"]))
        elif record["type"] == "final" and record["forced"]:
            forced = record["forced"]
            turns.append(recorded_completion(forced["response"], forced["model_call"]))
        elif record["type"] == "iteration":
            if record["model_call"]["request_key"] is not None:
                turns.append(recorded_completion(record["response"], record["model_call"]))
            for call in record["subcalls"]:
                child = call["child"]
                if child:
                    collect_answers(Trajectory.from_dict(child).records, turns, calls)
                elif call.get("tool_turns"):
                    # A sub-call with tools: each model call of its loop, with the calls it made.
                    calls.extend(
                        (turn["request_key"], tool_turn(turn)) for turn in call["tool_turns"]
                    )
                elif call.get("request_key") and call.get("error") is None:
                    key = str(call["request_key"])
                    calls.append((key, recorded_completion(call["response"], call)))


def recorded_completion(text: str, call: ModelCall | SubcallRecord) -> Completion:
    """The completion a recorded model call (its ``model_call`` entry, or a sub-call) answered."""
    return Completion(
        text=text,
        model=call["model"],
        usage=Usage.from_dict(call.get("usage", {})),
        latency=float(call.get("latency", 0.0)),
    )


def tool_turn(turn: ToolTurnRecord) -> Completion:
    """The completion one recorded turn of a tool loop answered: its text and its tool calls."""
    return Completion(
        text=turn["text"],
        model=turn["model"],
        usage=Usage.from_dict(turn.get("usage", {})),
        latency=float(turn.get("latency", 0.0)),
        finish_reason=turn.get("finish_reason"),
        tool_calls=tuple(
            ToolCall(c["id"], c["name"], c["arguments"]) for c in turn.get("calls", ())
        ),
    )


def recorded_tools(recording: Trajectory) -> list[SubTool]:
    """The recording's sub-model tools, answering from it: each call gets the result (or error) the
    same tool gave the same arguments when recorded, in recorded order. So a replay needs neither
    the functions nor the MCP servers, and its requests are the recorded ones."""
    answers: dict[tuple[str, str], deque[tuple[str | None, str | None]]] = {}
    for call in _tool_calls(recording.records):
        key = (call["name"], _canonical_arguments(call["arguments"]))
        answers.setdefault(key, deque()).append((call["result"], call["error"]))

    def runner(name: str) -> Callable[[dict[str, Any]], Awaitable[str]]:
        async def run(arguments: dict[str, Any]) -> str:
            queue = answers.get((name, _canonical_arguments(arguments)))
            if not queue:
                raise ToolArgumentsError(
                    f"the recording holds no result of {name!r} for these arguments",
                    fix="Replay with the tools themselves: sub_tools=[...]",
                )
            result, error = queue.popleft() if len(queue) > 1 else queue[0]
            if error is not None:
                raise ToolArgumentsError(error)  # the error text exactly as the model read it
            return result or ""

        return run

    return [
        SubTool(
            t["name"],
            t.get("description", ""),
            t.get("parameters", {}),
            runner(t["name"]),
            t.get("source", "python"),
        )
        for t in recording.session.get("sub_tools", [])
    ]


def _tool_calls(records: Iterable[Record]) -> Iterator[ToolCallRecord]:
    for record, _ in standing(records):
        if record["type"] != "iteration":
            continue
        for call in record["subcalls"]:
            if call["child"]:
                yield from _tool_calls(Trajectory.from_dict(call["child"]).records)
            for turn in call.get("tool_turns", ()):
                yield from turn["calls"]


def _canonical_arguments(arguments: str | dict[str, Any]) -> str:
    """Arguments as one text whatever their spacing: JSON text is decoded first."""
    value: object = arguments
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return arguments
    return json.dumps(value, sort_keys=True)
