"""Reading trajectories of schema version 1 (rlm_kernel 0.x before the record carried its history).

Version 1 records stored the inputs of the texts the session added to the root model's conversation
(the follow-up question, the compaction summary, the limit that forced a best answer), not the texts.
This module is the one place that knows how version 1 worded them, so that its files read as
version 2: each text is rebuilt exactly as the version-1 session built it (the tests check every
rebuilt prompt against the request key recorded with it). The wordings below are frozen: they are
what version-1 files were written with, whatever the prompts of today say.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._schema import SCHEMA_VERSION, omitted_context

_COMPACTED = (
    "Your history up to iteration {after} was compacted into the summary above; the REPL still holds "
    "every variable (SHOW_VARS() lists them). Continue."
)
_FOLLOW_UP = (
    "Follow-up question: {question}\nThe REPL still holds every variable you made (SHOW_VARS() lists "
    "them). Continue with code."
)
_BEST_ANSWER = (
    "You cannot run more code: {reason}. Based on everything you have seen so far, give your best "
    "final answer to the question now, as plain text without code. Question: {question}"
)
_BASELINE_SYSTEM = "Answer the question using the context. Be concise and specific."
# How version 1 worded the reason of a forced best-answer call in the final record's message.
_LIMIT_PREFIX, _LIMIT_SUFFIX = "Limit reached: ", ". The answer is the model's best guess."


def upgrade(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Version-1 records (a session record first) as version 2; child RLMs' trajectories too."""
    session = records[0]
    question, answer = str(session["question"]), None
    out: list[dict[str, Any]] = [{**session, "schema_version": SCHEMA_VERSION}]
    for record in records[1:]:
        kind = record.get("type")
        new = dict(record)
        if kind == "iteration":
            new["assistant"] = (
                f"```repl\n{record['code']}\n```"
                if record["edited_by_user"]
                else str(record["response"])
            )
            new["subcalls"] = [_upgraded_call(call) for call in record.get("subcalls", [])]
        elif kind == "rewind":
            answer = None
        elif kind == "compaction":
            new["note"] = _COMPACTED.format(after=record["after_iteration"])
        elif kind == "follow_up":
            question = str(record["question"])
            text = _FOLLOW_UP.format(question=question)
            if answer is not None:
                text = f"Your previous answer was: {answer!r}\n\n{text}"
            new["text"] = text
            answer = None
        elif kind == "final":
            answer = record["answer"]
            if record.get("forced"):
                new["forced"] = _forced(record, question, session)
        out.append(new)
    return out


def _upgraded_call(call: Mapping[str, Any]) -> dict[str, Any]:
    child = call.get("child")
    if not child or child.get("schema_version") != 1:
        return dict(call)
    return {
        **call,
        "child": {"schema_version": SCHEMA_VERSION, "records": upgrade(list(child["records"]))},
    }


def _forced(final: Mapping[str, Any], question: str, session: Mapping[str, Any]) -> dict[str, Any]:
    forced = dict(final["forced"])
    if final["reason"] == "baseline":
        content = f"Context:\n{omitted_context(session)}\n\nQuestion: {question}"
        forced["history"] = False
        forced["messages"] = [
            {"role": "system", "content": _BASELINE_SYSTEM},
            {"role": "user", "content": content},
        ]
        return forced
    text = str(final.get("message", ""))
    limit = text.startswith(_LIMIT_PREFIX) and text.endswith(_LIMIT_SUFFIX)
    why = text[len(_LIMIT_PREFIX) : -len(_LIMIT_SUFFIX)] if limit else final["reason"]
    forced["history"] = True
    forced["messages"] = [
        {"role": "user", "content": _BEST_ANSWER.format(reason=why, question=question)}
    ]
    return forced
