"""What a session hands out (a proposed step, a result) and small builders for its trajectory records."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._trajectory import Trajectory
from .errors import RLMError
from .executors import ExecResult
from .models import Completion, Message, Usage, UsageSummary, request_key

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


@dataclass
class Result:
    """How a run ended: the answer (None without one), why (``reason``: final, stopped, a limit,
    paused, error…), a message for people, the trajectory, the usage, the error if one ended it, and
    where the trajectory was autosaved."""

    answer: str | None
    reason: str
    message: str
    trajectory: Trajectory
    usage: UsageSummary
    error: RLMError | None = None
    path: Path | None = None

    @property
    def ok(self) -> bool:
        """Whether the run ended with an answer the model submitted (``reason == "final"``)."""
        return self.reason == "final"


def model_call(
    completion: Completion | None,
    request: Sequence[Message] | str | None,
    fallback_model: str = "",
) -> dict[str, Any]:
    """How one model call went: what the replay client needs to serve it again, and its cost."""
    if isinstance(request, str) or request is None:
        key = request
    else:
        key = request_key(completion.model if completion else fallback_model, request)
    if completion is None:  # a step recreated by rewind: no call was made for it this time
        return {
            "model": fallback_model,
            "request_key": key,
            "usage": Usage().to_dict(),
            "latency": 0.0,
            "finish_reason": None,
            "cached": False,
        }
    return {
        "model": completion.model,
        "request_key": key,
        "usage": completion.usage.to_dict(),
        "latency": completion.latency,
        "finish_reason": completion.finish_reason,
        "cached": completion.cached,
    }


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
    return "".join(
        difflib.unified_diff(
            before.splitlines(True), after.splitlines(True), "proposed", "executed"
        )
    )


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def iteration_record(
    proposal: Proposal,
    root_model: str,
    *,
    executed: str,
    edited: bool,
    outcome: Outcome,
    output: str,
    observation: str,
    subcalls: list[dict[str, Any]],
    ran_for: float,
) -> dict[str, Any]:
    """The trajectory record of one executed step (its fields: docs/formats.md §1.2)."""
    completion = proposal.completion
    submission = outcome.submission
    return {
        "type": "iteration",
        "iteration": proposal.iteration,
        "started": now(),
        "duration": ran_for + (completion.latency if completion else 0.0),
        "model_call": model_call(completion, proposal.request_key, root_model),
        "response": proposal.response,
        "blocks": list(proposal.blocks),
        "code": executed,
        "edited_by_user": edited,
        "diff": unified_diff(proposal.code, executed) if edited else None,
        "results": [r.to_dict() for r in outcome.results],
        "output": output,
        "notes": outcome.notes,
        "observation": observation,
        "subcalls": subcalls,
        "final": None
        if submission is None
        else {"value": submission.value, "source": submission.source},
    }
