"""``Budget``: the limits a root session and its children share (tokens, cost, sub-calls, running
time), and how the sub-call engine keeps them."""

from __future__ import annotations

import threading
import warnings
from typing import Any

import pytest

import rlm_kernel._subcalls as subcalls
from rlm_kernel import RLM
from rlm_kernel._events import Emitter
from rlm_kernel._secrets import Redactor
from rlm_kernel._subcalls import Budget, SubcallCache, SubcallEngine
from rlm_kernel.errors import CostUnknownWarning
from rlm_kernel.models import ScriptedClient, Usage


def budget(**overrides: Any) -> Budget:
    return Budget(RLM().with_overrides(overrides))


class Clock:
    """A stand-in for ``time.monotonic`` that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(subcalls.time, "monotonic", fake)
    return fake


def test_charges_add_up_tokens_and_reported_cost() -> None:
    b = budget()
    b.charge(Usage(prompt_tokens=10, completion_tokens=5, cost=0.25, calls=1), "m")
    b.charge(Usage(prompt_tokens=1, completion_tokens=1, calls=1), "m")  # no cost reported
    assert b.tokens == 17
    assert b.cost == pytest.approx(0.25)


def test_no_limit_is_never_exceeded() -> None:
    b = budget()
    b.charge(Usage(prompt_tokens=10**9, cost=10**6, calls=1), "m")
    assert b.exceeded() is None


def test_the_cost_limit_is_reached_at_its_value() -> None:
    b = budget(max_cost=0.5)
    b.charge(Usage(prompt_tokens=1, cost=0.49, calls=1), "m")
    assert b.exceeded() is None
    b.charge(Usage(prompt_tokens=1, cost=0.01, calls=1), "m")
    assert b.exceeded() == ("max_cost", "$0.5000 spent, RLM.max_cost = $0.5")


def test_no_cost_warning_without_a_cost_limit_or_with_a_reported_cost() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        budget().charge(Usage(prompt_tokens=1, calls=1), "m")
        budget(max_cost=1.0).charge(Usage(prompt_tokens=1, cost=0.0, calls=1), "m")


def test_the_cost_warning_names_the_model_and_the_fix() -> None:
    with pytest.warns(CostUnknownWarning) as caught:
        budget(max_cost=1.0).charge(Usage(prompt_tokens=1, calls=1), "gpt-x")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "'gpt-x'" in message
    assert "RLM.max_tokens" in message


def test_sub_calls_are_taken_up_to_the_limit() -> None:
    b = budget(max_subcalls=2)
    assert [b.take_subcall() for _ in range(4)] == [True, True, False, False]
    assert b.subcalls == 2
    unlimited = budget()
    assert all(unlimited.take_subcall() for _ in range(100))


def test_wall_time_counts_only_while_running(clock: Clock) -> None:
    b = budget(wall_timeout=10.0)
    clock.now += 100  # idle time before the run does not count
    assert not b.counting
    b.clock(True)
    b.clock(True)  # entering running twice does not restart the count
    clock.now += 6
    assert b.counting
    assert b.elapsed == pytest.approx(6)
    b.clock(False)
    clock.now += 50  # paused
    assert b.elapsed == pytest.approx(6)
    assert b.exceeded() is None
    b.clock(True)
    clock.now += 4
    assert b.exceeded() == ("wall_timeout", "10 s elapsed, RLM.wall_timeout = 10 s")


def test_the_token_limit_is_named_before_cost_and_time(clock: Clock) -> None:
    b = budget(max_tokens=1, max_cost=0.1, wall_timeout=1.0)
    b.clock(True)
    clock.now += 5
    b.charge(Usage(prompt_tokens=2, cost=1.0, calls=1), "m")
    exceeded = b.exceeded()
    assert exceeded is not None
    assert exceeded[0] == "max_tokens"


def test_charges_from_many_threads_are_all_counted() -> None:
    b = budget()

    def charge() -> None:
        for _ in range(500):
            b.charge(Usage(prompt_tokens=1, cost=0.001, calls=1), "m")

    threads = [threading.Thread(target=charge) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.tokens == 4000
    assert b.cost == pytest.approx(4.0)


# --- the engine keeps the budget ------------------------------------------------------------------------


def engine(b: Budget, script: list[str]) -> SubcallEngine:
    return SubcallEngine(
        session_id="t",
        depth=0,
        config=b.config,
        client=ScriptedClient(script),
        budget=b,
        cache=SubcallCache("off", b.config.resolved_cache_dir()),
        emitter=Emitter(),
        redactor=Redactor(),
        child_runner=None,
    )


def test_sub_calls_are_charged_to_the_shared_budget() -> None:
    b = budget()
    e = engine(b, ["one", "two"])
    assert e.llm_query("a question") == "one"
    after_one = b.tokens
    assert after_one > 0
    assert e.llm_query("another") == "two"
    assert b.tokens > after_one
    assert e.usage.total.total_tokens == b.tokens


def test_a_spent_budget_refuses_further_sub_calls_without_asking_the_model() -> None:
    b = budget(max_tokens=1)
    e = engine(b, ["answered", "never asked"])
    assert e.llm_query("q") == "answered"
    refused = e.llm_query("q2")
    assert refused.startswith("Error: Budget exhausted:")
    assert "RLM.max_tokens" in refused
    # the model was not asked: the second call's record has no response
    assert [r["response"] for r in e.take_records()] == ["answered", ""]


def test_the_sub_call_limit_cuts_a_batch_at_its_value() -> None:
    e = engine(budget(max_subcalls=2), ["a", "b", "c"])
    answers = e.llm_batch(["1", "2", "3"])
    assert sorted(a.startswith("Error: Sub-call limit reached") for a in answers) == [
        False,
        False,
        True,
    ]
