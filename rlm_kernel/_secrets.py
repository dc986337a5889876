"""Keep secrets out of everything rlm_kernel writes or sends to a model.

The model's code runs with the process environment, so it can print an API key. Every observation sent
back to the model and every trajectory line passes through ``Redactor.scrub``. Secrets are the values
given, the values of variables whose names say they are secret (environment and ``./.env``), and the
credentials inside any URL among them (``https://user:pw@host``, ``?api-key=…``), such as a
``base_url`` or a proxy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

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


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        from ._config import read_dotenv  # the settings module imports this one

        found = {s for s in secrets if s}
        # Both: a .env value that differs from the environment's is one the code can read too.
        variables = [*read_dotenv(Path.cwd() / ".env").items(), *os.environ.items()]
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
