"""What a session makes of a step: the guards' verdicts, a typed answer's, and the step's record.

Before a step runs, the loop guard may refuse it (``StepReview.before``). After its blocks ran
(``StepReview.after``), a typed answer is validated (``_answers.judge``; one that does not match is
withdrawn and the model is told why in the step's observation), the loop guard and the prose nudge
judge the step from the records (``_guards``), and the ``iteration`` record is built with the
step's sub-calls (``_records.step_record``). The result says how the step ends the question by
itself, if it does; the session applies it (records, events, endings, states), as it applies every
ending.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ._answers import INVALID_ANSWER, Verdict, judge
from ._config import RLM
from ._endings import Ending
from ._final import FinalSlot
from ._guards import judge_after_run, stop_before_run
from ._iteration import Outcome
from ._namespace import Helpers
from ._output import OutputSpec
from ._records import Proposal, render_output, step_record
from ._schema import GuardRecord, IterationRecord, model_call
from ._secrets import Redactor
from ._subcalls import SubcallEngine
from ._trajectory import Trajectory
from .executors import Executor


@dataclass
class Reviewed:
    """A step that ran: its ``record``, the ``guard`` record judging it (None when no guard spoke)
    and the typed answer's ``verdict`` (None without ``output=`` or a submission)."""

    record: IterationRecord
    guard: GuardRecord | None
    verdict: Verdict | None
    outcome: Outcome

    @property
    def ending(self) -> Ending | None:
        """How the step ends the question by itself: a submission that stands, or an invalid typed
        answer once more of them stand than may be repaired."""
        submission, verdict = self.outcome.submission, self.verdict
        if submission is not None:
            text, value = (verdict.text, verdict.value) if verdict else (submission.value, None)
            return Ending(text, "final", f"Answered by {submission.source}", value=value)
        if verdict is not None and verdict.ends:
            return Ending(verdict.text, INVALID_ANSWER, verdict.message)
        return None

    @property
    def stopped(self) -> bool:
        """Whether the loop guard ends the run after this step."""
        return self.ending is None and self.guard is not None and self.guard["action"] == "stopped"


class StepReview:
    """Judges and records the steps of one session (see the module docstring)."""

    def __init__(
        self,
        config: RLM,
        output: OutputSpec | None,
        root_model: str,
        redactor: Redactor,
        engine: SubcallEngine,
        slot: FinalSlot,
        helpers: Helpers,
        executor: Executor,
    ) -> None:
        self.config, self.output, self.root_model, self.redactor = (
            config,
            output,
            root_model,
            redactor,
        )
        self.engine, self.slot, self.helpers, self.executor = engine, slot, helpers, executor

    def before(self, proposal: Proposal, trajectory: Trajectory) -> GuardRecord | None:
        """The loop guard's record when ``proposal`` repeats an earlier step once too often (then
        it is not run and the run ends)."""
        return stop_before_run(
            trajectory.records,
            iteration=proposal.iteration,
            code=proposal.code,
            response=proposal.response,
            call=model_call(proposal.completion, proposal.request_key, self.root_model),
            limit=self.config.loop_guard,
        )

    def after(
        self,
        proposal: Proposal,
        blocks: tuple[str, ...],
        edited: bool,
        outcome: Outcome,
        started: float,
        *,
        trajectory: Trajectory,
        question: str,
        question_start: int,
    ) -> Reviewed:
        """The step that ran ``blocks`` (``edited``: a person's) with ``outcome``, judged and
        recorded; ``question_start`` is where the current question's iterations begin."""
        verdict = self._judge_answer(outcome, trajectory, question_start)
        invalid = verdict.invalid if verdict else None
        guard = None if edited or invalid else self._guard(proposal, blocks, outcome, trajectory)
        if guard is not None and guard["action"] != "stopped":
            outcome.notes.append(guard["note"])
        record = step_record(
            proposal,
            blocks,
            edited,
            outcome,
            question=question,
            config=self.config,
            root_model=self.root_model,
            redactor=self.redactor,
            subcalls=self.engine.take_records(),
            ran_for=time.perf_counter() - started,
            invalid=invalid,
        )
        return Reviewed(record, guard, verdict, outcome)

    def _judge_answer(
        self, outcome: Outcome, trajectory: Trajectory, question_start: int
    ) -> Verdict | None:
        """A typed answer is validated (``_answers.judge``); one that does not match is withdrawn,
        and the model is told why in the step's observation."""
        if self.output is None or outcome.submission is None:
            return None
        verdict = judge(
            self.output,
            outcome.submission,
            earlier=trajectory.iterations[question_start:],
            repairs=self.config.output_repairs,
            redactor=self.redactor,
        )
        if verdict.invalid is not None:
            outcome.submission = None
            if verdict.note:
                outcome.notes.append(verdict.note)
            self.slot.clear()
            self.helpers.reset_answer(self.executor.namespace)
        return verdict

    def _guard(
        self, proposal: Proposal, blocks: tuple[str, ...], outcome: Outcome, trajectory: Trajectory
    ) -> GuardRecord | None:
        if outcome.submission is not None:
            return None
        return judge_after_run(
            trajectory.records,
            iteration=proposal.iteration,
            response=proposal.response,
            blocks=blocks,
            output=render_output(outcome.results, len(blocks)),
            limit=self.config.loop_guard,
            prose_nudge=self.config.prose_nudge,
        )
