"""Cost that is known: calls the endpoint reports no cost for are priced from their tokens, by
``RLM.prices`` first, then genai-prices' offline table; ``max_cost`` holds for a known model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable

import genai_prices
import pytest

import rlm_kernel
from rlm_kernel import RLM, Session, _pricing
from rlm_kernel._snapshot import describe
from rlm_kernel.errors import CostUnknownWarning
from rlm_kernel.testing import Reply, ScriptedServer, fence, settings


# The table's own price of a call, asked through its public API (not rlm_kernel's code path).
def table_price(model: str, prompt: int, cached: int, completion: int) -> float:
    usage = genai_prices.Usage(
        input_tokens=prompt, cache_read_tokens=cached, output_tokens=completion
    )
    return float(genai_prices.calc_price(usage, model, provider_id="openai").total_price)


def test_a_known_model_is_priced_from_its_usage(serve: Callable[..., ScriptedServer]) -> None:
    tokens = {"prompt_tokens": 12_000, "completion_tokens": 800, "cached_tokens": 5_000}
    root = [Reply(fence("print(1)"), **tokens), Reply(fence("FINAL('ok')"), **tokens)]
    server = serve({"gpt-4o-mini": root})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no CostUnknownWarning: the cost is known
        result = rlm_kernel.run(
            "q", "c", **settings(server, model="gpt-4o-mini", sub_model="gpt-4o-mini", max_cost=1.0)
        )
    assert result.answer == "ok"
    usage = result.usage.by_model["gpt-4o-mini"]
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (
        24_000,
        10_000,
        1_600,
    )
    one = table_price("gpt-4o-mini", 12_000, 5_000, 800)
    assert usage.cost == pytest.approx(2 * one)
    # Cached tokens at the cached rate: the same call with none cached costs more.
    assert one < table_price("gpt-4o-mini", 12_000, 0, 800)
    # The record of the call carries the cost too (what the trajectory, timeline and exports read).
    step = next(r for r in result.trajectory.records if r["type"] == "iteration")
    assert step["model_call"]["usage"]["cost"] == pytest.approx(one)


def test_max_cost_stops_a_run_of_a_known_model(serve: Callable[..., ScriptedServer]) -> None:
    # Each root turn: 100k prompt tokens, 2k completion (about $0.016 at gpt-4o-mini's rates).
    turns = [
        Reply(fence(f"print({i})"), prompt_tokens=100_000, completion_tokens=2_000)
        for i in range(3)
    ]
    per_turn = table_price("gpt-4o-mini", 100_000, 0, 2_000)
    limit = per_turn * 2.5
    server = serve({"gpt-4o-mini": [*turns, Reply("best", prompt_tokens=10, completion_tokens=1)]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = rlm_kernel.run(
            "q",
            "c",
            **settings(
                server,
                model="gpt-4o-mini",
                sub_model="gpt-4o-mini",
                max_cost=limit,
                max_iterations=10,
            ),
        )
    assert result.reason == "max_cost", result.message
    assert result.answer == "best"
    assert "RLM.max_cost" in result.message
    steps = [r for r in result.trajectory.records if r["type"] == "iteration"]
    assert len(steps) == 3  # stopped after the turn that crossed 2.5 turns' cost
    assert result.usage.total.cost == pytest.approx(
        per_turn * 3 + table_price("gpt-4o-mini", 10, 0, 1)
    )


def test_rlm_prices_override_the_table(serve: Callable[..., ScriptedServer]) -> None:
    tokens = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000, "cached_tokens": 500_000}
    root = [Reply(fence("print(1)"), **tokens), Reply(fence("FINAL(1)"), **tokens)]
    server = serve({"gpt-4o-mini": root})
    prices = {"gpt-4o-mini": {"input": 2.0, "output": 3.0, "cached_input": 1.0}}
    result = rlm_kernel.run("q", "c", **settings(server, model="gpt-4o-mini", prices=prices))
    assert result.usage.total.cost == pytest.approx(2 * (0.5 * 2.0 + 0.5 * 1.0 + 3.0))


def test_a_reported_cost_is_believed(serve: Callable[..., ScriptedServer]) -> None:
    root = [Reply(fence("print(1)"), cost=0.25), Reply(fence("FINAL(1)"), cost=0.5)]
    server = serve({"gpt-4o-mini": root})
    result = rlm_kernel.run("q", "c", **settings(server, model="gpt-4o-mini"))
    assert result.usage.total.cost == pytest.approx(0.75)


def test_an_unknown_model_stays_unpriced_and_max_cost_says_so(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [fence("print(1)"), fence("FINAL(2)")]
    server = serve({"qwen2.5-coder-1.5b-local": root})
    with pytest.warns(CostUnknownWarning, match="genai-prices"):
        result = rlm_kernel.run(
            "q", "c", **settings(server, model="qwen2.5-coder-1.5b-local", max_cost=0.001)
        )
    assert result.answer == "2"
    assert result.usage.total.cost is None


def test_known_prices_off_leaves_calls_unpriced(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"gpt-4o-mini": [fence("print(1)"), fence("FINAL(1)")]})
    with pytest.warns(CostUnknownWarning):
        result = rlm_kernel.run(
            "q", "c", **settings(server, model="gpt-4o-mini", known_prices=False, max_cost=1.0)
        )
    assert result.usage.total.cost is None


def test_rates_name_the_provider_by_base_url_then_by_model_name() -> None:
    hosted = _pricing.rates("gpt-4o-mini", prices={}, base_url="https://api.openai.com/v1")
    loopback = _pricing.rates("gpt-4o-mini", prices={}, base_url="http://127.0.0.1:8000/v1")
    assert hosted is not None
    assert loopback == hosted
    assert hosted.source == "genai-prices (openai)"
    assert 0 < hosted.cached_input < hosted.input < hosted.output
    # The rates reproduce the table's price of a call below any long-prompt tier.
    assert hosted.cost(10_000, 4_000, 500) == pytest.approx(
        table_price("gpt-4o-mini", 10_000, 4_000, 500)
    )
    routed = _pricing.rates(
        "openai/gpt-4o-mini", prices={}, base_url="https://openrouter.ai/api/v1"
    )
    assert routed is not None
    assert routed.source == "genai-prices (openrouter)"
    assert _pricing.rates("local", prices={}) is None
    assert _pricing.rates("gpt-4o-mini", prices={}, table=False) is None
    mine = _pricing.rates("local", prices={"local": {"input": 0.0, "output": 0.0}})
    assert mine is not None
    assert mine.source == "RLM.prices"
    assert mine.cost(10, 0, 10) == 0.0


def test_the_live_views_show_the_priced_cost(serve: Callable[..., ScriptedServer]) -> None:
    # The status bar, the toolbar and the CLI line all render the session's snapshot (_snapshot).
    tokens = {"prompt_tokens": 40_000, "completion_tokens": 1_000}
    root = [Reply(fence("print(llm_query('x'))"), **tokens), Reply(fence("FINAL(1)"), **tokens)]
    server = serve(
        {"gpt-4o-mini": root, "gpt-4o": [Reply("y", prompt_tokens=500, completion_tokens=50)]}
    )
    config = RLM().with_overrides(settings(server, model="gpt-4o-mini", sub_model="gpt-4o"))
    session = Session("q", "c", config=config)
    seen: list[float | None] = []
    session.subscribe(lambda event: seen.append(session.snapshot().cost))
    assert session.run().answer == "1"
    expected = 2 * table_price("gpt-4o-mini", 40_000, 0, 1_000) + table_price("gpt-4o", 500, 0, 50)
    snap = session.snapshot()
    assert snap.cost == pytest.approx(expected)
    assert f"${expected:.4f}" in describe(snap)
    assert any(c is not None and 0 < c < expected for c in seen)  # it grew as the calls returned


def test_the_table_is_loaded_only_when_a_call_needs_a_price() -> None:
    script = textwrap.dedent(
        """
        import sys, rlm_kernel
        from rlm_kernel.testing import Reply, ScriptedServer, fence, settings
        assert "genai_prices" not in sys.modules  # import rlm_kernel stays light
        root = [Reply(fence("print(1)"), cost=0.1), Reply(fence("FINAL(1)"), cost=0.1)]
        server = ScriptedServer({"gpt-4o-mini": root}).start()
        run = lambda: rlm_kernel.run("q", "c", **settings(server, model="gpt-4o-mini", autosave=False))
        assert run().answer == "1"
        print("genai_prices" in sys.modules)  # the endpoint reported every cost
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
