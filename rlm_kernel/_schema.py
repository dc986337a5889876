"""The trajectory's record shapes, defined once: a ``TypedDict`` per record type with the function that
builds it, the schema version, and which records stand after rewinds.

Every record that changes the root model's conversation carries the text it added (``iteration``:
``assistant`` and ``observation``; ``compaction``: ``summary`` and ``note``; ``follow_up``: ``text``), and
a ``final`` record's forced call carries the messages it sent besides the history. So the history is a
fold over the records (``History.apply``), and no reader restates a prompt. Files of schema version 1,
which stored only the inputs of those texts, are brought up to this shape as they are read
(``_schema_v1``). The fields, for people: docs/formats.md §1.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, Literal, TypedDict, cast, get_args

from typing_extensions import NotRequired

from ._version import __version__
from .models import Completion, Message, Usage, request_key

SCHEMA_VERSION = 2


class ModelCall(TypedDict):
    """How one root-model call went: what a replay needs to serve it again, and its cost."""

    model: str
    request_key: str | None
    usage: dict[str, Any]
    latency: float
    finish_reason: str | None
    cached: bool


class ToolCallRecord(TypedDict):
    """One tool call of a sub-call (``sub_tools=``): the arguments as the model wrote them (JSON
    text), and either ``result`` (the text the model got back) or ``error`` (what it got back
    instead, after ``Error: ``); ``duration`` in seconds."""

    id: str
    name: str
    arguments: str
    result: str | None
    error: str | None
    duration: float


class ToolTurnRecord(TypedDict):
    """One model call of a sub-call's tool loop: what replay serves again (``request_key``, ``text``,
    ``finish_reason``, and the ``calls`` it asked for), its cost, and the calls' outcomes."""

    request_key: str
    model: str
    text: str
    finish_reason: str | None
    usage: dict[str, Any]
    latency: float
    cached: bool
    calls: list[ToolCallRecord]


class SubcallRecord(TypedDict):
    """One ``llm_query`` / ``llm_batch`` item / ``rlm_query`` made by a step's code."""

    id: str
    seq: int
    kind: str
    model: str
    depth: int
    prompt: str
    response: str
    error: str | None
    usage: dict[str, Any]
    latency: float
    started: float
    cached: bool
    request_key: str | None
    batch: dict[str, Any] | None
    child: dict[str, Any] | None
    # A typed sub-call (llm_query(prompt, output=...)): the type its answer was validated as.
    output: NotRequired[str]
    # A sub-call with tools (``sub_tools=``): every model call of its tool loop, in order, with the
    # tools each asked for; ``request_key`` is the first one's, ``response`` the last one's text and
    # ``usage`` their sum. ``tool_limit``: RLM.sub_tool_turns cut the loop. Only in such sub-calls,
    # so older files and sub-calls without tools lack both.
    tool_turns: NotRequired[list[ToolTurnRecord]]
    tool_limit: NotRequired[bool]


class SessionRecord(TypedDict):
    """The first record: ids, question, context fingerprint, settings, models, the preamble."""

    type: Literal["session"]
    schema_version: int
    session_id: str
    parent_call: str | None
    depth: int
    created: str
    rlm_kernel_version: str
    question: str
    context: dict[str, Any]
    config: dict[str, Any]
    models: dict[str, str]
    endpoint: str
    tools: list[dict[str, str]]
    messages: list[Message]
    # A typed answer's spec (``output=``): kind, name and JSON schema (``OutputSpec.describe``).
    # Only in sessions with one, so older files and untyped sessions lack it.
    output: NotRequired[dict[str, Any]]
    # The tools sub-calls were offered (``sub_tools=``): name, description, JSON-schema parameters
    # and source (``python``, ``mcp:<server>``), as sent. Only in sessions with some.
    sub_tools: NotRequired[list[dict[str, Any]]]
    # The collection the code searched (``retriever=``): the backend's one line (``describe``, no
    # credentials), its document count, the tools bound and the scope (document ids a parent RLM
    # chose, or None). Only in sessions with one.
    retriever: NotRequired[dict[str, Any]]


