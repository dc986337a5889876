"""Shared fixtures: an isolated environment per test and the scripted model server.

Every test talks to models over real HTTP through the real openai SDK, either to the project's own
loopback ``ScriptedServer`` or, for tests marked ``live``, to the endpoint in ``RLM_TEST_BASE_URL``.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rlm_kernel import RLM, Session
from rlm_kernel.testing import ChatRequest, ScriptedServer
from rlm_kernel.testing._server import Script

SECRET = "sk-test-0123456789-SECRET-abcdef"


def fence(code: str) -> str:
    """A root-model turn that runs ``code``."""
    return f"```repl\n{code}\n```"


def child_rlm_sub(reader: Callable[[ChatRequest], str]) -> Callable[[ChatRequest], str]:
    """A scripted sub model for rlm_query at depth 2: a child RLM's root turns (they carry our system
    prompt) look at P, then submit what one plain sub-call (answered by ``reader``) finds in it."""

    def answer(request: ChatRequest) -> str:
        if request.messages[0]["role"] != "system":
            return reader(request)  # a plain sub-call made by the child
        turn = sum(m["role"] == "assistant" for m in request.messages) + 1
        if turn == 1:
            return fence("print(len(P))")
        return fence('FINAL(llm_query("Report the vault code in this text, or none:\\n" + P))')

    return answer


# What a user's shell may hold that would point a test at a real model or key.
ENDPOINT_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "RLM_MODEL",
    "RLM_SUB_MODEL",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "OPENAI_API_VERSION",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real keys, endpoints or .env leak into a test; data goes under tmp_path."""
    for name in ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):  # the servers are loopback
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    """``serve(script, latency=…)`` starts a ScriptedServer that is stopped after the test."""
    servers: list[ScriptedServer] = []

    def start(script: Script, **kwargs: Any) -> ScriptedServer:
        server = ScriptedServer(script, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


EDITED_STEP = "x = 41 + 1\nprint(x)"


def record_edited_session(serve: Callable[..., ScriptedServer], context: str) -> Path:
    """A finished recording in which a person replaced the model's step 1 (x = 1) with EDITED_STEP
    before it ran; the model then doubled x. Its answer is 84; re-running the model's own step 1
    instead would give 2. The server is stopped: a replay must need no model."""
    server = serve(
        {"root": [fence("x = 1\nprint(x)"), fence("y = x * 2\nprint(y)"), fence("FINAL(y)")]}
    )
    session = Session(
        "Double it", context, config=RLM().with_overrides(settings(server)), namespace={}
    )
    session.propose()
    session.execute(EDITED_STEP)
    assert session.run().answer == "84"
    assert session.path is not None
    server.stop()
    return session.path


def settings(server: ScriptedServer, **overrides: Any) -> dict[str, Any]:
    """Settings that point rlm_kernel at ``server`` with root model 'root' and sub model 'sub'."""
    return {
        "base_url": server.base_url,
        "model": "root",
        "sub_model": "sub",
        "max_retries": 0,
        **overrides,
    }


@pytest.fixture
def live_settings() -> dict[str, Any]:
    url = os.environ.get("RLM_TEST_BASE_URL")
    if not url:
        pytest.skip(
            "RLM_TEST_BASE_URL is not set: serve an OpenAI-compatible model on loopback, see docs/testing.md"
        )
    model = os.environ.get("RLM_TEST_MODEL", "local")
    return {"base_url": url, "model": model, "sub_model": model, "request_timeout": 300.0}


# --- real kernels (jupyter_client) ---------------------------------------------------------------------


class KernelRun:
    """What one execute request produced on IOPub."""

    def __init__(self, messages: list[dict[str, Any]], reply: dict[str, Any]) -> None:
        self.messages = messages
        self.reply = reply

    def _of(self, kind: str) -> list[dict[str, Any]]:
        return [m["content"] for m in self.messages if m["msg_type"] == kind]

    @property
    def stdout(self) -> str:
        return "".join(c["text"] for c in self._of("stream") if c["name"] == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(c["text"] for c in self._of("stream") if c["name"] == "stderr")

    @property
    def html(self) -> str:
        shown = (
            self._of("display_data") + self._of("update_display_data") + self._of("execute_result")
        )
        return "\n".join(c["data"].get("text/html", "") for c in shown)

    @property
    def text(self) -> str:
        """The HTML outputs as a person reads them: tags dropped, entities decoded."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.html))

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self._of("error")


class Kernel:
    """A real kernel driven over jupyter_client, as a front end would."""

    def __init__(self, kernel_name: str, env: dict[str, str], cwd: Path) -> None:
        from jupyter_client.manager import KernelManager

        self.manager = KernelManager(kernel_name=kernel_name, transport="ipc")
        self.manager.start_kernel(env=env, cwd=str(cwd))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 60) -> KernelRun:
        messages: list[dict[str, Any]] = []
        reply = self.client.execute_interactive(
            code, timeout=timeout, output_hook=messages.append, allow_stdin=False
        )
        return KernelRun(messages, reply)

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def kernel_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENDPOINT_VARIABLES}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    return env


@pytest.fixture(params=["rlm", "python3"], ids=["rlm-kernel", "load_ext"])
def kernel(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kernel]:
    """A fresh kernel: the "RLM (Python 3)" kernel, or a plain ipykernel after %load_ext rlm_kernel."""
    k = Kernel(request.param, kernel_env(tmp_path), tmp_path)
    try:
        if request.param == "python3":
            run = k.run("%load_ext rlm_kernel")
            assert not run.errors, run.errors
        yield k
    finally:
        k.shutdown()


def configure(k: Kernel, server: ScriptedServer, **overrides: Any) -> None:
    """Point the kernel's RLM settings at ``server`` through %config."""
    lines = [
        f"%config RLM.{name} = {value!r}" for name, value in settings(server, **overrides).items()
    ]
    run = k.run("\n".join(lines))
    assert not run.errors, run.errors


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kernels started by nbclient get the same isolated environment as the `kernel` fixture."""
    for key, value in kernel_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    return tmp_path
