"""Errors at the first contact with an endpoint: each set-up mistake is named with its fix, before a
request when it can be, and a session that meets one keeps its trajectory.

All against the real loopback ScriptedServer (or a port where nothing listens), through the real
openai SDK.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import rlm_kernel
from rlm_kernel import RLM, ConfigError, Session, Trajectory
from rlm_kernel._records import Result
from rlm_kernel.errors import ModelConnectionError, ModelNotFoundError, ModelResponseError
from rlm_kernel.models import OpenAIClient
from rlm_kernel.models._diagnosis import is_local_host
from rlm_kernel.testing import Fault, Kernel, ScriptedServer, fence, kernel_env, settings

TWO_TURNS = [fence("print(len(P))"), fence("FINAL('done')")]


def closed_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` where nothing listens (it was bound a moment ago, then released)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def assert_saved(result: Result) -> None:
    """The session ended in an error, and its trajectory is on disk, readable."""
    assert result.reason == "error"
    assert result.path is not None
    assert Trajectory.load(result.path).session["question"] == "q"


def retries_logged(caplog: pytest.LogCaptureFixture) -> int:
    """How many times the SDK said it would send a request again."""
    return sum(r.getMessage().startswith("Retrying request") for r in caplog.records)


# --- no model --------------------------------------------------------------------------------------------


def test_no_model_is_a_config_error_before_any_request(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": TWO_TURNS})
    with pytest.raises(ConfigError) as caught:
        Session("q", "ctx", config=RLM(base_url=server.base_url, max_retries=0))
    message = str(caught.value)
    for way in ("RLM.model", "RLM_MODEL", "--model"):
        assert way in message
    assert caught.value.setting == "RLM.model"
    assert server.targets == []  # nothing reached the server


def test_a_client_asked_without_a_model_says_so_before_sending(
    serve: Callable[..., ScriptedServer],
) -> None:
    """A client built without a model (a replay's live fallback is) checks at each call."""
    server = serve({"root": TWO_TURNS})
    client = OpenAIClient(RLM(base_url=server.base_url, max_retries=0))
    with pytest.raises(ConfigError, match="RLM_MODEL"):
        client.complete([{"role": "user", "content": "hi"}], model="")
    assert server.targets == []


def test_no_model_in_a_notebook_is_a_usage_message_not_a_traceback(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    server = serve({"root": TWO_TURNS})
    k = Kernel("rlm", kernel_env(tmp_path), tmp_path)
    try:
        run = k.run(f"%config RLM.base_url = {server.base_url!r}\nctx = 'some text'\n%rlm 'q' ctx")
        shown = run.text + run.stderr + "".join(e.get("evalue", "") for e in run.errors)
        assert "No model is configured" in shown
        assert "RLM_MODEL" in shown
        assert "Traceback" not in shown
    finally:
        k.shutdown()
    assert server.targets == []


def test_no_model_through_run_and_the_command_line(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    server = serve({"root": TWO_TURNS})
    with pytest.raises(ConfigError, match="RLM_MODEL"):
        rlm_kernel.run("q", "ctx", base_url=server.base_url, max_retries=0)
    (isolated_env / "ctx.txt").write_text("text")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlm_kernel.cli",
            "run",
            "q",
            "ctx.txt",
            "--base-url",
            server.base_url,
        ],
        capture_output=True,
        text=True,
        cwd=isolated_env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr  # a configuration problem
    assert "--model" in done.stderr
    assert "Traceback" not in done.stderr
    assert server.targets == []


# --- 404s --------------------------------------------------------------------------------------------------


def test_a_404_for_a_base_url_without_v1_says_to_add_it(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": TWO_TURNS})
    bare = server.base_url.removesuffix("/v1")
    result = rlm_kernel.run("q", "ctx", **settings(server, base_url=bare))
    assert isinstance(result.error, ModelResponseError)
    assert not isinstance(result.error, ModelNotFoundError)  # the model is not what is wrong
    message = str(result.error)
    assert f"404 for {bare}/chat/completions" in message
    assert f"try base_url={bare}/v1" in message.lower()
    assert result.error.setting == "RLM.base_url"
    assert_saved(result)
    # With the fix applied, the same server answers.
    assert rlm_kernel.run("q", "ctx", **settings(server)).answer == "done"


def test_a_404_for_an_unknown_model_lists_what_the_server_offers(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"gpt-5-mini": TWO_TURNS, "gpt-5-nano": TWO_TURNS, "llama-3.1-8b": TWO_TURNS})
    result = rlm_kernel.run("q", "ctx", **settings(server, model="gpt-5-mni"))
    assert isinstance(result.error, ModelNotFoundError)
    message = str(result.error)
    assert "'gpt-5-mni'" in message
    for name in ("gpt-5-mini", "gpt-5-nano", "llama-3.1-8b"):
        assert f"'{name}'" in message
    assert "Did you mean 'gpt-5-mini'" in message
    assert result.error.details["offered"] == ["gpt-5-mini", "gpt-5-nano", "llama-3.1-8b"]
    assert "GET /v1/models" in server.targets
    assert_saved(result)


def test_a_404_for_an_unknown_model_without_a_model_list(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"gpt-5-mini": TWO_TURNS})
    server.list_models = False
    result = rlm_kernel.run("q", "ctx", **settings(server, model="gpt-5-mni"))
    assert isinstance(result.error, ModelNotFoundError)
    message = str(result.error)
    assert "does not serve model 'gpt-5-mni'" in message
    assert "offers" not in message
    assert "Did you mean" not in message


def test_a_404_for_a_model_the_server_lists_blames_the_route_not_the_name(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": TWO_TURNS})
    server.inject(Fault.status_code(404))
    result = rlm_kernel.run("q", "ctx", **settings(server))
    assert isinstance(result.error, ModelResponseError)
    assert not isinstance(result.error, ModelNotFoundError)
    assert "although its model list names 'root'" in str(result.error)
    assert_saved(result)


def test_an_unknown_sub_model_is_named_to_the_models_code_with_a_suggestion(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [fence("print(llm_query('hi'))"), fence("FINAL('done')")]
    server = serve({"root": root, "sub": ["never asked"]})
    result = rlm_kernel.run("q", "ctx", **settings(server, sub_model="sbu"))
    assert result.answer == "done", result.message
    (call,) = result.trajectory.subcalls()
    assert "does not serve model 'sbu'" in call["error"]
    assert "Did you mean 'sub'" in call["error"]


# --- refused connections ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lean_http", [True, False], ids=["lean", "sdk-transport"])
def test_a_refused_loopback_connection_is_reported_without_retries(
    caplog: pytest.LogCaptureFixture, isolated_env: Path, lean_http: bool
) -> None:
    port = closed_port()
    caplog.set_level(logging.INFO, logger="openai")
    result = rlm_kernel.run(
        "q",
        "ctx",
        base_url=f"http://127.0.0.1:{port}/v1",
        model="m",
        max_retries=4,
        lean_http=lean_http,
    )
    assert isinstance(result.error, ModelConnectionError)
    assert retries_logged(caplog) == 0  # the SDK would have retried 4 times, 7 s of back-off
    message = str(result.error)
    assert f"Nothing is listening at 127.0.0.1:{port}" in message
    assert "RLM.base_url" in message
    assert_saved(result)


def test_a_refused_connection_to_localhost_from_a_sub_call_is_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = closed_port()
    client = OpenAIClient(RLM(base_url=f"http://localhost:{port}/v1", max_retries=3))
    caplog.set_level(logging.INFO, logger="openai")
    with pytest.raises(ModelConnectionError, match=f"Nothing is listening at localhost:{port}"):
        asyncio.run(client.acomplete([{"role": "user", "content": "hi"}], model="m"))
    assert retries_logged(caplog) == 0


def _own_address() -> str | None:
    """This machine's address on a non-loopback interface, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    return None if is_local_host(address) else address


def test_a_refused_connection_to_another_host_keeps_the_sdks_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    address = _own_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to be refused at")
    port = closed_port(address)
    client = OpenAIClient(RLM(base_url=f"http://{address}:{port}/v1", max_retries=1))
    caplog.set_level(logging.INFO, logger="openai")
    with pytest.raises(ModelConnectionError, match="tried 2 times"):
        client.complete([{"role": "user", "content": "hi"}], model="m")
    assert retries_logged(caplog) == 1


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("192.168.1.20", False),
        ("api.openai.com", False),
        ("localhost.example.com", False),
    ],
)
def test_which_hosts_count_as_this_machine(host: str, local: bool) -> None:
    assert is_local_host(host) is local