class InvalidAnswer(TypedDict):
    """A typed answer that failed validation: the text submitted, how, and the validator's message
    (what the model was told, in the iteration's notes)."""

    value: str
    source: str
    message: str


class SubmissionRecord(TypedDict):
    """An answer the step's code submitted, and how (``FINAL``, ``FINAL_VAR``, ``answer``…)."""

    value: str
    source: str


class IterationRecord(TypedDict):
    """One executed step; ``assistant`` and ``observation`` are the turn it added to the history."""

    type: Literal["iteration"]
    iteration: int
    started: str
    duration: float
    model_call: ModelCall
    response: str
    blocks: list[str]
    code: str
    edited_by_user: bool
    diff: str | None
    results: list[dict[str, Any]]
    output: str
    notes: list[str]
    assistant: str
    observation: str
    subcalls: list[SubcallRecord]
    final: SubmissionRecord | None
    # A submission a typed answer's validation refused (only in such steps).
    invalid: NotRequired[InvalidAnswer]


class RewindRecord(TypedDict):
    """Iterations from ``to_iteration`` on are superseded (they stay in the file)."""

    type: Literal["rewind"]
    to_iteration: int
    at: str


class CompactionRecord(TypedDict):
    """The history up to ``after_iteration`` became ``summary`` (the model's) and ``note`` (ours)."""

    type: Literal["compaction"]
    after_iteration: int
    summary: str
    note: str
    model_call: ModelCall


class FollowUpRecord(TypedDict):
    """A new question in the same session; ``text`` is the message that carried it to the model."""

    type: Literal["follow_up"]
    question: str
    after_iteration: int
    at: str
    text: str


class ForcedCall(TypedDict):
    """The best-answer (or baseline) call that ended a run: its reply and what it was sent.

    ``messages`` follow the history when ``history`` is true (the best-answer question), else they are
    the whole prompt (baseline), with the context replaced by its description."""

    response: str
    model_call: ModelCall
    history: bool
    messages: list[Message]


class FinalRecord(TypedDict):
    """How the current question ended (one per question)."""

    type: Literal["final"]
    answer: str | None
    reason: str
    message: str
    forced: ForcedCall | None
    usage: dict[str, Any]
    duration: float
    finished: str
    error: dict[str, Any] | None
    # A typed session's validated answer as JSON data (None when none matched).
    value: NotRequired[Any]


class GuardRecord(TypedDict):
    """A guard stepped in at ``iteration`` (``_guards``): a step that repeats step ``repeats``
    (``rule`` repeated_code / repeated_output) was ``warned`` or ``stopped``, or an answer stated in
    prose was ``nudged``. ``note`` is what the model read: for ``warned`` and ``nudged`` it is among
    the iteration's notes (its observation), for ``stopped`` the reason the best-answer call gives.
    A step stopped before it ran keeps the model's ``response`` and its ``model_call``."""

    type: Literal["guard"]
    iteration: int
    rule: Literal["repeated_code", "repeated_output", "prose_answer"]
    action: Literal["warned", "stopped", "nudged"]
    repeats: int | None
    note: str
    response: str | None
    model_call: ModelCall | None
    at: str


Record = (
    SessionRecord
    | IterationRecord
    | RewindRecord
    | CompactionRecord
    | FollowUpRecord
    | GuardRecord
    | FinalRecord
)
RecordType = Literal["session", "iteration", "rewind", "compaction", "follow_up", "guard", "final"]
RECORD_TYPES: frozenset[str] = frozenset(get_args(RecordType))


