"""Model code that tries to leak secrets, end to end: real sessions against the loopback ScriptedServer
through the real openai SDK, with what the server received, the trajectory file and every export
checked for the secrets in any of the encodings the code used. And where the API key is sent: the
Authorization header each endpoint received.

The scrubber's own cases (every encoding and shape, false positives, speed) are
tests/unit/test_secrets.py.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import rlm_kernel
from rlm_kernel import Result
from rlm_kernel._secrets import REDACTED, is_local_host
from rlm_kernel.errors import ModelAuthError
from rlm_kernel.exporters import FORMATS
from rlm_kernel.testing import ChatRequest, Fault, ScriptedServer, fence, settings

Serve = Callable[..., ScriptedServer]

# Made up, random-looking as real ones are; none authenticates anywhere.
KEY = "sk-proj-Rk4vQ9tXw2mZ7pL1nB8cY3hJ6fD0sG5aE2uT9oI4kW7qM1xV"
GH_PAT = "ghp_" + "Zq8Wm3Rt6Yp1Lk9Vc4Xn7Bs2Hd5Jf0Ga3Qe7"
HOOK_PATH = "T0A1B2C3D4E/B0F5G6H7I8J/uV3wX9yZ2aB7cD4eF1gH6iJ0"
SLACK_WEBHOOK_URL = f"https://hooks.slack.com/services/{HOOK_PATH}"
SECRETS = {"OPENAI_API_KEY": KEY, "GH_PAT": GH_PAT, "SLACK_WEBHOOK_URL": SLACK_WEBHOOK_URL}


def probes() -> list[str]:
    """Pieces whose presence means a leak: 12 letters and digits in a row of each secret (forwards or
    backwards; looked for in text stripped to letters and digits, so spacing hides nothing), and 16
    characters of its base64 at each alignment and of its hex."""
    found: list[str] = []
    for secret in (KEY, GH_PAT, HOOK_PATH):
        for form in (secret, secret[::-1]):
            plain = "".join(c for c in form if c.isalnum())
            found += [plain[i : i + 12] for i in range(len(plain) - 11)]
    return found


def encoded_probes() -> list[str]:
    found: list[str] = []
    for secret in (KEY, GH_PAT, HOOK_PATH):
        data = secret.encode()
        for pad in (b"", b"p", b"pa"):
            encoded = base64.b64encode(pad + data).decode()[4:-4]
            found += [encoded[i : i + 16] for i in range(0, len(encoded) - 16, 3)]
        found += [data.hex()[i : i + 16] for i in range(0, 2 * len(data) - 16, 2)]
    return found


def strings(value: Any) -> Iterable[str]:
    """Every string in a JSON value: what a reader of the file sees, escapes decoded."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def leaks(texts: Iterable[str]) -> list[str]:
    text = "\n".join(texts)
    plain = "".join(c for c in text if c.isalnum())
    return [p for p in probes() if p in plain] + [p for p in encoded_probes() if p in text]


def file_strings(path: Path) -> list[str]:
    raw = path.read_text(encoding="utf-8")
    try:
        return [raw, *strings(json.loads(raw))]
    except json.JSONDecodeError:
        return [raw, *(s for line in raw.splitlines() if line for s in strings(json.loads(line)))]


LEAKING_CODE = [
    fence(
        "import base64, os\n"
        "k = os.environ['OPENAI_API_KEY']\n"
        "print(k[::-1])\n"
        "print(' '.join(k))\n"
        "print('\\n'.join(k))\n"
        "print(list(k))\n"
        "print(base64.b64encode(k.encode()).decode())\n"
        "print(base64.urlsafe_b64encode(b'pad:' + k.encode()).decode())\n"
        "print(k.encode().hex())"
    ),
    fence("half = len(k) // 2\nprint(k[:half])"),  # the halves in two steps
    fence("print(k[half:])"),
    fence(
        "pat, hook = os.environ['GH_PAT'], os.environ['SLACK_WEBHOOK_URL']\n"
        "print(pat, hook)\n"
        "print(pat[::-1], ' '.join(hook))\n"
        "print(base64.b64encode(pat.encode()).decode(), hook.encode().hex())"
    ),
    fence(
        "values = [k, k[::-1], ' '.join(k), base64.b64encode(k.encode()).decode(), k[:half],\n"
        "          k[half:], pat, pat[::-1], hook, ' '.join(hook)]\n"
        "for v in values:\n"
        "    print(llm_query('remember this: ' + v))"
    ),
    fence("FINAL(k[::-1] + ' ' + ' '.join(pat) + ' ' + hook)"),
]


