"""What goes into a chat-completions request besides the model and the messages: ``RLM.model_kwargs``.

``model_kwargs`` is written as ``chat.completions.create`` takes its keywords: body fields (``top_p``,
``seed``, ``reasoning_effort``, …) next to ``extra_body``, ``extra_headers`` and ``extra_query``. The
client posts plain bodies, so ``split`` sorts them into the body fields, the headers and the query
parameters. Fields rlm_kernel sets itself are refused rather than silently overridden one way or the
other. No SDK import here: this is plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

# Request fields rlm_kernel sets itself, with the setting that controls each one.
OWN_FIELDS = {
    "model": "RLM.model / RLM.sub_model",
    "messages": "none: the session builds every prompt",
    "stream": "RLM.stream",
    "stream_options": "RLM.stream",
    "temperature": "RLM.temperature",
    "max_tokens": "RLM.max_completion_tokens",
    "max_completion_tokens": "RLM.max_completion_tokens",
    "timeout": "RLM.request_timeout",
    "tools": "sub_tools= (rlm_kernel.run, Session): the tools sub-calls may call",
}
_MAPPINGS = ("extra_body", "extra_headers", "extra_query")


@dataclass(frozen=True)
class RequestExtras:
    """``model_kwargs`` sorted: body fields, HTTP headers and URL query parameters."""

    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)


def _problem(what: str, fix: str) -> ConfigError:
    return ConfigError(what, fix=fix, setting="RLM.model_kwargs")


def split(model_kwargs: Mapping[str, Any]) -> RequestExtras:
    """Check ``model_kwargs`` and sort it; a ConfigError says what is wrong and what to write."""
    for name in _MAPPINGS:
        value = model_kwargs.get(name)
        if value is not None and not isinstance(value, Mapping):
            raise _problem(
                f"RLM.model_kwargs[{name!r}] must be a dict, not {type(value).__name__}",
                f"Write it like {{{name!r}: {{'name': 'value'}}}}",
            )
    extra_body = dict(model_kwargs.get("extra_body") or {})
    body = {k: v for k, v in model_kwargs.items() if k not in _MAPPINGS}
    clashes = sorted(n for n in OWN_FIELDS if n in body or n in extra_body)
    if clashes:
        instead = "; ".join(f"{n}: {OWN_FIELDS[n]}" for n in clashes)
        raise _problem(
            f"RLM.model_kwargs sets {', '.join(clashes)}, which rlm_kernel sets itself",
            f"Remove {'them' if len(clashes) > 1 else 'it'} from RLM.model_kwargs and use the "
            f"setting instead ({instead})",
        )
    headers = dict(model_kwargs.get("extra_headers") or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise _problem(
            "RLM.model_kwargs['extra_headers'] must map header names to strings",
            "Write every header value as a string, e.g. {'X-Request-Source': 'rlm'}",
        )
    # extra_body last, as the SDK merges it over the other fields.
    return RequestExtras(
        {**body, **extra_body}, headers, dict(model_kwargs.get("extra_query") or {})
    )
