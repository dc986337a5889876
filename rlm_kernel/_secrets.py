"""Keep secrets out of everything rlm_kernel writes or sends to a model, and decide where the key goes.

The model's code runs with the process environment, so it can print an API key. Every observation sent
back to the model, every sub-model prompt and every trajectory line (so every export) passes through
``Redactor.scrub``. What it replaces by ``[redacted]``:

**Known values.** The values given (the API key, credentials in ``base_url``, header values in
``model_kwargs``), the values of variables whose names say they are secret (the environment and the
same ``.env`` file the settings read, ``_environment.dotenv``: names containing KEY, TOKEN, SECRET,
PASSWORD, PASSWD, CREDENTIAL, WEBHOOK, PRIVATE or COOKIE, or with PAT, AUTH or OAUTH as a ``_``-separated
word, so PATH and GIT_AUTHOR_NAME are not), the values of any variable that holds a credential shape
(below), whatever its name, and the credentials inside any URL among them (``https://user:pw@host``,
``?api-key=…``). Values shorter than 8 characters are left alone: they are words, not keys. Each known
value is scrubbed as written and in the simple encodings of it:

- reversed;
- spaced: its letters and digits one at a time with 1–10 other characters between them (a JSON escape
  counting as one) (``" ".join(key)``, ``"\\n".join(key)``, ``str(list(key))``), forwards or reversed;
- base64, standard and URL-safe alphabets, padded or not: a value inside a longer encoded string starts
  at one of three byte alignments, and for each the characters that depend on the value alone (its
  stable middle) are matched, so ``b64encode(b"x" + key)`` is caught as well as ``b64encode(key)``;
- hex, lower and upper case (``key.encode().hex()``);
- fragments: any piece of at least ``max(8, len // 3)`` characters (a third of a 51-character key is 17),
  so a key printed in halves or thirds is caught, forwards or reversed. Only for values that look like
  tokens: 16 characters or more, letters *and* digits, nothing but ``A–Z a–z 0–9 _ - + / = . ~``, not
  starting with ``/ ~ .`` (a path). A passphrase, a URL, a path or a short password gets no fragment
  matching, because a third of ``correct-horse-battery`` or of ``https://api.example.com/?key=…`` is
  ordinary text.

**Credential shapes**, whoever's they are (``SHAPES``): GitHub tokens (``ghp_ gho_ ghu_ ghs_ ghr_
github_pat_``), GitLab (``glpat-``), OpenAI and Anthropic keys (``sk-…``, ``sk-proj-…``, ``sk-ant-…``),
Slack tokens (``xox[abposr]-…``) and webhook URLs (``hooks.slack.com/services/…``), Discord webhooks,
AWS access key ids (``AKIA…``/``ASIA…``), Google API keys (``AIza…``), Stripe (``sk_live_ rk_live_ sk_test_
…``), Hugging Face (``hf_…``), npm (``npm_…``), PyPI (``pypi-AgEI…``), JWTs (``eyJ….eyJ….sig``), PEM
private key blocks, ``Bearer <token>``, and the password of any ``scheme://user:password@`` URL.

Why our own patterns and not Yelp's ``detect-secrets`` (the maintained library of such patterns): it is
a line scanner that reports findings, not a redactor, and its plugin settings are process-global (one
session's choice would be every thread's). Measured over 1 MB of Python source, ``scan_line`` per line
with its eight plugins for these formats took 1.1 s; the table here takes ~25 ms. Its patterns lack
Anthropic, Hugging Face, Google and fine-grained GitHub tokens, and its OpenAI pattern needs the legacy
``T3BlbkFJ`` marker (1.5.0, May 2024); it would also bring PyYAML and requests as dependencies. The
table is short: each pattern starts with a literal and has possessive runs, so each is linear.

**Speed.** Every pattern is compiled once (module level); a ``Redactor`` holds plain strings to find
with ``str.find`` (C speed: 17 scans for a 56-character key) and shares the compiled patterns. Measured
on 1 MB of mixed Python source and base64 (2 CPU cores shared with other work, medians of 7): the
exact-string scrubber this replaced took ~1 ms for ten secrets; this one takes ~30 ms with no known
secret (the shapes), ~60 ms with one (the spaced-run pass starts) and ~130 ms with ten: ~5–8 ms a
known secret. A step's output of a few kilobytes costs well under a millisecond.

Settings are recorded through ``redact_url`` and ``redact_kwargs``, which drop credentials before
anything is written. Where the key may be sent is ``key_withheld``; see docs/security.md.
"""

