"""Shared fixtures: an isolated environment per test and the scripted model server.

Every test talks to models over real HTTP through the real openai SDK, either to the project's own
loopback ``ScriptedServer`` or, for tests marked ``live``, to the endpoint in ``RLM_TEST_BASE_URL``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rlm_kernel.testing import ScriptedServer
from rlm_kernel.testing._server import Script

SECRET = "sk-test-0123456789-SECRET-abcdef"


def fence(code: str) -> str:
    """A root-model turn that runs ``code``."""
    return f"```repl\n{code}\n```"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real keys, endpoints or .env leak into a test; data goes under tmp_path."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RLM_MODEL", "RLM_SUB_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
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
            "RLM_TEST_BASE_URL is not set (../shared/tools/local-llm.sh starts a local model)"
        )
    model = os.environ.get("RLM_TEST_MODEL", "local")
    return {"base_url": url, "model": model, "sub_model": model, "request_timeout": 300.0}
