"""Judging a typed answer (``output=``): a submission checked against the session's ``OutputSpec``.

A pure function of the submission, the spec and the records: it returns a ``Verdict`` and changes
nothing; the session applies it. An answer that matches is the validated object and its text. One
that does not is not accepted: the validator's message goes back to the model as a note of the step's
observation and is recorded in the iteration (``invalid``), and once more answers failed than
``RLM.output_repairs`` allows, the run ends (reason ``invalid_answer``) with the last one kept as text.
The count is read from the records that stand for the current question, so a rewind, a replay and a
recovery count the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ._final import Submission
from ._output import Accepted, OutputSpec
from ._prompts import (
    invalid_answer_note,
    invalid_answer_reason,
    sub_output_instructions,
    sub_output_retry,
)
from ._schema import InvalidAnswer, IterationRecord
from ._secrets import Redactor

INVALID_ANSWER = "invalid_answer"  # the final reason when no answer matched


@dataclass(frozen=True)
class Verdict:
    """``value``/``text``: the validated answer (``invalid`` None); otherwise ``invalid`` is the
    record of the failure, ``note`` what the model is told, and ``ends`` whether the run ends with
    ``text`` (the candidate) and ``message`` (why)."""

    value: Any = None
    text: str | None = None
    invalid: InvalidAnswer | None = None
    note: str = ""
    ends: bool = False
    message: str = ""


def judge(
    spec: OutputSpec,
    submission: Submission,
    *,
    earlier: Iterable[IterationRecord],
    repairs: int,
    redactor: Redactor,
) -> Verdict:
    """Check ``submission`` against ``spec``; ``earlier`` are the standing iterations of the current
    question before this one, whose failures count toward ``repairs``."""
    if submission.source == "prose" or submission.raw is None:
        candidate: object = submission.value  # a text: validated as such, or as the JSON in it
    else:
        candidate = submission.raw
    checked = spec.validate(candidate, fields=submission.fields)
    if isinstance(checked, Accepted):
        return Verdict(value=checked.value, text=redactor.scrub(spec.text(checked.value)))
    failures = 1 + sum(1 for record in earlier if record.get("invalid"))
    invalid: InvalidAnswer = {
        "value": submission.value,
        "source": submission.source,
        "message": redactor.scrub(checked.message),
    }
    if failures > repairs:
        return Verdict(
            text=submission.value,
            invalid=invalid,
            ends=True,
            message=invalid_answer_reason(spec.name, repairs, invalid["message"]),
        )
    note = invalid_answer_note(spec.name, invalid["message"], attempts=repairs - failures + 1)
    return Verdict(invalid=invalid, note=note)


def typed_ending(
    spec: OutputSpec | None, answer: str | None, reason: str, value: object
) -> tuple[Any, str] | None:
    """An ending's answer given as text in a typed session, not submitted (the best-answer call at
    a limit, baseline mode, a recorded ending): its validated object and text when it matches."""
    if spec is None or value is not None or answer is None or reason == INVALID_ANSWER:
        return None
    checked = spec.validate(answer)
    if isinstance(checked, Accepted):
        return checked.value, spec.text(checked.value)
    return None


def shape_request(spec: OutputSpec | None) -> str:
    """What a call that ends a typed session without code (best answer, baseline) is asked:
    JSON of the type; nothing for an untyped session."""
    return "" if spec is None else sub_output_instructions(spec.name, spec.schema_text())


# One ask of a sub-call: the text to send and the ``response_format``; its reply, or "Error: …".
SubAsk = Callable[[str, dict[str, Any]], Awaitable[str]]
_FAILED = "Error: "


async def typed_subcall(ask: SubAsk, spec: OutputSpec, prompt: str) -> Any:
    """``llm_query(prompt, output=...)``: the prompt with the shape appended, sent with the
    endpoint's structured output (``response_format``) where the client takes it; a reply that does
    not match is asked once more with the validator's message. Returns the validated value, or an
    ``Error: …`` string (a failed call's, or the validator's once the second reply did not match)."""
    text = f"{prompt}\n\n{sub_output_instructions(spec.name, spec.schema_text())}"
    fmt = spec.response_format()
    reply = await ask(text, fmt)
    if reply.startswith(_FAILED):
        return reply
    checked = spec.parse_structured(reply)
    if isinstance(checked, Accepted):
        return checked.value
    again = await ask(sub_output_retry(text, reply, checked.message), fmt)
    if again.startswith(_FAILED):
        return again
    checked = spec.parse_structured(again)
    if isinstance(checked, Accepted):
        return checked.value
    return (
        f"{_FAILED}the sub-model's answer did not match {spec.name}, asked twice: {checked.message}"
    )
