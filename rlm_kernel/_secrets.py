"""Keep secrets out of everything rlm_kernel writes or sends to a model.

The model's code runs with the process environment, so it can print an API key. Every observation sent
back to the model and every trajectory line passes through ``Redactor.scrub``. Secrets are the values
given, the values of variables whose names say they are secret (the environment, and the same ``.env``
file the settings read: ``_environment.dotenv``), and the credentials inside any URL among them
(``https://user:pw@host``, ``?api-key=…``), such as a ``base_url`` or a proxy. Settings are recorded
through ``redact_url`` and ``redact_kwargs``, which drop credentials before anything is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from ._environment import dotenv

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
# Query parameters that carry credentials: api-key=, access_token=, sig= (signed URLs), auth=.
_SECRET_PARAM = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|SIG|AUTH)", re.IGNORECASE)
REDACTED = "[redacted]"
_MIN_URL_SECRET = 6  # a URL password is a secret even when short; 8 for values named as secrets


def url_secrets(url: str | None) -> list[str]:
    """The credentials in a URL, as written and decoded: its password and secret-named query values.

    A user name is not a secret ("postgres"), and scrubbing it would blank the word everywhere.
    """
    if not url or "://" not in url:
        return []
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
    except ValueError:
        return []
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        if _SECRET_PARAM.search(unquote_plus(name)):
            found.append(value)
    found += [unquote_plus(s) for s in found]
    return list(dict.fromkeys(s for s in found if s))


def redact_url(url: str) -> str:
    """``url`` without its credentials (user and password, secret-named query values), to record."""
    if not url_secrets(url):
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    query = urlencode(
        [(k, REDACTED if _SECRET_PARAM.search(k) else v) for k, v in parse_qsl(parts.query)]
    )
    return urlunsplit((parts.scheme, host, parts.path, query, parts.fragment))


# Under these names in RLM.model_kwargs every value is a credential candidate (Authorization, api-key,
# Cookie, a gateway's own header): header names are kept, values never recorded.
_ALL_VALUES_SECRET = frozenset({"extra_headers", "headers"})


def redact_kwargs(value: Any, *, name: str = "") -> Any:
    """``value`` (RLM.model_kwargs, or a part of it) as it may be recorded: header values and values
    under secret-looking names replaced by ``[redacted]``, URLs without their credentials."""
    if isinstance(value, Mapping):
        if name.lower() in _ALL_VALUES_SECRET:
            return {str(k): REDACTED for k in value}
        # A number under a secret-looking name is a limit ("budget_tokens"), not a credential.
        return {
            str(k): REDACTED
            if _SECRET_PARAM.search(str(k)) and not isinstance(v, int | float)
            else redact_kwargs(v, name=str(k))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_kwargs(v, name=name) for v in value]
    if isinstance(value, str):
        return redact_url(value)
    return value


def kwargs_secrets(value: Any, *, name: str = "") -> list[str]:
    """The values ``redact_kwargs`` would drop, for a ``Redactor`` (header values, secret-named values,
    URL credentials)."""
    found: list[str] = []
    if isinstance(value, Mapping):
        every = name.lower() in _ALL_VALUES_SECRET
        for k, v in value.items():
            if (every or _SECRET_PARAM.search(str(k))) and isinstance(v, str):
                found += [v, v.split()[-1]] if v.strip() else []  # "Bearer <token>": the token too
            else:
                found += kwargs_secrets(v, name=str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            found += kwargs_secrets(v, name=name)
    elif isinstance(value, str):
        found += url_secrets(value)
    return found


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        found = {s for s in secrets if s}
        # Both: a .env value that differs from the environment's is one the code can read too.
        variables = [*dotenv().items(), *os.environ.items()]
        found.update(value for name, value in variables if _SECRET_NAME.search(name))
        found = {s for s in found if len(s) >= 8}
        for value in [*found, *(v for _, v in variables)]:
            in_url = [s for s in url_secrets(value) if len(s) >= _MIN_URL_SECRET]
            if in_url:  # the whole URL too (DATABASE_URL=postgres://app:pw@db/x), and its password
                found.update([value, *in_url])
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted(found, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text
