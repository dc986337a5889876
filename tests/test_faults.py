"""Bad input and failing endpoints end in a clear message, with the session paused and saved."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

import rlm_kernel
from rlm_kernel import RLM, ConfigError, Trajectory
from rlm_kernel._secrets import redact_url, url_secrets
from rlm_kernel.errors import (
    ModelConnectionError,
    ModelRateLimitError,
    ModelResponseError,
    ModelServerError,
)
from rlm_kernel.testing import SECRET, Fault, ScriptedServer, fence, settings

TWO_TURNS = [fence("print(len(P))"), fence("FINAL('done')")]


def test_a_429_then_success_is_retried(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": TWO_TURNS})
    server.inject(Fault.status_code(429, retry_after=0), times=1)
    result = rlm_kernel.run("q", "ctx", **settings(server, max_retries=2))
    assert result.answer == "done"
    assert len(server.requests) == 3  # one refused, two answered


def test_persistent_429_names_the_setting(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": TWO_TURNS})
    server.inject(Fault.status_code(429, retry_after=0), times=10)
    result = rlm_kernel.run("q", "ctx", **settings(server, max_retries=1))
    assert isinstance(result.error, ModelRateLimitError)
    assert result.reason == "error"
    assert "RLM.subcall_concurrency" in str(result.error)
    assert server.base_url in str(result.error)


def test_repeated_500s_end_in_a_clear_error_and_a_readable_trajectory(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": TWO_TURNS})
    result = rlm_kernel.run("q", "ctx", **settings(server, max_retries=2))
    assert result.answer == "done"  # sanity: the script works without faults

    server = serve({"root": TWO_TURNS})
    server.inject(Fault.status_code(500), times=3)
    result = rlm_kernel.run("q", "ctx", **settings(server, max_retries=2))
    assert isinstance(result.error, ModelServerError)
    message = str(result.error)
    assert "500" in message
    assert "RLM.max_retries" in message
    assert server.base_url in message
    assert len(server.requests) == 3
    assert result.path is not None
    saved = Trajectory.load(result.path)
    assert saved.session["question"] == "q"


def test_a_timeout_names_the_timeout_setting(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": TWO_TURNS})
    server.inject(Fault.timeout(3.0))
    result = rlm_kernel.run("q", "ctx", **settings(server, request_timeout=0.3))
    assert isinstance(result.error, ModelConnectionError)
    assert "RLM.request_timeout" in str(result.error)


@pytest.mark.parametrize(
    "fault", [Fault.malformed(), Fault.empty_choices()], ids=["malformed", "empty"]
)
def test_unusable_answers_are_model_response_errors(
    serve: Callable[..., ScriptedServer], fault: Fault
) -> None:
    server = serve({"root": TWO_TURNS})
    server.inject(fault)
    result = rlm_kernel.run("q", "ctx", **settings(server))
    assert isinstance(result.error, ModelResponseError)
    assert server.base_url in str(result.error)


def test_a_model_error_pauses_and_the_session_resumes(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [fence("print(len(P))"), fence("x = 2\nprint(x)"), fence("FINAL(x)")]})
    server.inject(Fault.status_code(500), times=1)
    session = rlm_kernel.Session(
        "q", "ctx", config=rlm_kernel.RLM().with_overrides(settings(server))
    )
    first = session.run()
    assert first.reason == "error"
    assert session.state == "paused"
    second = session.run()
    assert (second.reason, second.answer) == ("final", "2")


def test_an_unreachable_endpoint(isolated_env: object) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the with-block ends: nothing listens there
    result = rlm_kernel.run(
        "q", "ctx", base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=0
    )
    assert isinstance(result.error, ModelConnectionError)
    assert "RLM.base_url" in str(result.error)
    assert f"127.0.0.1:{port}" in str(result.error)


def test_no_key_and_no_base_url_says_how_to_configure() -> None:
    with pytest.raises(ConfigError) as caught:
        rlm_kernel.run("q", "ctx", model="gpt-5-mini")
    message = str(caught.value)
    assert "OPENAI_API_KEY" in message
    assert "RLM.base_url" in message
    assert "OPENAI_BASE_URL" in message
    assert "\n" not in message  # one paragraph


def test_an_unknown_setting_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match="max_iterations"):
        rlm_kernel.run("q", "ctx", max_iteration=3)


def test_a_bad_setting_value_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"RLM\.mode"):
        rlm_kernel.run("q", "ctx", mode="fastest")


def test_api_keys_never_reach_the_model_or_the_trajectory(
    serve: Callable[..., ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    root = [
        fence("import os\nkey = os.environ['OPENAI_API_KEY']\nprint(key)"),
        fence("r = llm_query('the key is ' + key)\nprint(r)"),
        fence("FINAL(key)"),
    ]
    server = serve({"root": root, "sub": lambda r: r.prompt})
    result = rlm_kernel.run("q", "ctx", **settings(server))
    # The key authenticates requests, and goes nowhere else.
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in server.requests)
    for request in server.requests:
        assert SECRET not in json.dumps(request.messages)
    assert result.path is not None
    assert SECRET not in result.path.read_text()
    assert "[redacted]" in result.path.read_text()


def test_credentials_in_the_endpoint_url_or_dotenv_never_reach_the_model_or_a_file(
    serve: Callable[..., ScriptedServer],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    password, token = "hunter2-very-secret-pw", "tok-from-dotenv-0123456789"
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"SERVICE_TOKEN={token}\n")
    root = [
        fence("import os\nprint(os.environ['OPENAI_BASE_URL'], open('.env').read())"),
        fence("FINAL(os.environ['OPENAI_BASE_URL'])"),
    ]
    server = serve({"root": root})
    url = server.base_url.replace("http://", f"http://proxyuser:{password}@")
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    result = rlm_kernel.run("q", "ctx", model="root", max_retries=0)
    assert result.reason == "final", result.message
    assert result.path is not None
    written = result.path.read_text() + result.trajectory.save(tmp_path / "run.json").read_text()
    for secret in (password, token):
        assert all(secret not in json.dumps(r.messages) for r in server.requests)
        assert secret not in written
    assert "[redacted]" in server.requests[-1].messages[-1]["content"]


def test_redact_url_drops_every_credential() -> None:
    url = "https://me:pw-12345678@host.example/v1?api-version=2024-10-21&api-key=k-12345678"
    assert redact_url(url) == (
        "https://host.example/v1?api-version=2024-10-21&api-key=%5Bredacted%5D"
    )
    assert url_secrets(url) == ["pw-12345678", "k-12345678"]  # a user name is no secret
    encoded = "postgresql://app:p%40ss%21word@db/x?sig=AbC%2Bdef"
    assert url_secrets(encoded) == ["p%40ss%21word", "AbC%2Bdef", "p@ss!word", "AbC+def"]


def test_a_key_typed_into_an_edit_is_scrubbed_from_a_saved_trajectory(
    serve: Callable[..., ScriptedServer], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = serve({"root": [fence("print(1)"), fence("FINAL('done')")]})
    session = rlm_kernel.Session("q", "ctx", config=RLM().with_overrides(settings(server)))
    session.propose()
    session.execute(f"key = {SECRET!r}  # pasted by mistake\nprint(len(key))")
    session.run()
    assert SECRET in json.dumps(session.trajectory.records)  # kept as typed, in memory only
    for name in ("run.json", "run.jsonl"):
        saved = session.trajectory.save(tmp_path / name).read_text()
        assert SECRET not in saved
        assert "[redacted]" in saved
