"""rlm_kernel's standard loggers: requests, retries, guards and recovery, off by default, never a
secret; over the real SDK against the scripted server (faults for the retries)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import rlm_kernel
from rlm_kernel import RLM, Session
from rlm_kernel._logging import LOGGERS, logger
from rlm_kernel.testing import SECRET, Fault, Reply, ScriptedServer, fence, settings

README = Path(__file__).resolve().parents[1] / "README.md"


def lines_of(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name]


def test_requests_and_retries_are_logged_without_the_key(
    serve: Callable[..., ScriptedServer],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    root = [
        Fault.status_code(429, retry_after=0.05),
        Reply(fence("print(llm_query('hi'))"), prompt_tokens=900, completion_tokens=40),
        Fault.disconnect(),
        Reply(fence("FINAL('done')"), prompt_tokens=1_000, completion_tokens=20, cached_tokens=500),
    ]
    server = serve({"gpt-4o-mini": root, "sub": [Fault.status_code(500), "hello"]})
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and the HTTP library's included
    result = rlm_kernel.run(
        "q", "c", **settings(server, model="gpt-4o-mini", sub_model="sub", max_retries=2)
    )
    assert result.answer == "done"
    # The key was in play: the server was sent it on every request.
    assert all(r.headers.get("authorization") == f"Bearer {SECRET}" for r in server.requests)

    requests = lines_of(caplog, "rlm_kernel.requests")
    assert [r.levelno for r in requests] == [logging.DEBUG] * 3  # two root turns and the sub-call
    first = requests[0].getMessage()
    assert first.startswith(f"gpt-4o-mini at {server.base_url}: 900 prompt tokens (0 cached), ")
    assert "40 completion tokens, cost $" in first
    assert first.endswith("ok (stop)")
    assert any(m.getMessage().startswith("sub at ") for m in requests)

    retries = [r.getMessage() for r in lines_of(caplog, "rlm_kernel.retries")]
    assert len(retries) == 3  # the root's 429, the sub-call's 500 (the async client), the drop
    assert retries[0].startswith(f"retry 1 of 2 to {server.base_url}/ in 0.05 s after HTTP 429")
    assert "Retry-After: 0.05" in retries[0]
    assert retries[1].startswith("retry 1 of 2")
    assert retries[1].endswith("after HTTP 500")
    assert retries[2].startswith("retry 1 of 2")
    assert "(no answer)" in retries[2]

    for record in caplog.records:  # no logger, ours or a library's, wrote the key
        assert SECRET not in record.getMessage(), record.name


def test_a_failed_request_is_a_warning(
    serve: Callable[..., ScriptedServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = serve({"root": [Fault.status_code(503)]})
    caplog.set_level(logging.DEBUG, logger="rlm_kernel")
    result = rlm_kernel.run("q", "c", **settings(server))
    assert result.reason == "error"
    (line,) = lines_of(caplog, "rlm_kernel.requests")
    assert line.levelno == logging.WARNING
    assert "root at" in line.getMessage()
    assert "ModelServerError" in line.getMessage()
    assert "HTTP 503" in line.getMessage()


def test_guards_and_recovery_are_logged(
    serve: Callable[..., ScriptedServer], caplog: pytest.LogCaptureFixture
) -> None:
    same = fence("print(len(P))")
    server = serve({"root": [same, same, fence("FINAL(5)")]})
    caplog.set_level(logging.INFO, logger="rlm_kernel")
    crashed = Session("q", "abcde", config=RLM().with_overrides(settings(server)), namespace={})
    crashed.step()
    crashed.step()  # the same code again: the loop guard warns
    (guard,) = lines_of(caplog, "rlm_kernel.guards")
    assert guard.getMessage().startswith("⟳ Loop guard: step 2 has the same code as step 1")
    assert crashed.path is not None

    caplog.clear()
    session = rlm_kernel.resume(crashed.path, "abcde", **settings(server))
    recovery = [r.getMessage() for r in lines_of(caplog, "rlm_kernel.recovery")]
    assert recovery[0] == (f"session {crashed.id}: resuming from {crashed.path} (4 records)"), (
        recovery
    )
    assert recovery[1].startswith(f"session {session.id}: Taken up again from {crashed.path}: 2 ")
    assert session.run().answer == "5"


def test_logging_is_off_by_default() -> None:
    # A fresh interpreter with logging unconfigured: Python's last-resort handler would print the
    # failed request's WARNING to stderr if the package logger had no handler of its own.
    script = textwrap.dedent(
        """
        import logging, rlm_kernel
        from rlm_kernel.testing import Fault, ScriptedServer, settings
        server = ScriptedServer({"root": [Fault.status_code(503)]}).start()
        result = rlm_kernel.run("q", "c", **settings(server, autosave=False))
        server.stop()
        assert result.reason == "error", result.reason
        package = logging.getLogger("rlm_kernel")
        print(package.level, [type(h).__name__ for h in package.handlers])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 ['NullHandler']"
    assert done.stderr == ""


def test_the_loggers_are_one_documented_list() -> None:
    readme = README.read_text()
    for name, _what in LOGGERS.items():
        assert f"`{name}`" in readme, name
        assert logger(name).name == name
    with pytest.raises(KeyError, match="not one of rlm_kernel's loggers"):
        logger("rlm_kernel.nothing")