@pytest.fixture
def leaky_run(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> tuple[Result, ScriptedServer]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    server = serve({"root": list(LEAKING_CODE), "sub": lambda r: f"I will remember {r.prompt}"})
    result = rlm_kernel.run("q", "ctx", **settings(server))
    assert result.reason == "final", result.message
    return result, server


def test_no_encoding_of_a_secret_reaches_the_root_or_a_sub_model(
    leaky_run: tuple[Result, ScriptedServer],
) -> None:
    result, server = leaky_run
    roots = [r for r in server.requests if r.model == "root"]
    subs = [r for r in server.requests if r.model == "sub"]
    assert len(roots) == len(LEAKING_CODE)
    assert len(subs) == 10  # every llm_query went out, its prompt scrubbed
    for request in server.requests:
        assert not leaks(strings(request.messages)), request.model
    # What the code printed did reach the model, as [redacted]: the steps ran, nothing was dropped.
    observations = [m["content"] for m in roots[-1].messages if m["role"] == "user"]
    assert sum(o.count(REDACTED) for o in observations) >= 20
    assert all(REDACTED in r.prompt for r in subs)
    assert result.answer is not None
    assert not leaks([result.answer])
    assert REDACTED in result.answer


def test_no_encoding_of_a_secret_reaches_the_trajectory_or_any_export(
    leaky_run: tuple[Result, ScriptedServer],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    result, _ = leaky_run
    assert result.path is not None
    assert not leaks(file_strings(result.path))
    # Exported with the secrets still in the environment, and after they are gone (another process,
    # another day): the record itself is clean, not only what each export scrubs again.
    for where in ("with", "without"):
        if where == "without":
            for name in SECRETS:
                monkeypatch.delenv(name)
        for fmt in FORMATS.values():
            path = result.trajectory.export(tmp_path / where / f"run{fmt.suffixes[0]}")
            assert not leaks(file_strings(path)), (where, fmt.name)
            assert REDACTED in path.read_text(encoding="utf-8"), fmt.name


# --- where the API key goes ----------------------------------------------------------------------


def this_machine_by_name() -> tuple[str, str]:
    """A name of this machine that is not a loopback literal, and its address: an endpoint there is
    "another host" to rlm_kernel (names are not resolved to decide), yet the loopback server can
    listen at it."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        pytest.skip(f"this machine's name {name!r} does not resolve")
    if is_local_host(name):
        pytest.skip(f"this machine's name {name!r} reads as a loopback name")
    return name, address


def guarded(needed: str) -> Callable[[ChatRequest], Any]:
    """An endpoint that answers only requests bearing ``needed``, as a real one checks its key."""

    def answer(request: ChatRequest) -> Any:
        if request.headers.get("authorization") != f"Bearer {needed}":
            return Fault.status_code(401)
        return fence("FINAL('ok')")

    return answer


def third_party(serve: Serve, needed: str) -> tuple[ScriptedServer, str]:
    name, address = this_machine_by_name()
    server = serve({"root": guarded(needed)}, host=address)
    return server, f"http://{name}:{urlsplit(server.base_url).port}/v1"


def authorizations(server: ScriptedServer) -> set[str]:
    return {r.headers.get("authorization", "") for r in server.requests}


def test_the_openai_key_is_not_sent_to_another_endpoint_and_the_401_says_why(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server, url = third_party(serve, KEY)
    result = rlm_kernel.run("q", "ctx", **settings(server, base_url=url))
    assert isinstance(result.error, ModelAuthError), result.message
    assert KEY not in "".join(authorizations(server))  # the header went, without the key
    message = str(result.error)
    assert "sent no API key" in message
    assert urlsplit(url).hostname in message
    assert "RLM.api_key_env = 'OPENAI_API_KEY'" in message  # the fix, word for word
    assert "OPENAI_BASE_URL" in message


@pytest.mark.parametrize("how", ["api_key_env named", "OPENAI_BASE_URL pairs them"])
def test_the_openai_key_goes_where_the_user_said_it_goes(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server, url = third_party(serve, KEY)
    if how == "api_key_env named":
        overrides = {"base_url": url, "api_key_env": "OPENAI_API_KEY"}
    else:  # the SDK's own pairing: the environment names this host beside the key
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        overrides = {"base_url": url}
    result = rlm_kernel.run("q", "ctx", **settings(server, **overrides))
    assert result.answer == "ok", result.message
    assert authorizations(server) == {f"Bearer {KEY}"}


def test_an_endpoint_with_its_own_key_gets_that_key_and_never_openais(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = "tg-" + "Pq7Rs2Tu9Vw4Xy1Za6Bc3De8Fg5Hi0Jk"
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("GATEWAY_API_KEY", own)
    server, url = third_party(serve, own)
    result = rlm_kernel.run(
        "q", "ctx", **settings(server, base_url=url, api_key_env="GATEWAY_API_KEY")
    )
    assert result.answer == "ok", result.message
    assert authorizations(server) == {f"Bearer {own}"}


def test_a_loopback_server_gets_the_key_it_is_configured_with(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    # vLLM started with --api-key, the key exported as OPENAI_API_KEY: it never leaves this machine.
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = serve({"root": guarded(KEY)})
    result = rlm_kernel.run("q", "ctx", **settings(server))
    assert result.answer == "ok", result.message
    assert authorizations(server) == {f"Bearer {KEY}"}


@pytest.mark.parametrize("key", [None, "sk-wrong-" + "0" * 24])
def test_a_refused_key_names_the_variable_and_whether_a_key_went(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    if key:
        monkeypatch.setenv("OPENAI_API_KEY", key)
    server = serve({"root": guarded(KEY)})
    result = rlm_kernel.run("q", "ctx", **settings(server))
    assert isinstance(result.error, ModelAuthError), result.message
    message = str(result.error)
    assert "refused the API key (401)" in message
    assert "OPENAI_API_KEY" in message
    assert ("none was sent: OPENAI_API_KEY is not set" in message) is (key is None)
