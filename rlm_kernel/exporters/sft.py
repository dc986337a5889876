"""``sft``: chat-format JSON Lines for supervised fine-tuning, one line per session.

``{"messages": [system, user(metadata), assistant(step 1), user(observation 1), …, assistant(last)],
"metadata": {…}}``. A step a person edited appears as the code that ran, in a ```repl fence, in place of
the model's response (exactly what the model saw in its history afterwards), and is listed in
``metadata.edited_steps`` so a trainer can weight or drop it. A compacted session is written with its
whole history, so every turn the model produced is there. A sub-call whose sub-model called tools
(``sub_tools=``) adds one line of its own in the tool-calling form (``messages`` with ``tool_calls``
and ``tool`` answers, and ``tools``). Not read back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._trajectory import Trajectory
from ._common import children, message, offered_tools, tool_conversation, walk, write_jsonl


def write(
    trajectory: Trajectory,
    path: Path,
    *,
    only_successful: bool = True,
    include_children: bool = False,
) -> None:
    """``only_successful``: skip sessions that did not end with a submitted answer (reason "final").
    ``include_children``: also write one line per child RLM session of the tree."""
    sessions = [trajectory, *(children(trajectory) if include_children else [])]
    lines = [example(t) for t in sessions if not only_successful or _reason(t) == "final"]
    # Every tool loop in the tree (subcalls() walks the children too), each its own conversation.
    lines += [tool_example(trajectory, call) for call in _tool_calls(trajectory)]
    write_jsonl(path, [line for line in lines if line is not None], trajectory)


def _tool_calls(trajectory: Trajectory) -> list[dict[str, Any]]:
    """The session's sub-calls with tools (``sub_tools=``) that ended with an answer."""
    calls = [dict(c) for c in trajectory.subcalls()]
    return [c for c in calls if c.get("tool_turns") and not c.get("error")]


def tool_example(trajectory: Trajectory, call: dict[str, Any]) -> dict[str, Any]:
    """One sub-call's tool loop as a tool-calling training conversation (OpenAI's fine-tuning chat
    format: ``messages`` with the assistant's ``tool_calls`` and the ``tool`` answers, and ``tools``)."""
    session = trajectory.session
    return {
        "messages": tool_conversation(call),
        "tools": offered_tools(session),
        "metadata": {
            "session_id": session["session_id"],
            "subcall": call["id"],
            "kind": call["kind"],
            "depth": call["depth"],
            "model": call["model"],
            "tool_limit": bool(call.get("tool_limit")),
        },
    }


def _reason(trajectory: Trajectory) -> str | None:
    final = trajectory.final
    return final["reason"] if final else None


def example(trajectory: Trajectory) -> dict[str, Any] | None:
    """One training conversation, or None when it would have no model turn to learn from."""
    session, final = trajectory.session, trajectory.final
    steps, history = walk(trajectory, compacted=False)
    records = [s.record for s in steps if s.type == "iteration"]
    last = steps[-1] if steps else None
    forced = last is not None and last.type == "final" and bool(last.record.get("forced"))
    if last is not None and forced:
        if last.record["reason"] == "baseline":
            return None  # its prompt was the whole context, which an export never holds
        messages = [*last.prompt, message("assistant", last.record["forced"]["response"])]
    elif records:
        messages = history[:-1]  # the last observation came after the run ended
    else:
        return None
    return {
        "messages": messages,
        "metadata": {
            "session_id": session["session_id"],
            "parent_call": session.get("parent_call"),
            "depth": session["depth"],
            "model": session["models"]["root"],
            "question": session["question"],
            "follow_ups": [s.record["question"] for s in steps if s.type == "follow_up"],
            "reason": final["reason"] if final else None,
            "answer": final["answer"] if final else None,
            "iterations": len(records),
            "edited_steps": [r["iteration"] for r in records if r["edited_by_user"]],
            "forced_answer": forced,
            "compacted": any(r["type"] == "compaction" for r in trajectory.records),
            # A typed session (output=): the answer's spec and its validated value, as JSON.
            **(
                {"output": session["output"], "value": final.get("value") if final else None}
                if "output" in session
                else {}
            ),
        },
    }
