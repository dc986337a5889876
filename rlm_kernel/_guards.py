"""Guards that keep a weak model from wasting its turns: a loop guard and a nudge for prose answers.

Small models often find the answer in their first steps, then run the same code again and again
until the iteration limit; or they state the answer in prose, which submits nothing. The guards see
that from the trajectory's records alone (pure functions: the session asks, applies what they say and
records a ``guard`` record), so a rewind, a follow-up or a recovery re-enactment judges the same way.

- **Loop guard** (``RLM.loop_guard``, default 2). A step *repeats* an earlier step of the same question
  when its code is the same once normalised (comments and layout do not count) or when it printed the
  same non-empty output. Each repeat counts; the first ones run with a note that says which step they
  repeat and what to do instead; the repeat that reaches the limit ends the loop early with the
  best-answer call (reason ``loop``). A code repeat is caught before it runs, so it is not run.
- **Prose nudge** (``RLM.prose_nudge``). A response that states an answer in prose but submits nothing
  (no code, or code that only prints literals) gets the exact ``FINAL(...)`` line to use, once per
  question, and never before the model has seen output of its own code (a guess is not nudged).

A person's edit is never judged (what a person runs is deliberate), but the model repeating a
person's step is a repeat like any other.
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

from . import _astparse, _logging
from ._prompts import (
    UNPARSABLE,
    loop_stop_reason,
    parse_code,
    prose_nudge_note,
    repeat_note,
)
from ._schema import GuardRecord, IterationRecord, ModelCall, Record, guard_record, iterations

Rule = Literal["repeated_code", "repeated_output"]


@dataclass(frozen=True)
class Repeat:
    """A step that repeats ``of`` (an earlier iteration) by ``rule``; it is repeat number ``count``."""

    of: int
    rule: Rule
    count: int


def normalised(code: str) -> str:
    """The code as Python reads it: comments, blank lines, layout and quote style do not count."""
    try:
        return ast.unparse(_astparse.parse(code))
    except UNPARSABLE:  # unparse recurses too: code nested deeply enough to parse may not unparse
        return " ".join(code.split())


def question_records(records: Sequence[Record]) -> list[Record]:
    """The records of the current question: those after the last follow-up (a new question may
    rightly run its exploration again)."""
    start = 0
    for index, record in enumerate(records):
        if record["type"] == "follow_up":
            start = index + 1
    return list(records[start:])


def _standing(records: Sequence[Record]) -> list[IterationRecord]:
    """The standing steps of the current question."""
    return list(iterations(question_records(records)))


def _repeat_of(
    code: str, output: str | None, earlier: Sequence[IterationRecord]
) -> tuple[int, Rule] | None:
    key = normalised(code)
    for step in earlier:
        if normalised(step["code"]) == key:
            return step["iteration"], "repeated_code"
    if output is not None and output.strip():
        for step in earlier:
            if step["output"].strip() == output.strip():
                return step["iteration"], "repeated_output"
    return None


def repeats_so_far(steps: Sequence[IterationRecord]) -> int:
    """How many of the model's ``steps`` repeat an earlier one (a person's step may be repeated by
    the model, which counts; a person's own step never counts)."""
    return sum(
        1
        for i, step in enumerate(steps)
        if not step["edited_by_user"] and _repeat_of(step["code"], step["output"], steps[:i])
    )


def repeat_before_run(records: Sequence[Record], code: str, limit: int) -> Repeat | None:
    """The proposed ``code`` repeats an earlier step, and that repeat reaches the limit: not run."""
    if limit <= 0 or not code.strip():
        return None
    steps = _standing(records)
    found = _repeat_of(code, None, steps)
    count = repeats_so_far(steps) + 1
    if found is None or count < limit:
        return None
    return Repeat(found[0], found[1], count)


def repeat_after_run(
    records: Sequence[Record], code: str, output: str, limit: int
) -> Repeat | None:
    """The step that just ran (not yet in ``records``) repeats an earlier one."""
    if limit <= 0 or not code.strip():
        return None
    steps = _standing(records)
    found = _repeat_of(code, output, steps)
    if found is None:
        return None
    return Repeat(found[0], found[1], repeats_so_far(steps) + 1)


def repeat_guard(iteration: int, repeat: Repeat, limit: int) -> GuardRecord:
    """The record of a repeat that ran: a warning, or the early stop once it reaches the limit."""
    stopped = repeat.count >= limit
    return guard_record(
        iteration,
        rule=repeat.rule,
        action="stopped" if stopped else "warned",
        repeats=repeat.of,
        note=loop_stop_reason(iteration, repeat.of, repeat.rule)
        if stopped
        else repeat_note(iteration, repeat.of, repeat.rule, left=limit - repeat.count),
    )


def stop_before_run(
    records: Sequence[Record],
    *,
    iteration: int,
    code: str,
    response: str,
    call: ModelCall,
    limit: int,
) -> GuardRecord | None:
    """The record that ends the loop when the proposed ``code`` repeats an earlier step once too
    often (it is not run), else None."""
    repeat = repeat_before_run(records, code, limit)
    if repeat is None:
        return None
    return _logged(
        guard_record(
            iteration,
            rule=repeat.rule,
            action="stopped",
            repeats=repeat.of,
            note=loop_stop_reason(iteration, repeat.of, repeat.rule),
            response=response,
            call=call,
        )
    )


