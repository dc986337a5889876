"""Against a real model (RLM_TEST_BASE_URL): the plumbing holds whatever a small model writes.

Small local models rarely solve tasks, so these tests assert what the runtime guarantees, never the
model's answer: the run ends for a stated reason, every turn is recorded, usage is counted.
"""

from __future__ import annotations

from typing import Any

import pytest

import rlm_kernel

pytestmark = [pytest.mark.live, pytest.mark.timeout(900)]


def test_a_real_model_runs_the_loop_to_a_stated_end(live_settings: dict[str, Any]) -> None:
    context = "Meeting notes. " * 200 + "The vault code is TANGERINE-4491. " + "More notes. " * 200
    result = rlm_kernel.run(
        "What is the vault code?",
        context,
        max_iterations=3,
        max_completion_tokens=300,
        temperature=0.0,
        **live_settings,
    )
    assert result.error is None, result.error
    assert result.reason in {"final", "loop", "max_iterations"}
    assert result.answer is not None
    iterations = result.trajectory.iterations
    assert 1 <= len(iterations) <= 3
    assert result.usage.total.calls >= len(iterations)
    assert result.usage.total.prompt_tokens > 0
    assert result.path is not None
    assert rlm_kernel.Trajectory.load(result.path) == result.trajectory