from __future__ import annotations

import base64
import bisect
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from ._environment import dotenv, env_value

_SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|WEBHOOK|PRIVATE|COOKIE|(?:^|_)(?:PAT|AUTH|OAUTH)(?:_|$)",
    re.IGNORECASE,
)
# Query parameters that carry credentials: api-key=, access_token=, sig= (signed URLs), auth=.
_SECRET_PARAM = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|SIG|AUTH)", re.IGNORECASE)
REDACTED = "[redacted]"
_MIN_SECRET = 8  # a known value shorter than this is a word ("admin", "true"), not a credential
_MIN_URL_SECRET = 6  # a URL password is a secret even when short
_MIN_FRAGMENT_SOURCE = (
    16  # values shorter than this are matched whole (and encoded), never in pieces
)
# Letters and digits, token characters only, and not a path (KEY_FILE=/home/ada2/keys/id.pem: a third
# of it, "/home/ada2/k", is in every listing of that home directory).
_TOKENLIKE = re.compile(r"(?![/~.])(?=[^0-9]*[0-9])(?=[^A-Za-z]*[A-Za-z])[A-Za-z0-9_\-+/=.~]+")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")


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


# --- where the key may go ------------------------------------------------------------------------

OPENAI_HOST = "api.openai.com"


def is_local_host(host: str) -> bool:
    """Whether ``host`` is this machine: localhost, a loopback address (127.0.0.0/8, ::1), or the
    unspecified address (0.0.0.0, ::), which connects to this machine and which servers print as the
    address they listen on (``Uvicorn running on http://0.0.0.0:8000``). Names are not resolved."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.partition("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return any(a.is_loopback or a.is_unspecified for a in filter(None, [address, mapped]))


def url_host(url: str | None) -> str:
    """The host of ``url``, lower case ("" for none or one that does not parse)."""
    try:
        return (urlsplit(url or "").hostname or "").rstrip(".").lower()
    except ValueError:
        return ""


def key_withheld(base_url: str, *, default_key: bool, base_url_given: bool) -> str | None:
    """Why the default key (``OPENAI_API_KEY``, not named by the user) is not sent to ``base_url``,
    or None when it may be.

    An OpenAI key is sent to OpenAI (no ``base_url``, or one on api.openai.com), to the host the
    environment pairs it with (``OPENAI_BASE_URL``, environment or .env: the openai SDK's own pairing),
    and to this machine (a loopback server: the key does not leave it). A ``base_url`` set through
    rlm_kernel's settings that points elsewhere is a third party: the key in the environment for
    OpenAI is not its to see unless ``RLM.api_key_env`` was set, which says which key that endpoint gets.
    """
    if not default_key or not base_url_given:
        return None
    host = url_host(base_url)
    if not host or host == OPENAI_HOST or is_local_host(host):
        return None
    if host == url_host(env_value("OPENAI_BASE_URL")):
        return None
    return (
        f"RLM.base_url points at {host}, which is not {OPENAI_HOST}, not a loopback address (names "
        "are not resolved) and not the host of OPENAI_BASE_URL, and RLM.api_key_env was not set: "
        "rlm_kernel does not send the OpenAI key in OPENAI_API_KEY to another endpoint"
    )


# --- credential shapes -----------------------------------------------------------------------------


def _has_long_run(token: str) -> bool:
    """A bare ``sk-`` key has a run of 20 letters and digits; kebab-case words do not."""
    return re.search(r"[A-Za-z0-9]{20}", token) is not None


@dataclass(frozen=True)
class Shape:
    """One credential format. ``needles``: literals one of which every match contains, looked for
    with ``in`` first, so text without them costs the regex nothing (an alternation of all the
    patterns scans 1 MB in ~600 ms; the needles and the patterns that start with them, in ~15 ms).
    The secret is the group ``secret`` where there is one (a URL's password: the user name stays),
    else the whole match. ``valid`` rejects look-alikes."""

    name: str
    needles: tuple[str, ...]
    pattern: str
    valid: Callable[[str], bool] | None = None
    lead: int = 0  # characters of the secret before where the pattern starts

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    def spans(self, text: str) -> list[tuple[int, int]]:
        if not any(needle in text for needle in self.needles):
            return []
        group = "secret" if "(?P<secret>" in self.pattern else 0
        return [
            (m.start(group) - self.lead, m.end(group))
            for m in self.regex.finditer(text)
            if self.valid is None or self.valid(m.group(group))
        ]


# A prefix must start a word ("task-…" holds no key): each pattern begins with its literal, for the
# regex engine's fast prefix search, and looks behind it for the boundary. Runs are possessive, so
# no input makes a pattern backtrack: each is linear in the text.
_WORD = "[A-Za-z0-9_]"
SHAPES: tuple[Shape, ...] = (
    Shape(
        "github",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        rf"gh[pousr]_(?<!{_WORD}.{{4}})[A-Za-z0-9]{{36,}}+",
    ),
    Shape(
        "github_fine_grained",
        ("github_pat_",),
        rf"github_pat_(?<!{_WORD}.{{11}})[A-Za-z0-9_]{{30,}}+",
    ),
    Shape("gitlab", ("glpat-",), rf"glpat-(?<!{_WORD}.{{6}})[A-Za-z0-9_\-]{{20,}}+"),
    # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-) and Anthropic (sk-ant-api03-…).
    Shape("openai", ("sk-",), rf"sk-(?<!{_WORD}...)[A-Za-z0-9_\-]{{20,}}+", _has_long_run),
    Shape("slack_token", ("xox",), rf"xox[abposr]-(?<!{_WORD}.{{5}})[A-Za-z0-9\-]{{10,}}+"),
    Shape(
        "slack_webhook",
        ("hooks.slack.com/",),
        r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]{8,}+",
    ),
    Shape(
        "discord_webhook",
        ("/api/webhooks/",),
        r"/api/webhooks/[0-9]+/[A-Za-z0-9_\-]{20,}+",
    ),
    Shape(
        "aws_access_key_id",
        ("AKIA", "ASIA", "ABIA", "ACCA"),
        r"A(?:KIA|SIA|BIA|CCA)(?<![A-Z0-9]....)[A-Z0-9]{16}(?![A-Za-z0-9])",
    ),
    Shape("google", ("AIza",), rf"AIza(?<!{_WORD}....)[0-9A-Za-z_\-]{{35}}"),
    # Starts at its "k_" for the fast prefix search (a lookbehind first makes it ~25 times slower).
    Shape(
        "stripe",
        ("k_live_", "k_test_"),
        rf"k_(?:live|test)_(?<=[sr]k_.{{4}}_)(?<!{_WORD}.{{8}})[0-9A-Za-z]{{16,}}+",
        lead=1,
    ),
    Shape("huggingface", ("hf_",), rf"hf_(?<!{_WORD}...)[A-Za-z0-9]{{30,}}+"),
    Shape("npm", ("npm_",), rf"npm_(?<!{_WORD}....)[A-Za-z0-9]{{36,}}+"),
    Shape("pypi", ("pypi-AgEI",), r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{40,}+"),
    Shape(
        "jwt",
        ("eyJ",),
        rf"eyJ(?<!{_WORD}...)[A-Za-z0-9_\-]{{8,}}+\.eyJ[A-Za-z0-9_\-]{{8,}}+\.[A-Za-z0-9_\-]*+",
    ),
    # The body may be JSON-escaped (a trajectory line): backslashes are base64's neighbours then. A
    # block cut short (no END line) is redacted as far as it goes.
    Shape(
        "private_key",
        ("PRIVATE KEY",),
        r"-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[A-Za-z0-9+/=\s:,.\\]|-(?!----))*+(?:-----END [A-Z0-9 ]{0,40}-----)?",
    ),
    Shape(
        "bearer",
        ("earer",),
        r"earer(?<=[Bb]earer)(?<![A-Za-z0-9]......)\s{1,4}+(?P<secret>[A-Za-z0-9._~+/\-]{16,}+=*+)",
    ),
    Shape(
        "url_password",
        ("://",),
        r"://[^\s:/@\"'\\]{1,256}+:(?P<secret>[^\s/@\"'\\]{1,256}+)@",
    ),
)


# Letters and digits one at a time with separators between them, 8 or more: " ".join(key),
# str(list(key)). A separator is 1–10 other characters, counting a JSON escape (``\\n``, ``\\u00a0``)
# as one, so the runs are found in a trajectory line too.
_SEPARATOR = r'(?:[^A-Za-z0-9\\]|\\[nrtbf"\\/]|\\u[0-9A-Fa-f]{4}|\\)'
_SPACED = re.compile(
    r"(?:(?<![A-Za-z0-9])|(?<=\\[nrtbf]))[A-Za-z0-9]"
    rf"(?:{_SEPARATOR}{{1,10}}+[A-Za-z0-9](?![A-Za-z0-9])){{7,}}+"
)
_SEPARATORS = re.compile(_SEPARATOR + "+")
# ``_SPACED`` tries every letter of the text (~50 ms a MB). Where runs may be is found first in a
# two-letter copy of the text, "a" for a letter or digit and " " for anything else (JSON escapes
# included), in which a run's inner letters are the literal " a " that the regex engine scans for
# fast: ~7 ms a MB in all.
_SHADOW = bytes(ord("a") if chr(i).isascii() and chr(i).isalnum() else ord(" ") for i in range(256))
_ESCAPES = (b"\\n", b"\\t", b"\\r", b'\\"', b"\\\\", b"\\/", b"\\b", b"\\f")
_UNICODE_ESCAPE = re.compile(rb"\\u[0-9A-Fa-f]{4}")
_SHADOW_RUN = re.compile(rb" a (?: {0,9}+a ){5,}+")
_SHADOW_MARGIN = 16  # a run's first letter and separator, and a last letter the shadow may miss


def _spaced_runs(text: str) -> list[re.Match[str]]:
    """The spaced runs in ``text`` (``_SPACED``), looked for only where its shadow has some."""
    shadow = text.encode("ascii", "replace")  # one byte a character: positions stay the same
    for escape in _ESCAPES:
        if escape in shadow:
            shadow = shadow.replace(escape, b"  ")
    if b"\\u" in shadow:
        shadow = _UNICODE_ESCAPE.sub(b"      ", shadow)
    runs: list[re.Match[str]] = []
    for candidate in _SHADOW_RUN.finditer(shadow.translate(_SHADOW)):
        start = max(candidate.start() - _SHADOW_MARGIN, runs[-1].end() if runs else 0)
        end = min(candidate.end() + _SHADOW_MARGIN, len(text))
        runs += _SPACED.finditer(text, start, end)
    return runs


def shaped_secrets(text: str) -> list[str]:
    """The credentials of a known shape in ``text`` (``SHAPES``)."""
    return [text[start:end] for shape in SHAPES for start, end in shape.spans(text)]


# --- known values and their encodings --------------------------------------------------------------


class _Form:
    """One way a secret may be written (as is, reversed, base64…), and the shortest piece of it that
    counts (its whole length, or a fragment's). Found by ``str.find`` of anchor blocks: any piece of
    ``least`` characters contains one whole block of ``(least + 1) // 2`` taken at multiples of that
    length, so finding the blocks and growing each hit against the form finds every such piece."""

    __slots__ = ("anchors", "least", "text")

    def __init__(self, text: str, least: int) -> None:
        self.text, self.least = text, least
        if least >= len(text):
            self.anchors: tuple[tuple[str, int], ...] = ((text, 0),)
        else:
            size = (least + 1) // 2
            starts = range(0, len(text) - size + 1, size)
            self.anchors = tuple((text[i : i + size], i) for i in starts)

    def spans(self, text: str) -> list[tuple[int, int]]:
        form = self.text
        found: list[tuple[int, int]] = []
        starts: list[int] = []  # of spans found, sorted: a hit inside one is the same piece again
        for block, offset in self.anchors:
            at = text.find(block)
            while at != -1:
                i = bisect.bisect_right(starts, at) - 1
                if i < 0 or found[i][1] < at + len(block):
                    left = 0
                    while (
                        left < offset
                        and left < at
                        and text[at - left - 1] == form[offset - left - 1]
                    ):
                        left += 1
                    end, after, right = at + len(block), offset + len(block), 0
                    while (
                        after + right < len(form)
                        and end + right < len(text)
                        and text[end + right] == form[after + right]
                    ):
                        right += 1
                    if left + len(block) + right >= self.least:
                        span = (at - left, end + right)
                        i = bisect.bisect_right(starts, span[0])
                        starts.insert(i, span[0])
                        found.insert(i, span)
                at = text.find(block, at + 1)
        return found


def _fragment_length(secret: str) -> int:
    """The shortest piece of ``secret`` that is scrubbed: ``max(8, len // 3)`` for a token-like value,
    else the whole value (see the module docstring)."""
    if len(secret) >= _MIN_FRAGMENT_SOURCE and _TOKENLIKE.fullmatch(secret):
        return max(_MIN_SECRET, len(secret) // 3)
    return len(secret)


def _base64_middles(data: bytes) -> set[str]:
    """The characters of ``data``'s base64 that depend on ``data`` alone, at each of the three byte
    alignments it can have inside a longer encoded string, in both alphabets."""
    found = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data + bytes(3)).decode()
        first = -(-8 * offset // 6)  # the first character whose six bits all come from data
        last = 8 * (offset + len(data)) // 6  # one past the last such character
        middle = encoded[first:last]
        if len(middle) >= _MIN_SECRET:
            found.update({middle, middle.replace("+", "-").replace("/", "_")})
    return found


def _forms(secret: str) -> list[_Form]:
    least = _fragment_length(secret)
    data = secret.encode("utf-8", "surrogatepass")
    forms = [_Form(secret, least), _Form(secret[::-1], least)]
    forms += [_Form(m, len(m)) for m in sorted(_base64_middles(data))]
    forms += [_Form(data.hex(), 2 * len(data)), _Form(data.hex().upper(), 2 * len(data))]
    return forms


def _json_safe(text: str, start: int, end: int) -> tuple[int, int]:
    """A span widened so as not to cut a backslash escape in two: scrubbed text may be JSON (a
    trajectory line), and ``\\[redacted]`` or a lone trailing backslash would break it."""
    run = 0
    while start - run > 0 and text[start - run - 1] == "\\":
        run += 1
    if run % 2:
        start -= 1
    run = 0
    while end - run > start and text[end - run - 1] == "\\":
        run += 1
    if run % 2:
        end += 1 if end < len(text) else 0
    return start, end


def _environment_secrets() -> set[str]:
    """Values in the environment and .env that are secret by name or hold a credential shape."""
    found = set()
    # Both: a .env value that differs from the environment's is one the code can read too.
    variables = [*dotenv().items(), *os.environ.items()]
    for name, value in variables:
        if _SECRET_NAME.search(name):
            found.add(value)
        found.update(shaped_secrets(value))
    found = {s for s in found if len(s) >= _MIN_SECRET}
    for value in [*found, *(v for _, v in variables)]:
        in_url = [s for s in url_secrets(value) if len(s) >= _MIN_URL_SECRET]
        if in_url:  # the whole URL too (DATABASE_URL=postgres://app:pw@db/x), and its password
            found.update([value, *in_url])
    return found


class Redactor:
    """Replaces known secrets (in their simple encodings) and credential shapes by ``[redacted]``."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        found = {s for s in secrets if s and len(s) >= _MIN_SECRET} | _environment_secrets()
        self.secrets = sorted(found, key=len, reverse=True)
        self._forms = [form for secret in self.secrets for form in _forms(secret)]
        # Spaced runs are compared by their letters and digits: the separators are anybody's.
        spaced: dict[str, int] = {}
        for secret in self.secrets:
            plain = _NOT_ALNUM.sub("", secret)
            if len(plain) >= _MIN_SECRET:
                least = _fragment_length(secret) * len(plain) // len(secret)
                for text in (plain, plain[::-1]):
                    spaced[text] = min(spaced.get(text, len(text)), max(_MIN_SECRET, least))
        self._spaced = [_Form(text, least) for text, least in spaced.items()]

    def scrub(self, text: str) -> str:
        """``text`` with every secret and credential shape replaced by ``[redacted]``."""
        if len(text) < _MIN_SECRET:  # shorter than any secret or shape
            return text
        spans = [span for form in self._forms for span in form.spans(text)]
        spans += [span for shape in SHAPES for span in shape.spans(text)]
        if spans:
            text = _replace(text, [(*_json_safe(text, s, e), REDACTED) for s, e in spans])
        if self._spaced:  # after: a spaced run never holds the "[redacted]" just written
            edits = [edit for run in _spaced_runs(text) for edit in self._spaced_edits(run)]
            if edits:
                text = _replace(text, edits)
        return text

    def _spaced_edits(self, run: re.Match[str]) -> list[tuple[int, int, str]]:
        """How to redact the secret letters in one spaced run: from the first letter of a piece that
        matches to its last, by ``[redacted]``, keeping the separators that hold a bare ``"``: in a
        JSON line those are the structure between strings, and the line must stay valid JSON."""
        chars, base = run.group(), run.start()
        letters, gaps, at = [], [], 0
        for gap in _SEPARATORS.finditer(chars):
            letters.append(at)
            gaps.append(gap.group())
            at = gap.end()
        letters.append(at)
        plain = "".join(chars[i] for i in letters)
        pieces = sorted(span for form in self._spaced for span in form.spans(plain))
        edits: list[tuple[int, int, str]] = []
        for first, end in _merged(pieces):
            kept = "".join(g for g in gaps[first : end - 1] if _bare_quote(g))
            edits.append((base + letters[first], base + letters[end - 1] + 1, REDACTED + kept))
        return edits


def _bare_quote(gap: str) -> bool:
    """Whether a separator holds a ``"`` that is not a JSON escape's."""
    return any(unit == '"' for unit in re.findall(_SEPARATOR, gap))


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in spans:
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _replace(text: str, edits: list[tuple[int, int, str]]) -> str:
    """``text`` with each span replaced; overlapping spans merge into the first one's replacement."""
    pieces, at = [], 0
    for start, end, replacement in sorted(edits):
        if end <= at:
            continue
        if start < at:  # overlaps the span just replaced: swallow the rest of it too
            at = end
            continue
        pieces += [text[at:start], replacement]
        at = end
    pieces.append(text[at:])
    return "".join(pieces)
