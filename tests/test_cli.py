"""``rlm-kernel run``: answers, exit codes, exports and offline replay, as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import fence

from rlm_kernel import Trajectory
from rlm_kernel.testing import Fault, ScriptedServer


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RLM_MODEL")
    }
    return subprocess.run(
        [sys.executable, "-m", "rlm_kernel.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


def corpus(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("alpha beta\n")
    (docs / "b.txt").write_text("the vault code is 7781\n")
    (docs / "blob.bin").write_bytes(b"\x00\x01\x02")
    return docs


def test_run_prints_the_answer_and_exports(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    docs = corpus(isolated_env)
    root = [
        fence("print(sorted(P))"),
        fence("hit = [k for k in P if 'vault' in P[k]][0]\nFINAL(P[hit].split()[-1])"),
    ]
    server = serve({"root": root})
    done = cli(
        "run", "What is the vault code?", str(docs), "--model", "root", "--base-url", server.base_url,
        "--export", "out.json", cwd=isolated_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "7781"
    assert "final · 2 iterations" in done.stderr
    exported = Trajectory.load(isolated_env / "out.json")
    assert exported.session["context"]["type"] == "Documents"
    assert "['a.txt', 'b.txt']" in exported.iterations[0]["output"]


def test_replay_runs_offline_from_a_recording(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    docs = corpus(isolated_env)
    root = [
        fence("print(len(P))"),
        fence("r = llm_query('which code? ' + P['b.txt'])\nprint(r)"),
        fence("FINAL(r)"),
    ]
    server = serve({"root": root, "sub": lambda r: "7781"})
    recorded = cli(
        "run", "Code?", str(docs), "--model", "root", "--sub-model", "sub", "--base-url", server.base_url,
        "--export", "rec.jsonl", cwd=isolated_env,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    server.stop()  # from here on there is no model at all

    replayed = cli(
        "run",
        "Code?",
        str(docs),
        "--replay",
        "rec.jsonl",
        "--export",
        "again.json",
        cwd=isolated_env,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.strip() == "7781"
    original = Trajectory.load(isolated_env / "rec.jsonl")
    again = Trajectory.load(isolated_env / "again.json")
    assert [it["output"] for it in again.iterations] == [it["output"] for it in original.iterations]

    other = cli("run", "Another question?", str(docs), "--replay", "rec.jsonl", cwd=isolated_env)
    assert other.returncode == 3
    assert "different question" in other.stderr


def test_exit_codes(serve: Callable[..., ScriptedServer], isolated_env: Path) -> None:
    (isolated_env / "text").write_text("some text")
    no_key = cli("run", "q", "text", "--model", "m", cwd=isolated_env)
    assert no_key.returncode == 3
    assert "OPENAI_API_KEY" in no_key.stderr
    assert "Traceback" not in no_key.stderr

    no_model = cli("run", "q", "text", "--base-url", "http://127.0.0.1:9/v1", cwd=isolated_env)
    assert no_model.returncode == 3
    assert "--model" in no_model.stderr

    server = serve({"root": [fence("print(1)"), fence("print(2)"), "best guess"]})
    limited = cli(
        "run", "q", "text", "--model", "root", "--base-url", server.base_url, "--max-iterations", "2",
        cwd=isolated_env,
    )  # fmt: skip
    assert limited.returncode == 1
    assert limited.stdout.strip() == "best guess"
    assert "RLM.max_iterations" in limited.stderr

    failing = serve({"root": ["x"]})
    failing.inject(Fault.status_code(500), times=10)
    broken = cli(
        "run", "q", "text", "--model", "root", "--base-url", failing.base_url, "--set", "max_retries=0",
        cwd=isolated_env,
    )  # fmt: skip
    assert broken.returncode == 4
    assert "RLM.max_retries" in broken.stderr
    assert "Traceback" not in broken.stderr

    missing = cli(
        "run",
        "q",
        "no/such/dir/",
        "--model",
        "m",
        "--base-url",
        "http://127.0.0.1:9/v1",
        cwd=isolated_env,
    )
    assert missing.returncode == 3
    assert "No such file or directory: no/such/dir/" in missing.stderr

    usage = cli("run", cwd=isolated_env)
    assert usage.returncode == 2