def now() -> str:
    """The time stamp records carry: ISO 8601, UTC, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def session_record(
    session_id: str,
    *,
    question: str,
    parent_call: str | None,
    depth: int,
    context: dict[str, Any],
    config: dict[str, Any],
    models: dict[str, str],
    endpoint: str,
    tools: list[dict[str, str]],
    messages: list[Message],
    output: dict[str, Any] | None = None,
    sub_tools: list[dict[str, Any]] | None = None,
    retriever: dict[str, Any] | None = None,
) -> SessionRecord:
    """The first record of a session (of this rlm_kernel version, in this schema version)."""
    record: SessionRecord = {
        "type": "session",
        "schema_version": SCHEMA_VERSION,
        "session_id": session_id,
        "parent_call": parent_call,
        "depth": depth,
        "created": now(),
        "rlm_kernel_version": __version__,
        "question": question,
        "context": context,
        "config": config,
        "models": models,
        "endpoint": endpoint,
        "tools": tools,
        "messages": messages,
    }
    if output is not None:
        record["output"] = output
    if sub_tools:
        record["sub_tools"] = sub_tools
    if retriever is not None:
        record["retriever"] = retriever
    return record


def model_call(
    completion: Completion | None,
    request: Iterable[Message] | str | None,
    fallback_model: str = "",
) -> ModelCall:
    """The ``model_call`` of a record; ``request`` is the messages sent or their key already made.

    Without a completion (a step recreated by rewind: no call was made for it this time) it records
    no usage and no latency."""
    if isinstance(request, str) or request is None:
        key = request
    else:
        key = request_key(completion.model if completion else fallback_model, list(request))
    if completion is None:
        return {
            "model": fallback_model,
            "request_key": key,
            "usage": Usage().to_dict(),
            "latency": 0.0,
            "finish_reason": None,
            "cached": False,
        }
    return {
        "model": completion.model,
        "request_key": key,
        "usage": completion.usage.to_dict(),
        "latency": completion.latency,
        "finish_reason": completion.finish_reason,
        "cached": completion.cached,
    }


def subcall_record(
    call_id: str,
    seq: int,
    kind: str,
    model: str,
    depth: int,
    prompt: str,
    request: str | None,
    batch: dict[str, Any] | None,
) -> SubcallRecord:
    """A sub-call just started: no answer yet (the engine fills it in as it ends)."""
    return {
        "id": call_id,
        "seq": seq,
        "kind": kind,
        "model": model,
        "depth": depth,
        "prompt": prompt,
        "response": "",
        "error": None,
        "usage": Usage().to_dict(),
        "latency": 0.0,
        "started": time.time(),
        "cached": False,
        "request_key": request,
        "batch": batch,
        "child": None,
    }


def iteration_record(
    iteration: int,
    *,
    call: ModelCall,
    response: str,
    blocks: list[str],
    code: str,
    edited: bool,
    diff: str | None,
    results: list[dict[str, Any]],
    output: str,
    notes: list[str],
    assistant: str,
    observation: str,
    subcalls: list[SubcallRecord],
    final: SubmissionRecord | None,
    duration: float,
    invalid: InvalidAnswer | None = None,
) -> IterationRecord:
    """One executed step: ``code`` is what ran (a person's edit, or the model's ``blocks``), and
    ``assistant`` / ``observation`` the turn it adds to the history."""
    record: IterationRecord = {
        "type": "iteration",
        "iteration": iteration,
        "started": now(),
        "duration": duration,
        "model_call": call,
        "response": response,
        "blocks": blocks,
        "code": code,
        "edited_by_user": edited,
        "diff": diff,
        "results": results,
        "output": output,
        "notes": notes,
        "assistant": assistant,
        "observation": observation,
        "subcalls": subcalls,
        "final": final,
    }
    if invalid is not None:
        record["invalid"] = invalid
    return record


def rewind_record(to_iteration: int) -> RewindRecord:
    """A person (or recovery) rewound the session so that ``to_iteration`` runs again."""
    return {"type": "rewind", "to_iteration": to_iteration, "at": now()}


def compaction_record(
    after_iteration: int, summary: str, note: str, call: ModelCall
) -> CompactionRecord:
    """The history so far was folded into ``summary``, followed by ``note``."""
    return {
        "type": "compaction",
        "after_iteration": after_iteration,
        "summary": summary,
        "note": note,
        "model_call": call,
    }


def follow_up_record(question: str, after_iteration: int, text: str) -> FollowUpRecord:
    """A follow-up question, and ``text``: the message the model reads it in."""
    return {
        "type": "follow_up",
        "question": question,
        "after_iteration": after_iteration,
        "at": now(),
        "text": text,
    }


def guard_record(
    iteration: int,
    *,
    rule: Literal["repeated_code", "repeated_output", "prose_answer"],
    action: Literal["warned", "stopped", "nudged"],
    repeats: int | None,
    note: str,
    response: str | None = None,
    call: ModelCall | None = None,
) -> GuardRecord:
    """A guard's intervention (see ``GuardRecord``)."""
    return {
        "type": "guard",
        "iteration": iteration,
        "rule": rule,
        "action": action,
        "repeats": repeats,
        "note": note,
        "response": response,
        "model_call": call,
        "at": now(),
    }


