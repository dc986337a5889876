"""A ``Session`` driven end to end in process by scripted clients: propose and execute, run, the
limits, pausing and stopping, model errors, sub-calls and child RLMs."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rlm_kernel import SessionStateError
from rlm_kernel._events import (
    CodeReady,
    Event,
    Finished,
    IterationFinished,
    IterationStarted,
    StateChanged,
)
from rlm_kernel.errors import CostUnknownWarning, ModelResponseError
from rlm_kernel.models import Message
from rlm_kernel.testing import fence, scripted_session

MEASURE = fence("n = len(P)\nprint(n)")


# --- propose / execute ---------------------------------------------------------------------------------


def test_propose_waits_and_execute_runs_the_proposed_code() -> None:
    s = scripted_session([MEASURE])  # one response: a second model call would raise
    proposal = s.propose()
    assert (proposal.iteration, proposal.blocks) == (1, ("n = len(P)\nprint(n)",))
    assert "n" not in s.executor.namespace  # proposed, not run
    assert s.propose() is proposal
    assert s.pending is proposal

    record = s.execute()
    assert record["output"] == "400"
    assert s.executor.namespace["n"] == 400
    assert (s.iteration, s.pending, s.state) == (1, None, "paused")


def test_an_edited_step_runs_the_persons_code_instead() -> None:
    s = scripted_session([fence("x = 'model'\nprint(x)"), fence("FINAL(x)")])
    s.propose()
    record = s.execute("x = 'person'\nprint(x)")
    assert record["edited_by_user"] is True
    assert record["output"] == "person"
    assert s.run().answer == "person"


def test_executing_the_proposed_code_unchanged_is_no_edit() -> None:
    s = scripted_session([MEASURE])
    proposal = s.propose()
    assert s.execute(proposal.code + "\n")["edited_by_user"] is False


def test_execute_without_a_proposal_asks_the_model_first() -> None:
    s = scripted_session([MEASURE])
    assert s.execute()["iteration"] == 1
    assert s.executor.namespace["n"] == 400


# --- run ----------------------------------------------------------------------------------------------


def test_run_goes_to_the_final_answer_and_then_refuses_more() -> None:
    s = scripted_session([MEASURE, fence("FINAL(n * 2)")])
    result = s.run()
    assert (result.answer, result.reason, s.state) == ("800", "final", "done")
    assert len(result.trajectory.iterations) == 2
    assert result.usage.total.calls == 2
    with pytest.raises(SessionStateError, match="done"):
        s.run()
    with pytest.raises(SessionStateError):
        s.propose()


def test_events_follow_the_run() -> None:
    s = scripted_session([MEASURE, fence("FINAL(n)")])
    events: list[Event] = []
    s.subscribe(events.append)
    s.run()
    kinds = [type(e).__name__ for e in events if not isinstance(e, StateChanged)]
    step = ["IterationStarted", "CodeReady", "IterationFinished"]
    assert kinds == [*step, *step, "Finished"]
    states = [(e.old, e.new) for e in events if isinstance(e, StateChanged)]
    assert states == [("idle", "running"), ("running", "done")]
    finished = [e for e in events if isinstance(e, Finished)]
    assert [(f.answer, f.reason) for f in finished] == [("400", "final")]
    assert [e.iteration for e in events if isinstance(e, IterationStarted | CodeReady)] == [
        1,
        1,
        2,
        2,
    ]
    assert all(isinstance(e.record, dict) for e in events if isinstance(e, IterationFinished))


def test_tools_are_callable_from_the_code() -> None:
    def vault_code() -> str:
        """The code of the vault."""
        return "TANGERINE-4491"

    s = scripted_session(
        [fence("c = vault_code()\nprint(c)"), fence("FINAL(c)")], tools=[vault_code]
    )
    assert s.run().answer == "TANGERINE-4491"
    assert "vault_code" in s.messages[0]["content"]  # the system prompt lists the tool


# --- limits -------------------------------------------------------------------------------------------


def test_max_iterations_asks_for_a_best_answer_without_code() -> None:
    s = scripted_session([MEASURE, fence("print(n + 1)"), "FINAL(400)"], max_iterations=2)
    result = s.run()
    assert (result.reason, result.answer) == ("max_iterations", "400")
    assert "Limit reached" in result.message
    assert len(result.trajectory.iterations) == 2  # the best-answer call ran no step


def test_a_follow_up_question_gets_a_fresh_iteration_budget() -> None:
    s = scripted_session(
        [MEASURE, fence("FINAL(n)"), fence("print(n * 2)"), fence("FINAL(n * 2)")],
        max_iterations=2,
    )
    assert s.run().reason == "final"
    s.follow_up("And twice that?")
    result = s.run()
    assert (result.reason, result.answer) == ("final", "800")


def test_a_cost_limit_the_scripted_client_cannot_keep_warns_and_runs_on() -> None:
    s = scripted_session([MEASURE, fence("FINAL(n)")], max_cost=0.01)
    with pytest.warns(CostUnknownWarning):
        result = s.run()
    assert (result.reason, result.answer) == ("final", "400")


# --- pause, stop, model errors -----------------------------------------------------------------------


def test_a_pause_asked_during_a_step_takes_effect_after_it() -> None:
    s = scripted_session([MEASURE, fence("FINAL(n)")])
    unsubscribe = s.subscribe(lambda e: s.pause() if isinstance(e, CodeReady) else None)
    result = s.run()
    assert (s.state, result.reason, result.answer, s.iteration) == ("paused", "paused", None, 1)
    unsubscribe()
    assert s.run().answer == "400"


def test_stop_ends_the_session_without_an_answer() -> None:
    idle = scripted_session([])
    idle.stop()
    assert (idle.state, idle.reason, idle.answer) == ("done", "stopped", None)

    running = scripted_session([MEASURE, fence("FINAL(n)")])
    running.subscribe(lambda e: running.stop() if isinstance(e, IterationFinished) else None)
    result = running.run()
    assert (result.reason, result.answer, running.iteration) == ("stopped", None, 1)


def test_a_model_error_pauses_and_the_run_resumes_after_it() -> None:
    answers = iter([MEASURE, None, fence("FINAL(n)")])

    def root(messages: Sequence[Message], model: str) -> str:
        answer = next(answers)
        if answer is None:
            raise ModelResponseError("the endpoint had a hiccup", fix="try again")
        return answer

    s = scripted_session(root)
    held = s.run()
    assert (s.state, held.reason) == ("paused", "error")
    assert isinstance(held.error, ModelResponseError)
    assert s.iteration == 1  # the step that ran stands
    resumed = s.run()
    assert (resumed.answer, resumed.error) == ("400", None)


# --- sub-calls and children -----------------------------------------------------------------------------


def test_sub_calls_go_to_the_sub_model_and_usage_is_kept_by_model() -> None:
    s = scripted_session(
        [fence("a = llm_query('What is in P?')\nprint(a)"), fence("FINAL(a)")],
        ["letters"],
    )
    result = s.run()
    assert result.answer == "letters"
    record = result.trajectory.iterations[0]
    assert [(c["model"], c["prompt"]) for c in record["subcalls"]] == [("sub", "What is in P?")]
    assert set(result.usage.to_dict()["by_model"]) == {"root", "sub"}
    assert s.root_usage.total.calls == 2
    assert s.usage.total.calls == 3


def test_rlm_query_at_depth_two_runs_a_child_session_in_process() -> None:
    # A child RLM's root turns go to the root client, asking for the sub model.
    parent = iter([fence("r = rlm_query('How long?', P[:10])\nprint(r)"), fence("FINAL(r)")])

    def root(messages: Sequence[Message], model: str) -> str:
        if model == "root":
            return next(parent)
        turn = sum(m["role"] == "assistant" for m in messages) + 1
        return fence("print(len(P))") if turn == 1 else fence("FINAL('child saw ' + str(len(P)))")

    s = scripted_session(root, [], max_depth=2)
    result = s.run()
    assert result.answer == "child saw 10"
    call = result.trajectory.iterations[0]["subcalls"][0]
    assert call["kind"] == "rlm_query"
    assert call["child"] is not None
    assert [r["type"] for r in call["child"]["records"]].count("iteration") == 2
