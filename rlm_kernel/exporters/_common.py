"""What every exporter needs from a trajectory: the message list the root model was sent each turn,
the code that actually ran, the context described without the context, and secret-free writing (the
secrets themselves are the trajectory's business: ``Trajectory.redactor``).

The trajectory stores each iteration's raw response and observation, not the history the model saw, so
the history is rebuilt here, once, for all formats (the rebuild is checked against each iteration's
recorded ``request_key`` by the tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._prompts import BASELINE_SYSTEM, BEST_ANSWER_PROMPT
from .._trajectory import Trajectory, dumps
from ..models import Message

# Messages the session adds to the history without recording their text (only their inputs), restated
# from rlm_kernel._session; the tests rebuild every prompt and compare it with the recorded request_key.
COMPACTED = (
    "Your history up to iteration {after} was compacted into the summary above; the REPL still holds "
    "every variable (SHOW_VARS() lists them). Continue."
)
FOLLOW_UP = (
    "Follow-up question: {question}\nThe REPL still holds every variable you made (SHOW_VARS() lists "
    "them). Continue with code."
)
# How the session words the reason of a forced best-answer call in the final record's message.
_LIMIT_PREFIX, _LIMIT_SUFFIX = "Limit reached: ", ". The answer is the model's best guess."


def message(role: str, content: str) -> Message:
    return {"role": role, "content": content}


@dataclass(frozen=True)
class Step:
    """A record that stands, with the messages the root model was sent at that point.

    For an ``iteration`` that is its prompt; for a ``final`` with a forced best-answer (or baseline) call,
    that call's prompt; for a ``compaction`` or ``follow_up``, the history before it.
    """

    record: dict[str, Any]
    prompt: list[Message]
    after: int  # the iteration it belongs to (iterations) or follows (the other records)

    @property
    def type(self) -> str:
        return str(self.record["type"])


def walk(trajectory: Trajectory, *, compacted: bool = True) -> tuple[list[Step], list[Message]]:
    """The records that stand, in order, with their prompts; and the history after the last one.

    This replays how the session builds its history: iterations append an assistant turn and an
    observation, a rewind drops the turns and records from its iteration on, a compaction replaces the
    history with the summary, a follow-up extends the last observation (or adds a message). With
    ``compacted=False`` compactions are ignored, so the history keeps every turn (training data).
    """
    session = trajectory.session
    preamble = [message(m["role"], m["content"]) for m in session["messages"]]
    first_two = preamble[:2]
    turns: list[tuple[int, Message, Message]] = []
    steps: list[Step] = []
    question, answer, last = str(session["question"]), None, 0

    def history() -> list[Message]:
        return [*preamble, *(m for _, a, o in turns for m in (a, o))]

    for record in trajectory.records:
        kind = record["type"]
        if kind == "iteration":
            last = record["iteration"]
            steps.append(Step(record, history(), last))
            observation = message("user", record["observation"])
            turns.append((last, message("assistant", assistant_turn(record)), observation))
        elif kind == "rewind":
            last = record["to_iteration"] - 1
            turns = [t for t in turns if t[0] <= last]
            steps = [s for s in steps if s.after <= last]
            answer = None
        elif kind == "compaction" and compacted:
            steps.append(Step(record, history(), last))
            summary = message("assistant", record["summary"])
            note = message("user", COMPACTED.format(after=record["after_iteration"]))
            preamble = [*first_two, summary, note]
            turns = []
        elif kind == "follow_up":
            steps.append(Step(record, history(), last))
            question = str(record["question"])
            text = FOLLOW_UP.format(question=question)
            if answer is not None:
                text = f"Your previous answer was: {answer!r}\n\n{text}"
            if turns:
                n, assistant, observed = turns[-1]
                turns[-1] = (n, assistant, message("user", f"{observed['content']}\n\n{text}"))
            else:
                preamble.append(message("user", text))
            answer = None
        elif kind == "final":
            answer = record["answer"]
            prompt = _forced_prompt(record, history(), question, session)
            steps.append(Step(record, prompt if prompt is not None else history(), last))
    return steps, history()


def assistant_turn(record: dict[str, Any]) -> str:
    """The assistant message an iteration left in the history: a person's edit replaces the response."""
    if record["edited_by_user"]:
        return f"```repl\n{record['code']}\n```"
    return str(record["response"])


def executed_blocks(record: dict[str, Any]) -> list[str]:
    """The code blocks that ran, each paired with ``record["results"]`` by position.

    An edit runs as one block in place of all the proposed ones; blocks after one that raised never ran.
    """
    blocks = [record["code"]] if record["edited_by_user"] else list(record["blocks"])
    return blocks[: len(record["results"])]


def _forced_prompt(
    final: dict[str, Any], history: list[Message], question: str, session: dict[str, Any]
) -> list[Message] | None:
    """What a final record's forced best-answer (or baseline) call was sent; None without one."""
    if not final.get("forced"):
        return None
    if final["reason"] == "baseline":
        # The baseline call carried the whole context; an export never does.
        omitted = f"[the context P is not exported: {context_summary(session)}]"
        return [
            message("system", BASELINE_SYSTEM),
            message("user", f"Context:\n{omitted}\n\nQuestion: {question}"),
        ]
    text = str(final.get("message", ""))
    limit = text.startswith(_LIMIT_PREFIX) and text.endswith(_LIMIT_SUFFIX)
    why = text[len(_LIMIT_PREFIX) : -len(_LIMIT_SUFFIX)] if limit else final["reason"]
    ask = BEST_ANSWER_PROMPT.format(reason=why, question=question)
    return [*history, message("user", ask)]


def context_summary(session: dict[str, Any]) -> str:
    """The context's fingerprint in words: type, size, documents and a hash prefix, never its text."""
    info = session["context"]
    docs = int(info["docs"])
    return (
        f"{info['type']}, {int(info['chars']):,} characters, {docs:,} document"
        f"{'' if docs == 1 else 's'}, sha256 {str(info['sha256'])[:12]}"
    )


def children(trajectory: Trajectory) -> Iterator[Trajectory]:
    """Every child RLM's trajectory in the tree, depth first."""
    for call in trajectory.subcalls():
        if call.get("child"):
            yield Trajectory.from_dict(call["child"])


def subcall_tokens(call: dict[str, Any]) -> tuple[int, int]:
    usage = call.get("usage") or {}
    return int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))


def write_text(path: Path, text: str, trajectory: Trajectory) -> None:
    """Write ``text``, made from ``trajectory``, without its secrets (``Trajectory.redactor``)."""
    path.write_text(trajectory.redactor().scrub(text), encoding="utf-8")


def write_jsonl(path: Path, lines: Iterable[dict[str, Any]], trajectory: Trajectory) -> None:
    text = "".join(dumps(line) + "\n" for line in lines)
    write_text(path, text, trajectory)
