"""The loop's parts in process, with a scripted client and no server: the block runner's guard rails,
the REPL helpers the model calls, and the shared budget."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rlm_kernel import RLM
from rlm_kernel._subcalls import Budget
from rlm_kernel.errors import CostUnknownWarning
from rlm_kernel.models import Message, Usage
from rlm_kernel.testing import fence, scripted_session

# --- the block runner ------------------------------------------------------------------------------


def test_a_final_in_the_first_step_is_refused_and_accepted_once_output_was_seen() -> None:
    s = scripted_session([fence("FINAL(len(P))"), fence("n = len(P)\nprint(n)"), fence("FINAL(n)")])
    first = s.step()
    assert first["final"] is None
    assert any("first step" in note for note in first["notes"])
    assert s.run().answer == "400"


def test_blocks_after_one_that_raised_do_not_run() -> None:
    response = fence("x = 1\nprint(x)") + "\n" + fence("1 / 0") + "\n" + fence("print('never')")
    s = scripted_session([response, fence("FINAL(x)")])
    record = s.step()
    assert len(record["results"]) == 2
    assert record["results"][1]["error_type"] == "ZeroDivisionError"
    assert "never" not in record["output"]


def test_a_helper_the_code_overwrote_is_put_back_with_a_note() -> None:
    s = scripted_session(
        [fence("llm_query = 'mine'\nprint(1)"), fence("FINAL(callable(llm_query))")]
    )
    record = s.step()
    assert any("llm_query" in note and "reserved" in note for note in record["notes"])
    assert callable(s.executor.namespace["llm_query"])
    assert s.run().answer == "True"


# --- the helpers the model's code calls ----------------------------------------------------------------


def test_llm_batch_answers_in_prompt_order_and_records_each_call() -> None:
    def sub(messages: Sequence[Message], model: str) -> str:
        return messages[-1]["content"].upper()

    s = scripted_session(
        [fence("out = llm_batch(['a', 'b', 'c'])\nprint(out)"), fence("FINAL_VAR('out')")],
        sub=sub,
    )
    record = s.step()
    assert "['A', 'B', 'C']" in record["output"]
    assert [c["prompt"] for c in record["subcalls"]] == ["a", "b", "c"]
    assert s.run().answer == "['A', 'B', 'C']"


def test_max_subcalls_turns_further_calls_into_error_strings() -> None:
    s = scripted_session(
        [fence("a = llm_query('one')\nb = llm_query('two')\nprint(a, '|', b)"), fence("FINAL(a)")],
        sub=["first"],
        max_subcalls=1,
    )
    record = s.step()
    assert record["output"].startswith("first | Error:")
    assert [c["error"] is None for c in record["subcalls"]] == [True, False]


# --- the budget ------------------------------------------------------------------------------------


def test_the_budget_names_the_first_limit_reached() -> None:
    budget = Budget(RLM().with_overrides({"max_tokens": 100, "max_cost": 1.0}))
    assert budget.exceeded() is None
    budget.charge(Usage(prompt_tokens=60, completion_tokens=39, cost=0.5, calls=1), "m")
    assert budget.exceeded() is None
    budget.charge(Usage(prompt_tokens=1, cost=0.6, calls=1), "m")
    assert budget.exceeded() == ("max_tokens", "100 tokens used, RLM.max_tokens = 100")


def test_a_cost_limit_without_a_cost_warns_once() -> None:
    budget = Budget(RLM().with_overrides({"max_cost": 1.0}))
    with pytest.warns(CostUnknownWarning, match="RLM.prices"):
        budget.charge(Usage(prompt_tokens=5, calls=1), "m")
    budget.charge(Usage(prompt_tokens=5, calls=1), "m")  # a second warning would be an error here


def test_a_token_limit_ends_the_run_with_the_best_answer_call() -> None:
    s = scripted_session([fence("print(len(P))"), "It is 400."], max_tokens=1)
    result = s.run()
    assert (result.reason, result.answer) == ("max_tokens", "It is 400.")
    assert result.trajectory.final["forced"]["history"] is True  # type: ignore[index]
