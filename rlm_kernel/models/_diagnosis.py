"""What went wrong at the first contact with an endpoint, said so a person can fix it.

The SDK's own errors name the symptom ("404 Not Found", "Connection error."); the cause is usually one
of a few set-up mistakes, each with one fix: no model named, a ``base_url`` without ``/v1``, a model
name the server does not serve, a local server that is not running. No SDK import here: the client
(``openai.py``) hands over what it saw.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._secrets import is_local_host
from ..errors import (
    ConfigError,
    ModelAuthError,
    ModelConnectionError,
    ModelNotFoundError,
    ModelResponseError,
)

if TYPE_CHECKING:
    from .._config import RLM

__all__ = [
    "auth_error",
    "connection_refused",
    "credentials_problem",
    "is_local_host",  # defined with the rule it serves (where the key may go): ``_secrets``
    "lacks_version",
    "model_names",
    "no_list_error",
    "no_model_error",
    "path_error",
    "refused_error",
    "route_error",
    "unknown_model_error",
]

# A version segment in a URL path: /v1, /v1beta (Gemini's OpenAI layer), /v2, /api/v3, …
_VERSION = re.compile(r"/v\d+[a-z0-9]*(/|$)", re.IGNORECASE)
_MAX_LISTED = 20  # models named in a message; a gateway may offer hundreds


def credentials_problem(config: RLM, key: str | None) -> ConfigError | None:
    """What stops a client from being built: no key and no endpoint; for Azure, no endpoint or no key
    (named by the variables the openai SDK's AzureOpenAI reads)."""
    env = config.api_key_env
    if config.provider == "azure":
        if not config.base_url:
            return ConfigError(
                "provider='azure' needs the Azure OpenAI endpoint, and none is configured: "
                "RLM.base_url is empty and AZURE_OPENAI_ENDPOINT is not set in the environment or .env",
                fix="Set AZURE_OPENAI_ENDPOINT=https://<resource>.openai.azure.com (environment or "
                ".env), or `%config RLM.base_url = …`",
                setting="RLM.base_url",
            )
        if not key:
            return ConfigError(
                f"provider='azure' needs an API key, and {env} is not set in the environment or .env",
                fix=f"Set {env} (e.g. a line `{env}=…` in .env), or point RLM.api_key_env at the "
                "variable that holds the key",
                setting="RLM.api_key_env",
            )
        return None
    if key or config.base_url:
        return None
    return ConfigError(
        f"No API key and no base URL are configured, so there is no model to talk to: "
        f"{env} is not set in the environment or in .env, and RLM.base_url / OPENAI_BASE_URL is empty",
        fix=(
            f"For OpenAI, set {env} (e.g. `export {env}=sk-…`, or a line `{env}=sk-…` in .env). "
            "For a local or self-hosted OpenAI-compatible server (vLLM, Ollama, llama.cpp), set the "
            "endpoint instead: `%config RLM.base_url = 'http://127.0.0.1:8000/v1'`, "
            "`export OPENAI_BASE_URL=…`, or `--base-url` on the command line"
        ),
        setting=f"RLM.base_url or ${env}",
    )


def auth_error(config: RLM, status: int | None, endpoint: str) -> ModelAuthError:
    """The endpoint refused the request (401/403): the key is wrong, or none was sent, and if none
    was sent because rlm_kernel withheld OPENAI_API_KEY from a third-party endpoint, say so."""
    env = config.api_key_env
    withheld = config.key_withheld()
    if withheld is not None:
        return ModelAuthError(
            f"The endpoint refused the request ({status}) and was sent no API key: {withheld}",
            fix=f"If this endpoint should get the key in {env}, say so with "
            f"`%config RLM.api_key_env = '{env}'` (or `--set api_key_env={env}`, or set "
            "OPENAI_BASE_URL to this endpoint instead of RLM.base_url); if it has a key of its own, "
            "put that in a variable of its own and point RLM.api_key_env at it",
            endpoint=endpoint,
            setting="RLM.api_key_env",
        )
    sent = "" if config.resolve_api_key() else f" (none was sent: {env} is not set)"
    return ModelAuthError(
        f"The endpoint refused the API key ({status}){sent}",
        fix=f"Check the key in {env} (or point RLM.api_key_env at the right variable)",
        endpoint=endpoint,
        setting="RLM.api_key_env",
    )


def no_model_error() -> ConfigError:
    """No model name at all: said before any request goes out (the server would only answer 404)."""
    return ConfigError(
        "No model is configured, so there is nothing to ask: RLM.model is empty and RLM_MODEL is not "
        "set in the environment or in .env",
        fix="Name the model the endpoint serves: `%config RLM.model = 'gpt-5-mini'`, "
        "`export RLM_MODEL=…` (or a line RLM_MODEL=… in .env), `rlm_kernel.run(..., model=…)`, or "
        "`--model` on the command line",
        setting="RLM.model",
    )


def connection_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (an HTTP library's connect error) comes from a refused TCP connection."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectionRefusedError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def refused_error(host: str, port: int | None, endpoint: str) -> ModelConnectionError:
    where = f"{host}:{port}" if port else host
    return ModelConnectionError(
        f"Nothing is listening at {where} (connection refused). That is this machine, where it does "
        "not change within seconds of back-off, so the call was not retried",
        fix="Start the model server (vLLM, Ollama, llama.cpp, …), or point RLM.base_url "
        "(OPENAI_BASE_URL) at the port it listens on",
        endpoint=endpoint,
        setting="RLM.base_url",
    )


def lacks_version(path: str) -> bool:
    """Whether a URL path has no version segment such as ``/v1``."""
    return _VERSION.search(path) is None


def model_names(listing: object) -> list[str] | None:
    """The ids in a ``GET /models`` answer (``{"data": [{"id": …}, …]}``), None if it is not one."""
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        return None
    return [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]


def no_list_error(endpoint: str) -> ModelResponseError:
    """The endpoint answered, but with no model list at ``GET /models`` (``endpoint`` as shown)."""
    return ModelResponseError(
        f"The endpoint has no model list: GET {endpoint.rstrip('/')}/models answered no list of models",
        fix="Check RLM.base_url (OpenAI-compatible servers list their models under /v1/models); a "
        "server that keeps no list (Azure deployments, some proxies) still serves the models it has: "
        "name one in RLM.model",
        endpoint=endpoint,
        setting="RLM.base_url",
    )


def path_error(url: str, endpoint: str) -> ModelResponseError:
    """A 404 for ``url``, which has no ``/v1``, from a server with no model list there either;
    ``endpoint`` is the base URL as it may be shown."""
    return ModelResponseError(
        f"The endpoint answered 404 for {url}. OpenAI-compatible servers usually serve under /v1, "
        "and this base URL has no /v1 in its path",
        fix=f"Try base_url={endpoint.rstrip('/')}/v1 (`%config RLM.base_url = …`, OPENAI_BASE_URL or "
        "--base-url)",
        endpoint=endpoint,
        setting="RLM.base_url",
    )


def route_error(url: str, model: str, endpoint: str) -> ModelResponseError:
    """A 404 for ``url`` from a server whose model list does name ``model``."""
    return ModelResponseError(
        f"The endpoint answered 404 for {url}, although its model list names {model!r}",
        fix="Check that RLM.base_url is the server's OpenAI-compatible base (the URL before "
        "/chat/completions) and that the model serves chat completions",
        endpoint=endpoint,
        setting="RLM.base_url",
    )


def unknown_model_error(
    model: str, offered: Sequence[str] | None, endpoint: str, *, azure: bool = False
) -> ModelNotFoundError:
    """A 404 for ``model``; ``offered`` is what ``GET /models`` lists (None when that failed too)."""
    if azure:
        return ModelNotFoundError(
            f"Azure OpenAI has no deployment named {model!r} at this endpoint (404)",
            fix="With provider='azure', RLM.model / RLM.sub_model is the deployment name, as the Azure "
            "portal shows it; check RLM.base_url (AZURE_OPENAI_ENDPOINT) too",
            endpoint=endpoint,
            setting="RLM.model",
            model=model,
        )
    what = f"The endpoint does not serve model {model!r} (404)"
    fix = "Set RLM.model / RLM.sub_model to a model the server serves"
    if offered:
        listed = ", ".join(repr(m) for m in offered[:_MAX_LISTED])
        more = f" and {len(offered) - _MAX_LISTED} more" if len(offered) > _MAX_LISTED else ""
        what += f"; it offers {listed}{more}"
        close = difflib.get_close_matches(model, list(offered), n=3)
        if close:
            fix = f"Did you mean {' or '.join(repr(c) for c in close)}? " + fix
    elif offered is not None:
        what += "; its model list is empty"
    return ModelNotFoundError(
        what,
        fix=fix,
        endpoint=endpoint,
        setting="RLM.model",
        model=model,
        offered=list(offered or []),
    )
