"""The names the model's code uses: ``Helpers`` binds and restores them, ``SHOW_VARS`` lists what the
code made, tools are checked, and ``FINAL`` / ``FINAL_VAR`` / ``answer`` land in one ``FinalSlot``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from rlm_kernel import RLM, ConfigError
from rlm_kernel._events import Emitter
from rlm_kernel._final import (
    FinalSlot,
    answer_submission,
    make_final,
    make_final_var,
    new_answer,
)
from rlm_kernel._namespace import RESERVED, Helpers, normalize_tools, tool_spec
from rlm_kernel._secrets import Redactor
from rlm_kernel._subcalls import Budget, SubcallCache, SubcallEngine
from rlm_kernel.models import Message, ScriptedClient


def engine(
    sub: Sequence[str] | Callable[[Sequence[Message], str], str] | None = None, **overrides: Any
) -> SubcallEngine:
    config = RLM().with_overrides({"model": "root", "sub_model": "sub", **overrides})
    return SubcallEngine(
        session_id="t",
        depth=0,
        config=config,
        client=ScriptedClient(sub or []),
        budget=Budget(config),
        cache=SubcallCache("off", config.resolved_cache_dir()),
        emitter=Emitter(),
        redactor=Redactor(),
        child_runner=None,
    )


def bound(namespace: dict[str, Any] | None = None, **tools: Any) -> tuple[Helpers, dict[str, Any]]:
    ns: dict[str, Any] = {} if namespace is None else namespace
    helpers = Helpers("ctx", engine(), FinalSlot(), tools)
    helpers.bind(ns)
    return helpers, ns


def search(query: str, limit: int = 3) -> list[str]:
    """Find passages about ``query``.

    A second paragraph the prompt leaves out.
    """
    return [query] * limit


# --- Helpers ---------------------------------------------------------------------------------------


def test_bind_puts_every_reserved_name_and_the_tools_in_the_namespace() -> None:
    _, ns = bound(search=search)
    assert set(RESERVED) <= set(ns)
    assert ns["P"] == "ctx"
    assert ns["answer"] == {"content": "", "ready": False}
    assert ns["search"] is search
    assert ns["llm_query_batched"] == ns["llm_batch"]


def test_bind_reports_the_names_it_replaced() -> None:
    ns: dict[str, Any] = {"P": "old", "answer": 42, "mine": 1}
    helpers = Helpers("ctx", engine(), FinalSlot(), {})
    assert sorted(helpers.bind(ns)) == ["P", "answer"]
    assert ns["mine"] == 1
    # an answer dict of the right shape is no clash
    again: dict[str, Any] = {"answer": new_answer()}
    assert Helpers("ctx", engine(), FinalSlot(), {}).bind(again) == []


def test_restore_puts_back_only_what_was_replaced() -> None:
    helpers, ns = bound(search=search)
    assert helpers.restore(ns) == []
    original = ns["llm_query"]
    ns["llm_query"] = lambda prompt: "fake"
    del ns["search"]
    ns["answer"] = "done"
    assert sorted(helpers.restore(ns)) == ["answer", "llm_query", "search"]
    assert ns["llm_query"] == original
    assert ns["search"] is search
    assert ns["answer"] == {"content": "", "ready": False}


def test_show_vars_lists_what_the_code_made(capsys: pytest.CaptureFixture[str]) -> None:
    _, ns = bound({"In": [], "preexisting": 1})
    assert ns["SHOW_VARS"]() == "No variables yet."
    ns.update(total=3, names=["a"], _private=1, Out={})
    assert ns["SHOW_VARS"]() == "Variables: names (list), total (int)"
    assert capsys.readouterr().out == "No variables yet.\nVariables: names (list), total (int)\n"


def test_llm_query_in_the_namespace_asks_the_sub_model() -> None:
    seen: list[tuple[str, str]] = []

    def sub(messages: Sequence[Message], model: str) -> str:
        seen.append((model, messages[-1]["content"]))
        return "sub says hi"

    e = engine(sub)
    ns: dict[str, Any] = {}
    Helpers("ctx", e, FinalSlot(), {}).bind(ns)
    assert ns["llm_query"]("hello") == "sub says hi"
    assert ns["llm_query"]({"n": 1}, model="other") == "sub says hi"
    assert seen == [("sub", "hello"), ("other", '{"n": 1}')]
    assert [r["prompt"] for r in e.take_records()] == ["hello", '{"n": 1}']


def test_a_failing_sub_call_comes_back_as_an_error_string() -> None:
    _, ns = bound()  # the sub client's script is empty: it raises ModelResponseError
    assert ns["llm_query"]("q").startswith("Error: The scripted client ran out")
    assert ns["llm_batch"]([]) == []


# --- tools -------------------------------------------------------------------------------------------


def test_tools_are_named_by_function_or_by_key() -> None:
    assert normalize_tools(None) == {}
    assert normalize_tools([search]) == {"search": search}
    assert normalize_tools({"find": search}) == {"find": search}


@pytest.mark.parametrize(
    ("tools", "match"),
    [
        ({"FINAL": search}, "one of the RLM helpers"),
        ({"search": "not a function"}, "not a function"),
    ],
)
def test_a_bad_tool_is_a_config_error(tools: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        normalize_tools(tools)


def test_a_tool_is_described_by_its_signature_and_first_paragraph() -> None:
    spec = tool_spec("search", search)
    assert spec.signature == "(query: str, limit: int = 3) -> list[str]"
    assert spec.doc == "Find passages about ``query``."
    helpers = Helpers("ctx", engine(), FinalSlot(), {"search": search})
    assert [s.name for s in helpers.specs] == ["search"]


# --- FINAL, FINAL_VAR, answer ------------------------------------------------------------------------


def test_final_stores_the_value_as_text() -> None:
    slot = FinalSlot()
    final = make_final(slot)
    assert final(42) == "Final answer submitted."
    assert slot.submission is not None
    assert (slot.submission.value, slot.submission.source) == ("42", "FINAL")
    slot.clear()
    assert slot.submission is None


def test_final_of_the_answer_dict_submits_its_content() -> None:
    slot = FinalSlot()
    make_final(slot)({"content": "inside", "ready": False})
    assert slot.submission is not None
    assert slot.submission.value == "inside"
    make_final(slot)({"content": "x", "other": 1})  # not the answer dict: submitted whole
    assert slot.submission.value == "{'content': 'x', 'other': 1}"


def test_final_var_submits_a_variable_by_name() -> None:
    slot = FinalSlot()
    final_var = make_final_var(slot, {"result": [1, 2]})
    assert final_var(" 'result' ") == "Final answer submitted."
    assert slot.submission is not None
    assert (slot.submission.value, slot.submission.source) == ("[1, 2]", "FINAL_VAR")


def test_final_var_of_a_missing_name_submits_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    slot = FinalSlot()
    message = make_final_var(slot, {})("result")
    assert slot.submission is None
    assert "'result' not found" in message
    assert capsys.readouterr().out == message + "\n"  # the model sees it in the step's output


def test_final_var_of_a_value_submits_the_value() -> None:
    slot = FinalSlot()
    make_final_var(slot, {})(400)
    assert slot.submission is not None
    assert slot.submission.value == "400"


def test_the_answer_dict_counts_only_when_ready() -> None:
    assert answer_submission({"answer": new_answer()}) is None
    assert answer_submission({"answer": {"content": "x", "ready": False}}) is None
    assert answer_submission({}) is None
    got = answer_submission({"answer": {"content": 7, "ready": True}})
    assert got is not None
    assert (got.value, got.source) == ("7", "answer")
    # a plain dict the code rebound ``answer`` to counts too
    rebound = answer_submission({"answer": {"ready": True}})
    assert rebound is not None
    assert rebound.value == ""
