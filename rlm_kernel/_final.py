"""Termination: how a final answer is submitted, and only from executed code.

``FINAL(value)``, ``FINAL_VAR("name")``, DSPy's ``SUBMIT(...)`` and ``answer["ready"] = True`` all land
in one ``FinalSlot``. The session decides afterwards whether the submission stands (``_session``
refuses one made before the model could have seen its code's output).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from . import _stdjson as json


@dataclass
class Submission:
    """``value`` is the answer as text; ``raw`` the object submitted and ``fields`` the named fields
    of ``SUBMIT(name=..., ...)``, which a typed answer (``output=``, ``_output``) validates."""

    value: str
    source: str  # "FINAL", "FINAL_VAR", "SUBMIT", "answer" or "prose"
    raw: object = None
    fields: dict[str, object] | None = None


class FinalSlot:
    def __init__(self) -> None:
        self.submission: Submission | None = None

    def submit(self, value: object, source: str, fields: dict[str, object] | None = None) -> None:
        if isinstance(value, dict) and "content" in value and set(value) <= {"content", "ready"}:
            # A model mixing up the two ways to submit, FINAL(answer): the content is the answer.
            value = value["content"]
        text = value if isinstance(value, str) else str(value)
        self.submission = Submission(text, source, value, fields)

    def clear(self) -> None:
        self.submission = None


def new_answer() -> dict[str, Any]:
    return {"content": "", "ready": False}


def make_final(slot: FinalSlot) -> Any:
    def FINAL(value: object) -> str:
        """Submit ``value`` as the final answer."""
        slot.submit(value, "FINAL")
        return "Final answer submitted."

    return FINAL


def make_submit(slot: FinalSlot) -> Any:
    def SUBMIT(*values: object, **fields: object) -> str:
        """Submit the final answer: ``SUBMIT(value)``, ``SUBMIT(answer=value)``, or several named
        fields (``SUBMIT(name=..., year=...)``), submitted together as one JSON object."""
        if len(values) + len(fields) == 0 or (values and fields) or len(values) > 1:
            message = (
                "SUBMIT takes one answer, SUBMIT(value), or named fields, SUBMIT(name=..., "
                "year=...); nothing was submitted."
            )
            print(message)
            return message
        if values:
            value: object = values[0]
        elif len(fields) == 1:
            value = next(iter(fields.values()))
        else:
            value = json.dumps(fields, ensure_ascii=False, default=str)
        slot.submit(value, "SUBMIT", dict(fields) if fields else None)
        return "Final answer submitted."

    return SUBMIT


def make_final_var(slot: FinalSlot, namespace: MutableMapping[str, Any]) -> Any:
    def FINAL_VAR(name: object) -> str:
        """Submit the variable called ``name`` (a string) as the final answer."""
        return submit_variable(slot, namespace, name, "FINAL_VAR")

    return FINAL_VAR


def submit_variable(
    slot: FinalSlot, namespace: MutableMapping[str, Any], name: object, source: str
) -> str:
    if not isinstance(name, str):
        # Models often pass the value itself; accept it rather than waste a turn.
        slot.submit(name, source)
        return "Final answer submitted."
    key = name.strip().strip("'\"")
    if key not in namespace:
        message = (
            f"Variable {key!r} not found, so nothing was submitted. Create it in a step first, "
            "then call FINAL_VAR with its name."
        )
        print(message)
        return message
    slot.submit(namespace[key], source)
    return "Final answer submitted."


def answer_submission(namespace: MutableMapping[str, Any]) -> Submission | None:
    """The ``answer`` dict's submission, even when the code rebound ``answer`` to a plain dict."""
    answer = namespace.get("answer")
    if isinstance(answer, dict) and answer.get("ready"):
        content = answer.get("content", "")
        return Submission(content if isinstance(content, str) else str(content), "answer", content)
    return None
