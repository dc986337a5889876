"""What a model call costs when the endpoint does not say: ``RLM.prices``, then genai-prices' table.

An endpoint that reports a call's cost (OpenRouter's ``usage.cost``) is believed. Otherwise the call is
priced from its tokens: ``RLM.prices`` first (a person's prices always win), then the offline table
of the `genai-prices <https://pypi.org/project/genai-prices/>`_ package (a data snapshot shipped in the
package, maintained by Pydantic; nothing is fetched). Cached prompt tokens are charged at the cached
rate where one is known, the others at the input rate.

Which provider's price applies: the one whose API the base URL is (api.openai.com, openrouter.ai,
…), else the provider the model's name belongs to (``gpt-4o-mini`` → OpenAI, ``claude-…`` →
Anthropic). So a loopback or self-hosted server that serves a model under a hosted model's name is
priced as that model (an upper bound for ``max_cost``); a local model's own name (``qwen2.5-coder``,
``local``) is in no provider's list and stays unpriced, as does any model when ``RLM.known_prices`` is
off. An unpriced call has cost None, and ``max_cost`` warns that it cannot hold (``CostUnknownWarning``).

genai-prices is imported on the first call that needs it (about 0.1 s, and 0.1 s more to load its
table): ``import rlm_kernel`` stays light, and a run whose endpoint reports cost never loads it.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Rates", "cost", "rates"]

_MILLION = 1_000_000
_SAMPLE = 1_000
_LOCK = threading.Lock()  # genai-prices' lookup caches are plain dicts


@dataclass(frozen=True)
class Rates:
    """USD per million tokens for one model, and where the prices come from."""

    input: float
    output: float
    cached_input: float
    source: str  # "RLM.prices", or "genai-prices (<provider>)"

    def cost(self, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> float:
        """USD for a call's tokens (cached tokens are part of the prompt's, at the cached rate)."""
        cached = min(max(cached_tokens, 0), prompt_tokens)
        fresh = prompt_tokens - cached
        total = fresh * self.input + cached * self.cached_input + completion_tokens * self.output
        return total / _MILLION


def rates(
    model: str, *, prices: Mapping[str, Any], base_url: str = "", table: bool = True
) -> Rates | None:
    """The prices that apply to ``model``: ``prices`` (``RLM.prices``) when it names the model,
    else genai-prices' when ``table`` (``RLM.known_prices``) and the model is known, else None."""
    price = prices.get(model)
    if isinstance(price, Mapping):
        per_in = float(price.get("input", 0.0))
        return Rates(
            input=per_in,
            output=float(price.get("output", 0.0)),
            cached_input=float(price.get("cached_input", per_in)),
            source="RLM.prices",
        )
    if not table or not model:
        return None
    return _table_rates(model, base_url)


def cost(
    model: str,
    prompt_tokens: int,
    cached_tokens: int,
    completion_tokens: int,
    *,
    prices: Mapping[str, Any],
    base_url: str = "",
    table: bool = True,
) -> float | None:
    """USD for one call of ``model`` with these tokens, or None when no price is known."""
    found = rates(model, prices=prices, base_url=base_url, table=table)
    if found is None:
        return None
    if found.source == "RLM.prices":
        return found.cost(prompt_tokens, cached_tokens, completion_tokens)
    # The table's own calculation: it knows tiered prices (long prompts cost more on some models).
    return _table_cost(model, base_url, prompt_tokens, cached_tokens, completion_tokens)


def _model(model: str, base_url: str) -> tuple[Any, Any] | None:
    """genai-prices' (provider, model) for this name at this endpoint, or None."""
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    with _LOCK:
        if base_url:
            try:
                return snapshot.find_provider_model(model, None, None, base_url)
            except LookupError:
                pass  # not a known provider's API (a loopback server, a proxy): go by the name
        try:
            return snapshot.find_provider_model(model, None, None, None)
        except LookupError:
            return None


def _usage(prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> Any:
    from genai_prices import Usage

    cached = min(max(cached_tokens, 0), prompt_tokens)
    # genai-prices counts cache reads inside input_tokens, as OpenAI's prompt_tokens do.
    return Usage(
        input_tokens=prompt_tokens, cache_read_tokens=cached, output_tokens=completion_tokens
    )


def _table_cost(
    model: str, base_url: str, prompt_tokens: int, cached_tokens: int, completion_tokens: int
) -> float | None:
    found = _model(model, base_url)
    if found is None:
        return None
    provider, info = found
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # the table's own notes (deprecated models) are not ours
            calc = info.calc_price(
                _usage(prompt_tokens, cached_tokens, completion_tokens), provider
            )
    except (LookupError, ValueError, TypeError):  # a price the table cannot apply to these tokens
        return None
    return float(calc.total_price)


@functools.lru_cache(maxsize=256)
def _table_rates(model: str, base_url: str) -> Rates | None:
    found = _model(model, base_url)
    if found is None:
        return None
    provider, _ = found
    # The base rates, what a price list shows: measured on a thousand tokens of each kind and
    # scaled, since some models charge more per token past a long prompt (200k tokens and up).
    per_in = _table_cost(model, base_url, _SAMPLE, 0, 0)
    per_out = _table_cost(model, base_url, 0, 0, _SAMPLE)
    per_cached = _table_cost(model, base_url, _SAMPLE, _SAMPLE, 0)
    if per_in is None or per_out is None:
        return None
    scale = _MILLION / _SAMPLE
    return Rates(
        input=round(per_in * scale, 9),
        output=round(per_out * scale, 9),
        cached_input=round((per_in if per_cached is None else per_cached) * scale, 9),
        source=f"genai-prices ({provider.id})",
    )