def forced_call(
    completion: Completion, sent: list[Message], *, history: bool, shown: list[Message]
) -> ForcedCall:
    """A forced call's part of the final record: ``sent`` makes its request key (for replays);
    ``shown`` is what the record keeps (``sent`` less the history, with no context in it)."""
    return {
        "response": completion.text,
        "model_call": model_call(completion, sent),
        "history": history,
        "messages": shown,
    }


def final_record(
    answer: str | None,
    reason: str,
    message: str,
    forced: ForcedCall | None,
    *,
    usage: dict[str, Any],
    duration: float,
    error: dict[str, Any] | None,
    typed: bool = False,
    value: Any = None,
) -> FinalRecord:
    """How the current question ended; a typed session's record also has the answer's ``value``
    as JSON data."""
    record: FinalRecord = {
        "type": "final",
        "answer": answer,
        "reason": reason,
        "message": message,
        "forced": forced,
        "usage": usage,
        "duration": duration,
        "finished": now(),
        "error": error,
    }
    if typed:
        record["value"] = value
    return record


def context_summary(session: Mapping[str, Any]) -> str:
    """The context's fingerprint in words: type, size, documents and a hash prefix, never its text;
    for a session with only a collection (``retriever=``, ``P`` None), the collection's line."""
    info = session["context"]
    docs = int(info["docs"])
    if info["type"] == "NoneType" and "retriever" in session:
        return f"none: the collection {session['retriever']['describe']}"
    return (
        f"{info['type']}, {int(info['chars']):,} characters, {docs:,} document"
        f"{'' if docs == 1 else 's'}, sha256 {str(info['sha256'])[:12]}"
    )


def omitted_context(session: Mapping[str, Any]) -> str:
    """What a record holds where a prompt carried the whole context (baseline mode)."""
    return f"[the context P is not exported: {context_summary(session)}]"


def standing(records: Iterable[Record]) -> list[tuple[Record, int]]:
    """The records that stand, in order, each with the iteration it is or follows.

    A rewind to ``n`` drops every earlier record from iteration ``n`` on: those iterations and the
    compactions, follow-ups and endings that came after them. Rewind records themselves are left out.
    """
    kept: list[tuple[Record, int]] = []
    last = 0
    for record in records:
        if record["type"] == "iteration":
            last = record["iteration"]
        elif record["type"] == "rewind":
            last = record["to_iteration"] - 1
            kept = [(r, after) for r, after in kept if after <= last]
            continue
        kept.append((record, last))
    return kept


def iterations(records: Iterable[Record]) -> Iterator[IterationRecord]:
    """The iterations that stand (see ``standing``)."""
    for record, _ in standing(records):
        if record["type"] == "iteration":
            yield record


def as_records(raw: Iterable[Mapping[str, Any]]) -> list[Record]:
    """Records read from JSON, typed: the reader has checked each one's ``type`` (extra fields stay)."""
    return [cast(Record, dict(r)) for r in raw]
