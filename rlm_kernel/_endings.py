"""How a session ends, and how it calls its root model other than for a step: finishing (the final
record), holding on a model error, failing; the best-answer call that ends a run at a limit, the
single direct call of baseline mode, and compaction of the root's own history.

A mixin of ``Session``: these are the loop's endings and detours, kept apart from the loop itself.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._config import RLM
from ._context import ContextInfo
from ._events import Event, Finished, StateName
from ._history import History
from ._prompts import BASELINE_SYSTEM, BEST_ANSWER_PROMPT, context_text, prose_final
from ._records import Proposal, model_call, now
from ._subcalls import Budget
from ._trajectory import TrajectoryWriter
from .errors import ModelError, RLMError
from .executors import Executor, release_executor
from .models import Completion, Message, UsageSummary


class _Shared(Protocol):
    budget: Budget


class Endings:
    id: str
    config: RLM
    question: str
    context: object
    context_info: ContextInfo
    depth: int
    answer: str | None
    reason: str
    message: str
    error: RLMError | None
    history: History
    executor: Executor
    _pending: Proposal | None
    _question_start: int
    _shared: _Shared
    _started: float
    _writer: TrajectoryWriter | None

    if TYPE_CHECKING:  # provided by Session

        @property
        def usage(self) -> UsageSummary: ...

        @property
        def path(self) -> Path | None: ...

        def _emit(self, event: Event) -> None: ...

        def _set_state(self, new: StateName, reason: str = "") -> None: ...

        def _root_call(
            self, messages: list[Message], on_delta: Callable[[str], None] | None = None
        ) -> Completion: ...

        def _record(self, record: dict[str, Any]) -> None: ...

    def _finish(
        self,
        answer: str | None,
        reason: str,
        message: str,
        forced: dict[str, Any] | None = None,
        *,
        state: StateName = "done",
    ) -> None:
        self.answer, self.reason, self.message = answer, reason, message
        self._pending = None
        try:
            self._record(
                {
                    "type": "final",
                    "answer": answer,
                    "reason": reason,
                    "message": message,
                    "forced": forced,
                    "usage": self.usage.to_dict(),
                    "duration": time.monotonic() - self._started,
                    "finished": now(),
                    "error": self.error.to_dict() if self.error else None,
                }
            )
        finally:  # ended even when the record cannot be written
            self._set_state(state, reason)
            # A sandbox gives its worker back; a follow-up or rewind restores it from its last dump.
            release_executor(self.executor)
            self._emit(Finished(self.id, self.depth, answer, reason, message))
            if self._writer is not None:
                self._writer.close()

    def hold(self, exc: RLMError) -> None:
        """Pause on a model error, keeping it as the reason: fix the setting, then resume."""
        self.error, self.reason, self.message = exc, "error", str(exc)
        self._set_state("paused", type(exc).__name__)

    def fail(self, exc: Exception) -> None:
        """End in ``failed`` on an error nothing can resume from (a bug, a full disk)."""
        where = f" The trajectory so far is in {self.path}." if self.path else ""
        message = f"Stopped by an unexpected error: {exc!r}.{where}"
        with contextlib.suppress(Exception):  # writing the record may be what fails
            self._finish(None, "failed", message, state="failed")

    def _check_limits(self) -> None:
        exceeded = self._shared.budget.exceeded()
        if (
            exceeded is None
            and self.history.iterations - self._question_start >= self.config.max_iterations
        ):
            exceeded = (
                "max_iterations",
                f"{self.history.iterations} iterations done, RLM.max_iterations = {self.config.max_iterations}",
            )
        if exceeded is not None:
            self._best_answer(*exceeded)

    def _best_answer(self, reason: str, why: str) -> None:
        ask: Message = {
            "role": "user",
            "content": BEST_ANSWER_PROMPT.format(reason=why, question=self.question),
        }
        messages = [*self.history.messages, ask]
        try:
            completion = self._root_call(messages)
        except ModelError as exc:
            self.error = exc
            self._finish(
                None, reason, f"Limit reached ({why}) and the best-answer call failed: {exc}"
            )
            return
        answer = completion.text.strip()
        found = prose_final(answer)
        if found is not None and found[0] == "FINAL":
            answer = found[1]
        forced = {"response": completion.text, "model_call": model_call(completion, messages)}
        self._finish(
            answer, reason, f"Limit reached: {why}. The answer is the model's best guess.", forced
        )

    def _use_baseline(self) -> bool:
        mode = self.config.mode
        small = self.context_info.chars < self.config.baseline_threshold
        return self.depth == 0 and (mode == "baseline" or (mode == "auto" and small))

    def _baseline(self) -> None:
        """One direct call with the whole context in the prompt (mode 'baseline', or 'auto' when small)."""
        messages: list[Message] = [
            {"role": "system", "content": BASELINE_SYSTEM},
            {
                "role": "user",
                "content": f"Context:\n{context_text(self.context)}\n\nQuestion: {self.question}",
            },
        ]
        completion = self._root_call(messages)
        forced = {"response": completion.text, "model_call": model_call(completion, messages)}
        why = f"mode {self.config.mode!r}: one direct call with the whole context"
        self._finish(completion.text.strip(), "baseline", why.capitalize(), forced)

    def _maybe_compact(self) -> None:
        limit = self.config.compaction_threshold * self.config.context_window
        if self.history.chars / 4 < limit or not self.history.turns:
            return
        ask: Message = {
            "role": "user",
            "content": "Summarise your progress so far in 1-3 paragraphs: what you found, which variables "
            "hold intermediate results, and what remains to do. This summary replaces your history.",
        }
        request = [*self.history.messages, ask]
        completion = self._root_call(request)
        after = self.history.iterations
        self.history.compact(completion.text)
        self._record(
            {
                "type": "compaction",
                "after_iteration": after,
                "summary": completion.text,
                "model_call": model_call(completion, request),
            }
        )
