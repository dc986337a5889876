"""How a run ends other than by a submission, and the root calls that are not steps: the limits, the
best-answer call that ends a run at one, the single direct call of baseline mode, and compaction of
the root's own history.

Functions that return data (an ``Ending``, a compaction record): they make the model call they need
through the ``RootCall`` they are given and change nothing; the session applies what they return and
keeps every state transition to itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._config import RLM
from ._context import ContextInfo
from ._history import History
from ._prompts import (
    BASELINE_SYSTEM,
    BEST_ANSWER_PROMPT,
    COMPACTION_PROMPT,
    compacted_note,
    context_text,
    prose_final,
)
from ._schema import (
    CompactionRecord,
    ForcedCall,
    SessionRecord,
    compaction_record,
    forced_call,
    model_call,
    omitted_context,
)
from ._subcalls import Budget
from .errors import ModelError
from .models import Completion, Message

# A root-model call the session makes and accounts for: messages in, completion out.
RootCall = Callable[[list[Message]], Completion]


@dataclass(frozen=True)
class Ending:
    """How the current question ends: what ``Session._end`` records and reports."""

    answer: str | None
    reason: str
    message: str
    forced: ForcedCall | None = None
    error: ModelError | None = None
    value: object = None  # a typed answer's validated object (``output=``)


def exceeded_limit(
    budget: Budget, history: History, question_start: int, config: RLM
) -> tuple[str, str] | None:
    """The limit a run has reached, as (reason, why in words), or None."""
    exceeded = budget.exceeded()
    if exceeded is None and history.iterations - question_start >= config.max_iterations:
        exceeded = (
            "max_iterations",
            f"{history.iterations} iterations done, RLM.max_iterations = {config.max_iterations}",
        )
    return exceeded


def best_answer(
    call: RootCall,
    history: History,
    question: str,
    reason: str,
    why: str,
    *,
    what: str = "Limit reached",
    shape: str = "",
) -> Ending:
    """Ask the model once more, without code, for its best answer: the run is at a limit (or the
    loop guard ended it: ``what`` says which, in the messages). ``shape`` asks a typed session's
    answer as JSON of its type (``_prompts.sub_output_instructions``)."""
    text = BEST_ANSWER_PROMPT.format(reason=why, question=question)
    ask: Message = {"role": "user", "content": f"{text}\n\n{shape}" if shape else text}
    messages = [*history.messages, ask]
    try:
        completion = call(messages)
    except ModelError as exc:
        message = f"{what} ({why}) and the best-answer call failed: {exc}"
        return Ending(None, reason, message, error=exc)
    answer = completion.text.strip()
    found = prose_final(answer)
    if found is not None and found[0] != "FINAL_VAR":
        answer = found[1]
    forced = forced_call(completion, messages, history=True, shown=[ask])
    message = f"{what}: {why}. The answer is the model's best guess."
    return Ending(answer, reason, message, forced)


def uses_baseline(config: RLM, info: ContextInfo, depth: int) -> bool:
    """Whether a root session answers with one direct call (mode baseline, or auto and small)."""
    small = info.chars < config.baseline_threshold
    return depth == 0 and (config.mode == "baseline" or (config.mode == "auto" and small))


def baseline(
    call: RootCall,
    context: object,
    question: str,
    session: SessionRecord,
    mode: str,
    shape: str = "",
) -> Ending:
    """One direct call with the whole context in the prompt; the record keeps its description.
    ``shape`` asks a typed session's answer as JSON of its type."""
    system = f"{BASELINE_SYSTEM}\n\n{shape}" if shape else BASELINE_SYSTEM

    def ask(context_part: str) -> list[Message]:
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Context:\n{context_part}\n\nQuestion: {question}"},
        ]

    sent = ask(context_text(context))
    completion = call(sent)
    forced = forced_call(completion, sent, history=False, shown=ask(omitted_context(session)))
    why = f"mode {mode!r}: one direct call with the whole context"
    return Ending(completion.text.strip(), "baseline", why.capitalize(), forced)


def compaction_due(history: History, config: RLM) -> bool:
    """Whether the history (at about 4 characters a token) has outgrown its share of the window."""
    limit = config.compaction_threshold * config.context_window
    return bool(history.turns) and history.chars / 4 >= limit


def compaction(call: RootCall, history: History) -> CompactionRecord:
    """Have the model summarise its history; the record the session applies to fold it."""
    request: list[Message] = [*history.messages, {"role": "user", "content": COMPACTION_PROMPT}]
    completion = call(request)
    after = history.iterations
    return compaction_record(
        after, completion.text, compacted_note(after), model_call(completion, request)
    )
