"""The values each numeric setting of ``RLM`` can work with, and the errors that say so.

``RLM`` checks every numeric setting against ``RANGES`` with one traitlets validator, so a bad value
is refused at every way in (``RLM(...)``, ``ipython_config.py``, ``%config``, ``--set``,
``rlm_kernel.run(...)``) as a ``ConfigError`` naming the setting, the value and the range. A value
outside its range would otherwise be accepted and then misbehave (``max_iterations=0`` runs no step,
a negative timeout never fires) or fail late, inside the SDK.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from traitlets import TraitError, TraitType

from .errors import ConfigError

__all__ = ["RANGES", "Range", "SettingValueError", "check_prices", "check_range", "setting_error"]


@dataclass(frozen=True)
class Range:
    """From ``low`` (excluded when ``low_open``) up to ``high`` (None: no upper bound). Floats must
    also be finite: NaN compares false with everything, and infinity is no limit but None is."""

    low: float
    low_open: bool = False
    high: float | None = None

    def admits(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        return above and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        low = f"greater than {self.low:g}" if self.low_open else f"at least {self.low:g}"
        return low if self.high is None else f"{low} and at most {self.high:g}"


# Every Int and Float setting, by name (tests/test_hostile_inputs.py checks that none is missing).
# Zero is in a range only where it means something: max_retries=0 no retries, max_subcalls=0 no
# sub-calls, loop_guard=0 off, baseline_threshold=0 never baseline, output_repairs=0 no second try.
RANGES: dict[str, Range] = {
    "temperature": Range(0),
    "max_completion_tokens": Range(1),
    "request_timeout": Range(0, low_open=True),  # 0 would time every call out at once
    "max_retries": Range(0),
    "baseline_threshold": Range(0),
    "max_iterations": Range(1),
    "max_depth": Range(1),  # 1 is already "no child RLMs"
    "max_subcalls": Range(0),
    "max_tokens": Range(1),
    "max_cost": Range(0, low_open=True),
    "iteration_timeout": Range(0, low_open=True),
    "wall_timeout": Range(0, low_open=True),
    "max_output_chars": Range(100),
    "max_reply_chars": Range(100),
    "max_capture_chars": Range(100),
    "subcall_concurrency": Range(1),
    "sub_tool_turns": Range(1),
    "compaction_threshold": Range(0, low_open=True, high=1),
    "context_window": Range(1),
    "loop_guard": Range(0),
    "output_repairs": Range(0),
    "max_context_mb": Range(1),
    "max_file_mb": Range(0, low_open=True),
    "monty_memory_mb": Range(16),
    "monty_max_recursion": Range(10),
    "monty_max_host_calls": Range(1),
}
_PRICE_KEYS = ("input", "output", "cached_input")


class SettingValueError(TraitError):
    """A ConfigError carried through traitlets as the TraitError it needs: traitlets rolls back the
    values assigned together with a bad one (config loading, the constructor) only for a TraitError.
    ``RLM`` raises ``error`` itself once traitlets is done."""

    def __init__(self, error: ConfigError) -> None:
        super().__init__(str(error))
        self.error = error


def setting_error(name: str, value: Any, exc: TraitError) -> ConfigError:
    """Our error for what traitlets refused: ours, or a wrong type or a value no enum holds."""
    if isinstance(exc, SettingValueError):
        return exc.error
    return ConfigError(
        f"Setting RLM.{name} cannot be {value!r}: {exc}",
        fix="`%config RLM` shows the type and allowed values of every setting",
        setting=f"RLM.{name}",
    )


def check_range(trait: TraitType[Any, Any], value: Any) -> Any:
    """``value`` when it is in the range of the setting ``trait`` (None, where allowed, always is)."""
    name = str(trait.name)
    allowed = RANGES[name]
    if value is None or allowed.admits(value):
        return value
    none = ", or None for no limit" if trait.allow_none else ""
    raise SettingValueError(
        ConfigError(
            f"RLM.{name} = {value!r} is out of range: it must be {allowed}",
            fix=f"Use a value that is {allowed}{none}, e.g. %config RLM.{name} = "
            f"{trait.default_value!r} (the default)",
            setting=f"RLM.{name}",
        )
    )


def check_prices(prices: Mapping[str, Any]) -> Mapping[str, Any]:
    """``RLM.prices`` when every price is numbers of at least 0 under known keys: checked when set,
    since a bad one would raise in the middle of a run, when a call's cost is added up."""
    for model, price in prices.items():
        numbers = isinstance(price, Mapping) and all(
            key in _PRICE_KEYS
            and isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
            and v >= 0
            for key, v in price.items()
        )
        if not numbers:
            raise SettingValueError(
                ConfigError(
                    f"RLM.prices[{model!r}] = {price!r} is not a price",
                    fix="Give USD per million tokens, numbers of at least 0 under 'input', "
                    "'output' and optionally 'cached_input', e.g. %config RLM.prices = "
                    "{'gpt-5-mini': {'input': 0.25, 'output': 2.0}}",
                    setting="RLM.prices",
                )
            )
    return prices