def judge_after_run(
    records: Sequence[Record],
    *,
    iteration: int,
    response: str,
    blocks: Sequence[str],
    output: str,
    limit: int,
    prose_nudge: bool,
) -> GuardRecord | None:
    """What a guard says of a step that ran and submitted nothing: a repeat (a warning, or the
    early stop at the limit), else a prose nudge when ``prose_nudge`` is on, else None."""
    repeat = repeat_after_run(records, "\n\n".join(blocks), output, limit)
    if repeat is not None:
        return _logged(repeat_guard(iteration, repeat, limit))
    if prose_nudge:
        nudge = prose_guard(records, iteration, response, blocks)
        return None if nudge is None else _logged(nudge)
    return None


def _logged(record: GuardRecord) -> GuardRecord:
    """``record``, said on ``rlm_kernel.guards`` in the words a notebook shows (no model text)."""
    _logging.emit("rlm_kernel.guards", logging.INFO, guard_line(record))
    return record


# --- answers stated in prose --------------------------------------------------------------------------

# "The answer is X", "Final answer: X", "Answer: **X**".
_ANSWER_IS = re.compile(
    r"\b(?:final\s+answer|answer)\b\s*(?:to\s+the\s+question\s*)?(?:is|:|=)\s*(.+)", re.IGNORECASE
)
# "… the code for vault 7 is X." on the last line of a short response.
_X_IS = re.compile(r"\b(?:is|are|was|equals)\s+(.+)$", re.IGNORECASE)
_MAX_ANSWER = 200
_SHORT = 400  # a statement, not a plan: longer prose is not read as one


def stated_answer(response: str, blocks: Sequence[str]) -> str | None:
    """The answer a response states in prose without submitting it, if it plainly states one."""
    if blocks and not all(_only_prints(block) for block in blocks):
        return None
    text = "\n".join(_printed(blocks)) if blocks else _prose(response)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    for line in lines:
        match = _ANSWER_IS.search(line)
        if match:
            return _clean(match.group(1))
    if len(lines) <= 3 and len(text) <= _SHORT:
        match = _X_IS.search(lines[-1])
        if match:
            return _clean(match.group(1))
    return None


def prose_guard(
    records: Sequence[Record], iteration: int, response: str, blocks: Sequence[str]
) -> GuardRecord | None:
    """A nudge for a response that states an answer but submits nothing: once per question, and
    only once the model has seen output of its own code in this question."""
    if not _standing(records):
        return None  # nothing seen yet: a stated answer would be a guess
    if any(r["type"] == "guard" and r["rule"] == "prose_answer" for r in question_records(records)):
        return None
    answer = stated_answer(response, blocks)
    if answer is None:
        return None
    return guard_record(
        iteration,
        rule="prose_answer",
        action="nudged",
        repeats=None,
        note=prose_nudge_note(answer, printed=bool(blocks)),
    )


def _prose(response: str) -> str:
    """The response without its fenced parts."""
    return re.sub(r"```.*?(```|$)", "", response, flags=re.DOTALL)


def _only_prints(block: str) -> bool:
    tree = parse_code(block)
    if tree is None:
        return False
    return bool(tree.body) and all(_literal_print(node) for node in tree.body)


def _literal_print(node: ast.stmt) -> bool:
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    call = node.value
    return (
        isinstance(call.func, ast.Name)
        and call.func.id == "print"
        and not call.keywords
        and all(isinstance(arg, ast.Constant) for arg in call.args)
    )


def _printed(blocks: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        for node in _astparse.parse(block).body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                args = node.value.args
                lines.append(" ".join(str(a.value) for a in args if isinstance(a, ast.Constant)))
    return lines


def _clean(text: str) -> str | None:
    answer = text.strip().strip("*_`\"' ").rstrip(".").strip("*_`\"' ")
    if not answer or len(answer) > _MAX_ANSWER:
        return None
    return answer


# --- how front ends show an intervention (one wording for the cell badge, the inline block, the CLI
# line and the exported notebook) -------------------------------------------------------------------


def guard_line(record: GuardRecord) -> str:
    """One line for people: what the guard saw and what it did."""
    n, of = record["iteration"], record["repeats"]
    if record["rule"] == "prose_answer":
        return (
            f"✎ Prose answer: step {n} stated an answer without submitting it; the model was shown "
            "the FINAL(...) line to use."
        )
    what = "the same code as" if record["rule"] == "repeated_code" else "the same output as"
    if record["action"] == "stopped":
        ran = " (not run)" if record["model_call"] is not None else ""
        return (
            f"⏹ Loop guard: step {n}{ran} repeated step {of} again ({what} it); the run was ended "
            "early and the model asked for its best answer."
        )
    return f"⟳ Loop guard: step {n} has {what} step {of}; the model was told so."


def guard_badge(record: GuardRecord) -> str:
    """A few words for a cell's badge."""
    if record["rule"] == "prose_answer":
        return "nudged to submit"
    if record["action"] == "stopped":
        return "loop stopped"
    return f"repeats step {record['repeats']}"


def guard_at(records: Sequence[Record], iteration: int) -> GuardRecord | None:
    """The guard record of step ``iteration`` among the latest records (after its step, if it ran)."""
    for record in reversed(records):
        if record["type"] == "guard" and record["iteration"] == iteration:
            return cast(GuardRecord, record)
        if record["type"] == "iteration" and record["iteration"] < iteration:
            break
    return None
