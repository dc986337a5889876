"""How the current question's ending is written, and the answer the session stands with after it.

An ``Ending`` (``_endings``; a step's ``Reviewed.ending``) says how the question ended. In a typed
session an answer given as text rather than submitted (the best-answer call, baseline mode, a
recorded ending) is typed when it matches (``settled``); the ``final`` record holds the ending as it
came, with the typed value as JSON data (``closing_record``). ``Session._end`` sets its answer from
the first, writes the second and then changes state.
"""

from __future__ import annotations

from typing import Any

from ._answers import typed_ending
from ._endings import Ending
from ._output import OutputSpec
from ._schema import FinalRecord, final_record
from .errors import RLMError
from .models import UsageSummary


def settled(output: OutputSpec | None, ending: Ending) -> tuple[str | None, Any]:
    """The answer and the value (a typed session's validated object) that ``ending`` leaves."""
    typed = typed_ending(output, ending.answer, ending.reason, ending.value)
    if typed is None:
        return ending.answer, ending.value
    value, answer = typed
    return answer, value


def closing_record(
    ending: Ending,
    output: OutputSpec | None,
    value: Any,
    *,
    usage: UsageSummary,
    duration: float,
    error: RLMError | None,
) -> FinalRecord:
    """The ``final`` record of ``ending``, after ``duration`` seconds, with the tree's ``usage``."""
    return final_record(
        ending.answer,
        ending.reason,
        ending.message,
        ending.forced,
        usage=usage.to_dict(),
        duration=duration,
        error=error.to_dict() if error else None,
        typed=output is not None,
        # Scrubbed where it is written, as every record is.
        value=None if output is None else output.to_jsonable(value),
    )
