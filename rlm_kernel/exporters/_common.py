"""What every exporter needs from a trajectory: the message list the root model was sent each turn,
the code that actually ran, the context described without the context, and secret-free writing (the
secrets themselves are the trajectory's business: ``Trajectory.redactor``).

Each record carries the text it added to the root model's conversation, so the history an export shows
is the records folded by ``History.apply``, the session's own reducer (the tests check each prompt
against the ``request_key`` recorded with it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .._history import History
from .._schema import Record
from .._subtools import limit_note
from .._trajectory import Trajectory, dumps
from ..models import Message, ToolCall


def message(role: str, content: str) -> Message:
    return {"role": role, "content": content}


@dataclass(frozen=True)
class Step:
    """A record that stands, with the messages the root model was sent at that point.

    For an ``iteration`` that is its prompt; for a ``final`` with a forced best-answer (or baseline) call,
    that call's prompt; for a ``compaction`` or ``follow_up``, the history before it.
    """

    record: dict[str, Any]  # read by the exporters as the JSON object it is written as
    prompt: list[Message]
    after: int  # the iteration it belongs to (iterations) or follows (the other records)

    @property
    def type(self) -> str:
        return str(self.record["type"])


def walk(trajectory: Trajectory, *, compacted: bool = True) -> tuple[list[Step], list[Message]]:
    """The records that stand, in order, with their prompts; and the history after the last one.

    With ``compacted=False`` compactions are left out, so the history keeps every turn (training data).
    """
    records = trajectory.records
    history = History.from_session(trajectory.session)
    steps: list[Step] = []
    last = 0
    for record in records[1:]:
        kind = record["type"]
        if kind == "compaction" and not compacted:
            continue
        if record["type"] == "iteration":
            last = record["iteration"]
        elif record["type"] == "rewind":
            last = record["to_iteration"] - 1
            steps = [s for s in steps if s.after <= last]
        if kind == "final":
            steps.append(Step(_plain(record), _forced_prompt(record, history.messages), last))
        elif kind != "rewind":
            steps.append(Step(_plain(record), history.messages, last))
        history.apply(record)
    return steps, history.messages


def executed_blocks(record: dict[str, Any]) -> list[str]:
    """The code blocks that ran, each paired with ``record["results"]`` by position.

    An edit runs as one block in place of all the proposed ones; blocks after one that raised never ran.
    """
    blocks = [record["code"]] if record["edited_by_user"] else list(record["blocks"])
    return blocks[: len(record["results"])]


def _plain(record: Record) -> dict[str, Any]:
    return cast(dict[str, Any], record)


def _forced_prompt(final: Record, history: list[Message]) -> list[Message]:
    """What a final record's forced best-answer (or baseline) call was sent; else the history."""
    forced = final["forced"] if final["type"] == "final" else None
    if not forced:
        return history
    return [*history, *forced["messages"]] if forced["history"] else list(forced["messages"])


def children(trajectory: Trajectory) -> Iterator[Trajectory]:
    """Every child RLM's trajectory in the tree, depth first."""
    for call in trajectory.subcalls():
        child = call["child"]
        if child:
            yield Trajectory.from_dict(child)


def tool_conversation(call: dict[str, Any]) -> list[dict[str, Any]]:
    """A sub-call with tools (``tool_turns``) as the chat-completions conversation it was: the prompt,
    then per turn the assistant's ``tool_calls`` and one ``tool`` message per call (its result, or
    ``Error: …``), the turn limit's note when it cut the loop, and the final answer; what each of its
    requests sent, in the OpenAI chat (and fine-tuning) format."""
    turns = call.get("tool_turns") or []
    messages: list[dict[str, Any]] = [{"role": "user", "content": call["prompt"]}]
    for turn in turns:
        calls = turn.get("calls") or []
        if not calls:
            break
        messages.append(
            {
                "role": "assistant",
                "content": turn["text"],
                "tool_calls": [
                    ToolCall(c["id"], c["name"], c["arguments"]).to_dict() for c in calls
                ],
            }
        )
        for c in calls:
            text = c["result"] if c.get("error") is None else f"Error: {c['error']}"
            messages.append({"role": "tool", "tool_call_id": c["id"], "content": text or ""})
    if call.get("tool_limit"):
        messages.append({"role": "user", "content": limit_note(len(turns) - 1)})
    if turns and not (turns[-1].get("calls")):
        messages.append({"role": "assistant", "content": turns[-1]["text"]})
    return messages


def offered_tools(session: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chat-completions ``tools`` the session's sub-calls were offered (its ``sub_tools``)."""
    return [
        {"type": "function", "function": {k: v for k, v in tool.items() if k != "source"}}
        for tool in session.get("sub_tools") or ()
    ]


def subcall_tokens(call: dict[str, Any]) -> tuple[int, int]:
    usage = call.get("usage") or {}
    return int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))


def write_text(path: Path, text: str, trajectory: Trajectory) -> None:
    """Write ``text``, made from ``trajectory``, without its secrets (``Trajectory.redactor``)."""
    path.write_text(trajectory.redactor().scrub(text), encoding="utf-8")


def write_jsonl(path: Path, lines: Iterable[dict[str, Any]], trajectory: Trajectory) -> None:
    text = "".join(dumps(line) + "\n" for line in lines)
    write_text(path, text, trajectory)
