"""Running one step's code blocks, and judging a submission they make.

Final answers count only from executed code, and only once the model could have seen the output that
supports them (docs/architecture.md §4): a submission in the first step, or in a block that follows
blocks whose output the model has not seen yet, is refused with a note that says why. A person's edit is
never second-guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ._config import RLM
from ._final import FinalSlot, Submission, answer_submission, submit_variable
from ._namespace import Helpers
from ._prompts import NO_CODE_NOTE, prose_final
from ._secrets import Redactor
from .executors import ExecResult, Executor, bound_capture, scrub_echo


@dataclass
class Outcome:
    results: list[ExecResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    submission: Submission | None = None

    @property
    def interrupted(self) -> bool:
        return any(r.interrupted for r in self.results)


class BlockRunner:
    def __init__(
        self,
        executor: Executor,
        helpers: Helpers,
        slot: FinalSlot,
        config: RLM,
        redactor: Redactor,
    ) -> None:
        self._executor = executor
        bound_capture(executor, config.max_capture_chars)
        # The live echo (a notebook cell) is scrubbed too, not only what the model and the record get.
        scrub_echo(executor, redactor.scrub)
        self._helpers = helpers
        self._slot = slot
        self._config = config
        self._redactor = redactor

    def run(
        self,
        blocks: tuple[str, ...],
        *,
        label: str,
        iteration: int,
        response: str,
        edited: bool,
    ) -> Outcome:
        ns = self._executor.namespace
        out = Outcome()
        self._slot.clear()
        seen_output = False
        for index, block in enumerate(blocks):
            result = self._executor.run(
                block, label=f"{label}.{index + 1}", timeout=self._config.iteration_timeout
            )
            _scrub(result, self._redactor.scrub)
            out.results.append(result)
            if result.interrupted:
                return out
            out.notes.extend(result.notes)
            replaced = self._helpers.restore(ns)
            if replaced:
                out.notes.append(
                    f"{', '.join(replaced)} {'is a' if len(replaced) == 1 else 'are'} reserved "
                    "helper name(s); the original was put back. Use other names for your variables."
                )
            got = self._slot.submission or answer_submission(ns)
            if got is not None and out.submission is None:
                refusal = None if edited else self._refusal(iteration, index, seen_output)
                if refusal:
                    out.notes.append(refusal)
                    self._slot.clear()
                    self._helpers.reset_answer(ns)
                else:
                    out.submission = replace(got, value=self._redactor.scrub(got.value))
            seen_output = seen_output or bool(result.stdout or result.value or result.error)
            if result.error and index + 1 < len(blocks):
                skipped = len(blocks) - index - 1
                out.notes.append(
                    f"Block {index + 1} raised an error, so the {skipped} block(s) after it did not run."
                )
                break
        if not blocks:
            got = self._prose_submission(iteration, response, out.notes)
            if got is not None:
                out.submission = replace(got, value=self._redactor.scrub(got.value))
        return out

    def _refusal(self, iteration: int, block: int, seen_output: bool) -> str | None:
        if not self._config.refuse_early_final:
            return None
        if iteration == 1:
            return (
                "A final answer in the first step, before you have seen any output, is not accepted "
                "(RLM.refuse_early_final). Look at the output first, then submit."
            )
        if block > 0 and seen_output:
            return (
                f"You submitted in block {block + 1}, after earlier blocks of the same response printed "
                "output you had not seen yet, so the submission was not accepted. Read the output above; "
                "if it supports your answer, submit it again."
            )
        return None

    def _prose_submission(
        self, iteration: int, response: str, notes: list[str]
    ) -> Submission | None:
        """A paper-style ``FINAL(…)`` / ``FINAL_VAR(…)`` / ``SUBMIT(…)`` line in a response that has
        no code."""
        found = prose_final(response)
        if found is None:
            notes.append(NO_CODE_NOTE)
            return None
        refusal = self._refusal(iteration, 0, False)
        if refusal:
            notes.append(refusal)
            return None
        kind, argument = found
        if kind != "FINAL_VAR":
            return Submission(argument, "prose", argument)
        message = submit_variable(self._slot, self._executor.namespace, argument, "prose")
        if self._slot.submission is None:
            notes.append(message)
        return self._slot.submission


def _scrub(result: ExecResult, scrub: Callable[[str], str]) -> None:
    """Secrets the code printed never reach the model, the trajectory or the screen's record."""
    result.stdout, result.stderr = scrub(result.stdout), scrub(result.stderr)
    if result.error:
        result.error = scrub(result.error)
    if result.value:
        result.value = scrub(result.value)
