"""What a session hands out (a proposed step, a result), and how a step's output and an edit are
written into its record (the record shapes themselves: ``_schema``)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _rich
from ._config import RLM
from ._prompts import REPLY_CUT, observation_message, truncate
from ._schema import InvalidAnswer, IterationRecord, SubcallRecord, iteration_record, model_call
from ._secrets import Redactor
from ._trajectory import Trajectory
from .errors import RLMError
from .executors import ExecResult
from .models import Completion, UsageSummary

if TYPE_CHECKING:
    from ._iteration import Outcome


@dataclass(frozen=True)
class Proposal:
    """The root model's next step, not yet executed."""

    iteration: int
    response: str
    blocks: tuple[str, ...]
    completion: Completion | None
    request_key: str | None

    @property
    def code(self) -> str:
        """The proposed code blocks, joined as one cell's code."""
        return "\n\n".join(self.blocks)

    @classmethod
    def recorded(cls, record: IterationRecord) -> Proposal:
        """A recorded step proposed again (a rewind), without its completion object."""
        return cls(
            record["iteration"],
            record["response"],
            tuple(record["blocks"]),
            None,
            record["model_call"]["request_key"],
        )


@dataclass
class Result:
    """How a run ended: the answer (None without one), why (``reason``: final, stopped, a limit,
    paused, error, invalid_answer…), a message for people, the trajectory, the usage, the error if one
    ended it, and where the trajectory was autosaved. With ``output=``, ``value`` is the validated
    answer (a model instance, an ``int``…; None when none matched) and ``answer`` its text."""

    answer: str | None
    reason: str
    message: str
    trajectory: Trajectory
    usage: UsageSummary
    error: RLMError | None = None
    path: Path | None = None
    value: Any = None

    @property
    def ok(self) -> bool:
        """Whether the run ended with an answer the model submitted (``reason == "final"``)."""
        return self.reason == "final"

    # Rich displays (``_display``, reached through ``_rich``): answer, reason, steps, tokens, cost,
    # time, the timeline and the record's file and commands.
    def __repr__(self) -> str:
        return _rich.render(self, "text/plain") or f"<Result {self.reason}>"

    def _repr_html_(self) -> str | None:
        return _rich.render(self, "text/html")

    def _repr_markdown_(self) -> str | None:
        return _rich.render(self, "text/markdown")


def render_output(results: list[ExecResult], blocks: int) -> str:
    """What the code printed, raised and evaluated to, block by block, as the model reads it."""
    parts: list[str] = []
    for index, result in enumerate(results):
        pieces = [result.stdout.rstrip("\n"), result.stderr.rstrip("\n"), result.error or ""]
        if result.value is not None:
            pieces.append(f"Out: {result.value}")
        text = "\n".join(p for p in pieces if p)
        parts.append(f"[block {index + 1}]\n{text}" if blocks > 1 else text)
    return "\n\n".join(p for p in parts if p.strip())


def unified_diff(before: str, after: str) -> str:
    """A person's edit of a step, as the record keeps it: the proposed code against what ran."""
    return "".join(
        difflib.unified_diff(
            before.splitlines(True), after.splitlines(True), "proposed", "executed"
        )
    )


EDITED_NOTE = "A person edited your code for this step before it ran; the code above is what ran."


def step_record(
    proposal: Proposal,
    blocks: tuple[str, ...],
    edited: bool,
    outcome: Outcome,
    *,
    question: str,
    config: RLM,
    root_model: str,
    redactor: Redactor,
    subcalls: list[SubcallRecord],
    ran_for: float,
    invalid: InvalidAnswer | None = None,
) -> IterationRecord:
    """The record of a step that ran ``blocks`` (a person's edit when ``edited``): its output as the
    model reads it, and the turn it adds to the history."""
    notes = [EDITED_NOTE, *outcome.notes] if edited else list(outcome.notes)
    output = truncate(render_output(outcome.results, len(blocks)), config.max_output_chars)
    observation = observation_message(
        output,
        question=question,
        turn=proposal.iteration + 1,
        max_iterations=config.max_iterations,
        notes=notes,
    )
    executed = "\n\n".join(blocks)
    # A person's edit is shown to the model as its own turn; a key typed into it must not travel.
    assistant = proposal.response if not edited else redactor.scrub(f"```repl\n{executed}\n```")
    if config.max_reply_chars is not None:  # the turn is re-sent with every later prompt
        assistant = truncate(assistant, config.max_reply_chars, REPLY_CUT)
    completion, submission = proposal.completion, outcome.submission
    return iteration_record(
        proposal.iteration,
        call=model_call(completion, proposal.request_key, root_model),
        response=proposal.response,
        blocks=list(proposal.blocks),
        code=executed,
        edited=edited,
        diff=unified_diff(proposal.code, executed) if edited else None,
        results=[r.to_dict() for r in outcome.results],
        output=output,
        notes=notes,
        assistant=assistant,
        observation=observation,
        subcalls=subcalls,
        final=None
        if submission is None
        else {"value": submission.value, "source": submission.source},
        duration=ran_for + (completion.latency if completion else 0.0),
        invalid=invalid,
    )
