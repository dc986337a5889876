"""The scrubber on its own: every encoding of a known secret, every credential shape, which variables
count as secret, no false positives on ordinary text and code, JSON kept valid, and linear time on
inputs built to make a pattern backtrack. End to end (a run, its requests and exports) is
tests/test_secrets_hostile.py."""

from __future__ import annotations

import base64
import inspect
import json
import time
from collections.abc import Callable

import pytest

from rlm_kernel._secrets import REDACTED, Redactor, key_withheld, shaped_secrets

# Random-looking, as real keys are (a made-up one: it authenticates nowhere).
KEY = "sk-proj-Rk4vQ9tXw2mZ7pL1nB8cY3hJ6fD0sG5aE2uT9oI4kW7qM1xV"
SHORT = "hunter2x9"  # 9 characters: matched whole and encoded, never in pieces


def scrubbed(text: str, *secrets: str) -> str:
    return Redactor(list(secrets) or [KEY]).scrub(text)


ENCODINGS: dict[str, Callable[[str], str]] = {
    "as is": lambda k: k,
    "reversed": lambda k: k[::-1],
    "spaced": lambda k: " ".join(k),
    "one a line": lambda k: "\n".join(k),
    "comma separated": lambda k: ", ".join(k),
    "a list's repr": lambda k: str(list(k)),
    "as a JSON list": lambda k: json.dumps(list(k)),
    "reversed and spaced": lambda k: " ".join(k[::-1]),
    "base64": lambda k: base64.b64encode(k.encode()).decode(),
    "base64 after one byte": lambda k: base64.b64encode(b"x" + k.encode()).decode(),
    "base64 after two bytes": lambda k: base64.b64encode(b"x:" + k.encode() + b"!").decode(),
    "urlsafe base64": lambda k: base64.urlsafe_b64encode(b"\xfb" + k.encode()).decode(),
    "base64 unpadded": lambda k: base64.b64encode(k.encode()).decode().rstrip("="),
    "hex": lambda k: k.encode().hex(),
    "upper-case hex": lambda k: k.encode().hex().upper(),
    "first half": lambda k: k[: len(k) // 2],
    "second half": lambda k: k[len(k) // 2 :],
    "middle third": lambda k: k[len(k) // 3 : 2 * len(k) // 3],
    "reversed half": lambda k: k[::-1][: len(k) // 2],
}


def leaked(text: str, secret: str) -> list[str]:
    """Pieces of ``secret`` (12 characters or more, forwards or backwards, letters and digits
    only, so spacing does not hide them) or of its base64 that are still in ``text``."""
    plain = "".join(c for c in text if c.isalnum())
    found = []
    for form in (secret, secret[::-1]):
        letters = "".join(c for c in form if c.isalnum())
        found += [
            letters[i : i + 12] for i in range(len(letters) - 11) if letters[i : i + 12] in plain
        ]
    b64 = base64.b64encode(secret.encode()).decode()
    found += [b64[i : i + 16] for i in range(0, len(b64) - 16, 4) if b64[i : i + 16] in text]
    return found


@pytest.mark.parametrize("encode", ENCODINGS.values(), ids=ENCODINGS.keys())
def test_every_simple_encoding_of_a_known_key_is_scrubbed(encode: Callable[[str], str]) -> None:
    printed = f"the value: {encode(KEY)} (done)"
    out = scrubbed(printed)
    assert REDACTED in out
    assert out.startswith("the value: ")
    assert out.endswith(" (done)")
    assert not leaked(out, KEY)


@pytest.mark.parametrize(
    "encode",
    [ENCODINGS[n] for n in ("as is", "reversed", "spaced", "base64 after one byte", "hex")],
)
def test_a_short_secret_is_scrubbed_whole_and_encoded(encode: Callable[[str], str]) -> None:
    assert REDACTED in scrubbed(f"x {encode(SHORT)} y", SHORT)


def test_pieces_of_a_short_or_wordy_secret_are_left_alone() -> None:
    # A third of "correct-horse-battery-staple" is English; half of a 9-character password is a word.
    text = "the hunter2 field, a correct horse, battery staple"
    assert scrubbed(text, SHORT, "correct-horse-battery-staple") == text


def test_pieces_of_a_path_under_a_secret_name_are_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIGNING_KEY_FILE", "/home/ada2/keys/id_ed25519.pem")
    listing = "/home/ada2/keys/notes.txt\n/home/ada2/projects/rlm"
    redactor = Redactor()
    assert redactor.scrub(listing) == listing
    assert redactor.scrub("/home/ada2/keys/id_ed25519.pem") == REDACTED  # the value itself, whole


def test_a_piece_shorter_than_a_third_of_a_key_is_not_a_secret() -> None:
    piece = KEY[20 : 20 + len(KEY) // 3 - 1]
    assert scrubbed(f"<{piece}>") == f"<{piece}>"
    assert scrubbed(f"<{KEY[20 : 20 + len(KEY) // 3]}>") == f"<{REDACTED}>"


# Made-up credentials of each format; none is real.
SHAPED = {
    "GitHub classic": "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "GitHub fine-grained": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH",
    "GitHub app": "ghs_" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8",
    "GitLab": "glpat-AbCdEf0123456789xYz_",
    "OpenAI": "sk-" + "T3stT3stAbcdefGhijKlmnOpqrStuvWxyz012345",
    "OpenAI project": "sk-proj-" + "a1B2-c3D4_e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "Anthropic": "sk-ant-api03-" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv-Wx_Yz12345678AA",
    "Slack bot": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "Slack webhook": "https://hooks.slack.com/services/T0ABCDEFG/B0HIJKLMN/aBcDeFgHiJkLmNoPqRsTuVwX",
    "Discord webhook": "https://discord.com/api/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz",
    "AWS access key id": "AKIAIOSFODNN7EXAMPLE",
    "AWS temporary key id": "ASIAY34FZKBOKMUTVV7A",
    "Google API key": "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "Stripe secret": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "Stripe restricted": "rk_live_" + "51H8abcdEFGH1234ijklMNOP",
    "Hugging Face": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
    "npm": "npm_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "PyPI": "pypi-AgEIcHlwaS5vcmc" + "CJDQ0ZTU2ZmE0LTQ5NjMtNDk3NC1hNmQ2LWZiZjE5YzM2ZjZjMQ",
    "JWT": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}


@pytest.mark.parametrize("credential", SHAPED.values(), ids=SHAPED.keys())
def test_credentials_of_known_shapes_are_scrubbed_whoever_they_belong_to(credential: str) -> None:
    out = Redactor().scrub(f"found {credential} here")
    # A webhook URL may keep its scheme and host: the path is the credential.
    assert out.endswith(f"{REDACTED} here")
    assert credential[-16:] not in out


def test_a_private_key_block_is_scrubbed_whole_even_cut_short() -> None:
    body = "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM2+Fq0Y\nL5oXH+bqrTyB3nbV8yGQ==\n"
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----"
    assert Redactor().scrub(f"a\n{pem}\nb") == f"a\n{REDACTED}\nb"
    cut = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}"
    assert "MIIE" not in Redactor().scrub(cut)
    line = json.dumps({"stdout": pem})  # as a trajectory line holds it
    assert json.loads(Redactor().scrub(line)) == {"stdout": REDACTED}


def test_a_url_keeps_its_user_and_host_but_not_its_password() -> None:
    out = Redactor().scrub(
        "postgres://app:s3cr3t-pw@db.internal:5432/x and Bearer abcdEFGH1234ijklMNOP"
    )
    assert out == f"postgres://app:{REDACTED}@db.internal:5432/x and Bearer {REDACTED}"


def test_shape_look_alikes_in_ordinary_code_are_left_alone() -> None:
    text = (
        "task-runner-for-the-nightly-build, disk-usage, sk-learn, ghp_token_name, hf_model_path,\n"
        "AKIA is a prefix, eyJ alone, Bearer token, xoxb-, mask-rcnn-resnet50-fpn-coco-2017,\n"
        "https://example.com/a:b@c is a path, user@example.com, ::1 and [::]:8000"
    )
    assert Redactor().scrub(text) == text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GH_PAT", "ghp_" + "Q" * 36),
        ("SLACK_WEBHOOK_URL", SHAPED["Slack webhook"]),
        ("MY_SERVICE_AUTH", "c2VydmljZTpwYXNzd29yZDEyMw"),
        ("OAUTH_CLIENT", "0123abcd-89ef-4567-abcd-0123456789ab"),
        ("DEPLOY_PRIVATE", "deploy-9f8e7d6c5b4a"),
        ("SESSION_COOKIE", "sid=8f14e45fceea167a5a36dedd4bea2543"),
        ("UNRELATED_NAME", "ghp_" + "R" * 36),  # a credential by its shape, whatever the name
    ],
)
def test_variables_secret_by_name_or_by_shape_are_known_values(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    redactor = Redactor()
    assert value in redactor.secrets
    assert REDACTED in redactor.scrub(value[::-1])  # known values are scrubbed in every encoding


@pytest.mark.parametrize(
    "name", ["PATH", "GIT_AUTHOR_NAME", "PYTHONPATH", "SPATIAL_INDEX", "AUTHOR", "PWD"]
)
def test_names_that_only_contain_the_letters_are_not_secret(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "Ada Lovelace and Charles Babbage")
    assert "Ada Lovelace and Charles Babbage" not in Redactor().secrets


def ordinary_text() -> str:
    """Code and prose that hold no credential: the standard library's own sources and docs."""
    import argparse
    import base64 as b64
    import collections
    import difflib
    import email.message
    import json as js
    import textwrap

    modules = (argparse, b64, collections, difflib, email.message, js, textwrap)
    return "\n".join(inspect.getsource(m) for m in modules)


def test_no_false_positives_on_ordinary_code_and_prose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_PAT", "ghp_" + "A1b2" * 9)
    text = ordinary_text()
    assert len(text) > 200_000
    assert Redactor([KEY, SHORT, "correct-horse-battery-staple"]).scrub(text) == text


@pytest.mark.parametrize("encode", ENCODINGS.values(), ids=ENCODINGS.keys())
def test_a_scrubbed_json_line_is_still_the_same_json(encode: Callable[[str], str]) -> None:
    record = {"type": "step", "a": 1, "x": "y", "stdout": f"key:\n{encode(KEY)}\n", "n": [1, "z"]}
    line = json.dumps(record)
    out = json.loads(Redactor([KEY]).scrub(line))
    assert {k: v for k, v in out.items() if k != "stdout"} == {
        k: v for k, v in record.items() if k != "stdout"
    }
    assert REDACTED in out["stdout"]
    assert not leaked(out["stdout"], KEY)


def test_a_key_echoed_into_json_escapes_is_scrubbed() -> None:
    # "\n".join(key) inside a JSON string reads s\nk\n-\n…: the escapes are the separators.
    line = json.dumps({"out": "\n".join(KEY)}, ensure_ascii=True)
    out = Redactor([KEY]).scrub(line)
    assert json.loads(out) == {"out": REDACTED}


def test_shaped_secrets_names_what_is_found() -> None:
    text = f"a={SHAPED['GitHub classic']} b={SHAPED['AWS access key id']}"
    assert shaped_secrets(text) == [SHAPED["GitHub classic"], SHAPED["AWS access key id"]]


# Inputs that would make a naive pattern backtrack or rescan: each must be linear.
ADVERSARIAL = {
    "sk- repeated": "sk-" * 300_000,
    "BEGIN repeated": "-----BEGIN PRIVATE KEY-----" * 30_000,
    "BEGIN without END": "-----BEGIN PRIVATE KEY-----\n" + "A" * 800_000,
    "a URL's colon repeated": "://a:" * 200_000,
    "spaced letters": "a " * 500_000,
    "fragments of the key": (KEY[:20] + " ") * 40_000,
    "the key repeated": KEY * 18_000,
    "eyJ repeated": "eyJabcdefgh." * 80_000,
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_scrubbing_is_linear_on_adversarial_input(text: str) -> None:
    redactor = Redactor([KEY])
    start = time.perf_counter()
    redactor.scrub(text)
    assert time.perf_counter() - start < 3.0  # ~1 MB each: linear is well under a second


def test_a_megabyte_of_output_scrubs_in_well_under_a_second() -> None:
    text = (ordinary_text() * 5)[:1_000_000]
    redactor = Redactor([KEY, SHORT])
    start = time.perf_counter()
    assert redactor.scrub(text) == text
    assert time.perf_counter() - start < 1.0  # measured ~50 ms; generous for a shared CI machine


# --- where the key may go ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "default_key", "given", "withheld"),
    [
        ("https://api.together.xyz/v1", True, True, True),  # a third party, set in the settings
        ("https://api.openai.com/v1", True, True, False),  # OpenAI itself
        ("http://127.0.0.1:8000/v1", True, True, False),  # this machine
        ("http://localhost:11434/v1", True, True, False),
        ("https://api.together.xyz/v1", False, True, False),  # RLM.api_key_env names its key
        ("https://api.together.xyz/v1", True, False, False),  # from OPENAI_BASE_URL: the SDK's pair
        ("", True, True, False),  # no base_url: OpenAI
    ],
)
def test_where_the_default_key_may_go(
    base_url: str, default_key: bool, given: bool, withheld: bool
) -> None:
    reason = key_withheld(base_url, default_key=default_key, base_url_given=given)
    assert (reason is not None) is withheld
    if reason:
        assert "api.together.xyz" in reason
        assert "RLM.api_key_env" in reason


def test_openai_base_url_in_the_environment_pairs_the_key_with_that_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://gateway.example.org/openai/v1")
    assert (
        key_withheld("https://gateway.example.org/v1", default_key=True, base_url_given=True)
        is None
    )
    assert key_withheld("https://other.example.org/v1", default_key=True, base_url_given=True)
