"""Strategy tips (RLM.strategy): which text reaches the system prompt, that the examples in the tips
run as written, and that a misspelt name is an error rather than a one-word tip."""

from __future__ import annotations

import re

import pytest

from rlm_kernel import RLM
from rlm_kernel._strategies import STRATEGIES, strategy_block
from rlm_kernel.errors import ConfigError
from rlm_kernel.testing import fence, scripted_session


def system(session: object) -> str:
    return str(session.messages[0]["content"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_each_named_strategy_is_added_to_the_system_prompt(name: str) -> None:
    plain = system(scripted_session(["x"]))
    tipped = system(scripted_session(["x"], strategy=name))
    assert tipped.startswith(plain.rstrip())
    assert STRATEGIES[name] in tipped
    assert STRATEGIES[name] not in plain


def test_several_names_join_with_plus_and_own_text_is_taken_as_tips() -> None:
    both = strategy_block("search-first+verify")
    assert STRATEGIES["search-first"] in both
    assert STRATEGIES["verify"] in both
    own = system(scripted_session(["x"], strategy="Count with code, never by reading."))
    assert "Strategy:\nCount with code, never by reading." in own


def test_a_misspelt_name_says_which_were_meant() -> None:
    with pytest.raises(ConfigError, match="'serch-first' is not a strategy") as caught:
        RLM(strategy="serch-first")
    assert "Did you mean 'search-first'" in str(caught.value)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_the_code_in_each_tip_runs_as_written(name: str) -> None:
    """Small models copy examples verbatim: each one must run on a text P."""
    blocks = re.findall(r"```repl\n(.*?)\n```", STRATEGIES[name], re.DOTALL)
    answers = ["a chunk answer"] * 10
    steps = [fence("print(len(P))"), *(fence(b) for b in blocks), fence("FINAL('ok')")]
    s = scripted_session(steps, answers, context="keyword text " * 100, strategy=name)
    result = s.run()
    assert result.answer == "ok"
    assert not any(r["error"] for it in s.trajectory.iterations for r in it["results"])
