"""``%rlm models`` and ``rlm-kernel models``: the models the endpoint lists, the configured ones marked.

The list is the endpoint's own ``GET /models``, asked through the ``openai`` SDK (``OpenAIClient.
models``): once, with no retries and a 10 s limit, since it answers a person waiting at a prompt.
The root model (``RLM.model``) and the sub model (``RLM.sub_model``, else the root) are marked, and a
configured model the endpoint does not list is shown too, flagged, since a run with it would fail at
its first call. Each row carries the price a call of it is charged at when the endpoint reports no
cost (``_pricing``: ``RLM.prices``, then genai-prices' table), or none. An endpoint that is down or
keeps no list raises the client's ``ModelError`` (what happened, and the fix).
"""

from __future__ import annotations

import argparse
import html
import sys
from dataclasses import dataclass
from typing import Any

from . import _pricing
from ._config import RLM

__all__ = ["ModelListing", "ModelRow", "add_models_command", "list_models", "models_command"]


@dataclass(frozen=True)
class ModelRow:
    """One model: its name, the roles the settings give it, whether the endpoint lists it, its price."""

    name: str
    roles: tuple[str, ...]  # "root", "sub"
    listed: bool
    price: _pricing.Rates | None

    @property
    def marks(self) -> str:
        """The roles and the missing flag as a few words (``root, sub``; ``root, not listed``)."""
        return ", ".join([*self.roles, *([] if self.listed else ["not listed"])])

    @property
    def price_text(self) -> str:
        """``$in / $out per M tokens (source)``, or an empty string when the price is unknown."""
        p = self.price
        if p is None:
            return ""
        return f"${p.input:g} / ${p.output:g} per M tokens ({p.source})"


@dataclass(frozen=True)
class ModelListing:
    """What ``GET /models`` answered at ``endpoint``, with the configured models marked."""

    endpoint: str
    rows: tuple[ModelRow, ...]

    def __str__(self) -> str:
        width = max((len(r.name) for r in self.rows), default=0)
        head = f"{len(self.rows)} model(s) at {self.endpoint}"
        lines = [head]
        for row in self.rows:
            marks = f"  [{row.marks}]" if row.marks else ""
            price = f"  {row.price_text}" if row.price else ""
            lines.append(f"  {row.name:<{width}}{marks}{price}".rstrip())
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><td><code>{html.escape(r.name)}</code></td><td>{html.escape(r.marks)}</td>"
            f"<td>{html.escape(r.price_text)}</td></tr>"
            for r in self.rows
        )
        return (
            f"<div class='rlm-models'><p>{len(self.rows)} model(s) at "
            f"<code>{html.escape(self.endpoint)}</code></p><table><thead><tr><th>model</th>"
            f"<th>configured as</th><th>price when the endpoint reports none</th></tr></thead>"
            f"<tbody>{cells}</tbody></table></div>"
        )


def list_models(config: RLM) -> ModelListing:
    """The endpoint's models (``GET /models``), the root and sub models of ``config`` marked."""
    from .models.openai import OpenAIClient  # only now: the SDK is slow to import

    client = OpenAIClient(config)
    names = client.models()
    roles: dict[str, list[str]] = {}
    if config.model:
        roles.setdefault(config.model, []).append("root")
    sub = config.effective_sub_model()
    if sub:
        roles.setdefault(sub, []).append("sub")
    listed = set(names)
    # The configured models first (what a person looks for), then the rest as the endpoint sent them.
    order = [*[n for n in roles if n not in listed], *sorted(names, key=lambda n: n not in roles)]
    base_url = config.base_url or "https://api.openai.com/v1"
    rows = tuple(
        ModelRow(
            name,
            tuple(roles.get(name, ())),
            name in listed,
            _pricing.rates(
                name, prices=config.prices, base_url=base_url, table=config.known_prices
            ),
        )
        for name in dict.fromkeys(order)
    )
    return ModelListing(client.endpoint, rows)


def add_models_command(commands: Any) -> None:
    """``rlm-kernel models`` on the CLI's subcommands."""
    parser = commands.add_parser(
        "models",
        help="list the endpoint's models (GET /models), marking the root and sub models",
        description="List the models the endpoint serves, marking RLM.model (root) and "
        "RLM.sub_model (sub), with the price used when the endpoint reports no cost.",
    )
    parser.add_argument("--model", help="root model to mark (RLM.model)")
    parser.add_argument("--sub-model", help="sub model to mark (RLM.sub_model)")
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint (RLM.base_url)")


def models_command(args: argparse.Namespace) -> int:
    """Run ``rlm-kernel models``: print the listing; a ``ModelError`` goes to the CLI's handler."""
    given = {"model": args.model, "sub_model": args.sub_model, "base_url": args.base_url}
    config = RLM().with_overrides({k: v for k, v in given.items() if v is not None})
    print(list_models(config), file=sys.stdout)
    return 0
