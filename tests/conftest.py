"""Shared fixtures: an isolated environment per test, the scripted model server, real kernels. The
helpers they and the tests share live in ``rlm_kernel.testing``.

Every test talks to models over real HTTP through the real openai SDK, either to the project's own
loopback ``ScriptedServer`` or, for tests marked ``live``, to the endpoint in ``RLM_TEST_BASE_URL``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rlm_kernel.testing import ENDPOINT_VARIABLES, Kernel, ScriptedServer, kernel_env
from rlm_kernel.testing._server import Script


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A DSN (with a password) of a throwaway PostgreSQL cluster started once for the session
    (tests/_postgres.py). Skips where the server programs are missing, but fails under CI."""
    from _postgres import start_server

    server = start_server()
    if isinstance(server, str):
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {server}")
        pytest.skip(server)
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture
def live_settings() -> dict[str, Any]:
    url = os.environ.get("RLM_TEST_BASE_URL")
    if not url:
        pytest.skip(
            "RLM_TEST_BASE_URL is not set: serve an OpenAI-compatible model on loopback, see docs/testing.md"
        )
    model = os.environ.get("RLM_TEST_MODEL", "local")
    return {"base_url": url, "model": model, "sub_model": model, "request_timeout": 300.0}


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


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kernels started by nbclient get the same isolated environment as the `kernel` fixture."""
    for key, value in kernel_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    return tmp_path
