"""Protocol tolerance: what other runtimes' models write works here (docs/protocol.md), and
``RLM.protocol = "rlms"`` sends the reference implementation's prompt shape."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rlm_kernel import RLM, ConfigError
from rlm_kernel._final import FinalSlot, make_submit
from rlm_kernel._namespace import RESERVED
from rlm_kernel._prompts import prose_final
from rlm_kernel._prompts_rlms import ORCHESTRATOR_ADDENDUM, SYSTEM_PROMPT
from rlm_kernel.executors._monty_code import HELPERS
from rlm_kernel.testing import fence, scripted_session

DATA = {"P", "context", "answer"}


def test_the_sandbox_knows_every_helper_the_namespace_binds() -> None:
    assert set(RESERVED) - DATA == HELPERS


@pytest.mark.parametrize(
    ("args", "kwargs", "submitted"),
    [
        (("Oslo",), {}, "Oslo"),
        ((), {"answer": "Oslo"}, "Oslo"),
        ((42,), {}, "42"),
        ((), {"city": "Oslo", "year": 1624}, '{"city": "Oslo", "year": 1624}'),
    ],
)
def test_submit_takes_one_value_or_named_fields(
    args: tuple[object, ...], kwargs: dict[str, object], submitted: str
) -> None:
    slot = FinalSlot()
    assert make_submit(slot)(*args, **kwargs) == "Final answer submitted."
    assert slot.submission is not None
    assert (slot.submission.value, slot.submission.source) == (submitted, "SUBMIT")


@pytest.mark.parametrize(("args", "kwargs"), [((), {}), (("a", "b"), {}), (("a",), {"b": 1})])
def test_submit_of_nothing_or_of_a_mixture_submits_nothing_and_says_so(
    args: tuple[object, ...], kwargs: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    slot = FinalSlot()
    message = make_submit(slot)(*args, **kwargs)
    assert slot.submission is None
    assert "nothing was submitted" in message
    assert message in capsys.readouterr().out


@pytest.mark.parametrize(
    ("response", "found"),
    [
        ("The code is X1.\nSUBMIT('X1')", ("SUBMIT", "X1")),
        ('SUBMIT(answer="X1")', ("SUBMIT", "X1")),
        ("SUBMIT(x == 1)", ("SUBMIT", "x == 1")),
        ("FINAL(X1)", ("FINAL", "X1")),
        ("FINAL_VAR(n)", ("FINAL_VAR", "n")),
    ],
)
def test_prose_submissions_in_every_spelling(response: str, found: tuple[str, str]) -> None:
    assert prose_final(response) == found


def test_a_reference_style_step_runs_and_submits_with_the_answer_dict() -> None:
    code = (
        "chunks = [context[i:i + 100] for i in range(0, len(context), 100)]\n"
        "found = llm_query_batched(['look: ' + c for c in chunks])\n"
        "print(len(found), found[0])"
    )
    submit = 'answer["content"] = found[0]\nanswer["ready"] = True'
    s = scripted_session([fence(code), fence(submit)], ["yes"] * 4, protocol="rlms")
    result = s.run()
    assert (result.reason, result.answer) == ("final", "yes")
    assert s.trajectory.iterations[0]["output"] == "4 yes"
    assert [c["kind"] for c in s.trajectory.iterations[0]["subcalls"]] == ["llm_batch"] * 4


def test_context_is_put_back_when_the_code_rebinds_it() -> None:
    s = scripted_session(
        [fence("context = 'mine'"), fence("print(context[:8])"), fence("FINAL(1)")]
    )
    s.run()
    first, second = s.trajectory.iterations[:2]
    assert any("context" in note for note in first["notes"])
    assert second["output"] == "abcdefgh"


def test_rlm_query_batched_runs_one_child_rlm_per_prompt_in_order() -> None:
    # The children's root turns and the root's share one script, in call order.
    root = [
        fence("r = rlm_query_batched(['first', 'second'])\nprint(r)"),
        fence("print(len(P))"),
        fence("FINAL('one')"),
        fence("print(len(P))"),
        fence("FINAL('two')"),
        fence("FINAL(r)"),
    ]
    s = scripted_session(root, max_depth=2)
    result = s.run()
    step = s.trajectory.iterations[0]
    assert step["output"] == "['one', 'two']"
    assert [(c["kind"], c["prompt"], c["response"]) for c in step["subcalls"]] == [
        ("rlm_query", "first", "one"),
        ("rlm_query", "second", "two"),
    ]
    assert all(c["child"] is not None for c in step["subcalls"])
    assert result.answer == "['one', 'two']"


def test_rlm_query_batched_at_the_depth_limit_asks_plain_calls() -> None:
    s = scripted_session(
        [fence("print(rlm_query_batched(['a', 'b']))"), fence("FINAL(1)")], ["A", "B"], max_depth=1
    )
    s.run()
    assert s.trajectory.iterations[0]["output"] == "['A', 'B']"


def test_the_rlms_protocol_sends_the_reference_prompt_shape() -> None:
    s = scripted_session(
        [fence("print(context[:4])"), fence("FINAL(1)")], protocol="rlms", max_iterations=5
    )
    s.run()
    system, first = (m["content"] for m in s.trajectory.session["messages"][:2])
    assert system.startswith(SYSTEM_PROMPT.format(custom_tools_section="")[:200])
    assert ORCHESTRATOR_ADDENDUM in system
    assert first.startswith("Answer the following: How long is P?\n\nYour context is a str of 400")
    assert first.endswith("Turn 1/5:")
    assert "`P`" not in first


def test_the_default_protocol_sends_ours() -> None:
    s = scripted_session([fence("print(P[:4])"), fence("FINAL(1)")])
    s.run()
    system, first = (m["content"] for m in s.trajectory.session["messages"][:2])
    assert "You are the root of a Recursive Language Model" in system
    assert "Answer the following" not in first


def test_a_protocol_that_is_not_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="protocol"):
        RLM().with_overrides({"protocol": "dspy"})


def test_the_docs_table_lists_every_name_the_namespace_binds() -> None:
    table = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    listed = {re.match(r"\| `(\w+)", row).group(1) for row in rows}  # type: ignore[union-attr]
    assert listed == set(RESERVED)
