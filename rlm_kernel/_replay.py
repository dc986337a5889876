"""Re-enact a recorded session offline: the code runs again for real, the model answers come from the
recording, so a replay needs no API key and spends no tokens."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from ._config import RLM, setting_names
from ._context import describe_context, load_context
from ._errors import TrajectoryError
from ._session import Session
from ._trajectory import Trajectory
from .executors import Executor
from .models.replay import replay_clients

# Settings that shape the loop and must match the recording for the replay to follow it.
_LOOP_SETTINGS = (
    "model",
    "sub_model",
    "max_iterations",
    "max_depth",
    "max_subcalls",
    "max_tokens",
    "max_cost",
    "max_output_chars",
    "mode",
    "baseline_threshold",
    "compaction",
    "compaction_threshold",
    "context_window",
    "refuse_early_final",
    "iteration_timeout",
)


def replay_session(
    recording: Trajectory,
    question: str | None,
    context: object,
    overrides: Mapping[str, Any] | None = None,
    *,
    executor: Executor | None = None,
    speed: float | None = None,
) -> Session:
    """A Session for ``context`` whose model calls are served from ``recording``."""
    recorded = recording.session
    if question is not None and question.strip() != recorded["question"].strip():
        raise TrajectoryError(
            f"The recording answers a different question: {recorded['question']!r}",
            fix="Ask the recorded question to replay it, or run live with a model",
        )
    loaded = load_context(context)
    if describe_context(loaded).sha256 != recorded["context"]["sha256"]:
        warnings.warn(
            "The context differs from the one the session was recorded on; the replayed model "
            "answers may not fit what the code now prints.",
            stacklevel=2,
        )
    known = set(setting_names())
    loop = {k: v for k, v in recorded["config"].items() if k in _LOOP_SETTINGS and k in known}
    config = RLM().with_overrides({**loop, **(overrides or {})})
    root, sub = replay_clients(recording, speed=speed)
    return Session(
        recorded["question"],
        loaded,
        config=config,
        client=root,
        sub_client=sub,
        executor=executor,
    )
