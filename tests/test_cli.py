"""``rlm-kernel run``: answers, exit codes, exports and offline replay, as a real subprocess."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rlm_kernel import ConfigError, Trajectory
from rlm_kernel._config import parse_assignment
from rlm_kernel.testing import Fault, ScriptedServer, fence, record_edited_session
from rlm_kernel.testing import run_cli as cli


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
    record_vault_session(
        serve, isolated_env
    )  # its server is stopped: from here on there is no model
    docs = isolated_env / "docs"

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


def test_replay_re_enacts_a_persons_edit(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    recording = record_edited_session(serve, "c")
    (isolated_env / "ctx.txt").write_text("c")
    replayed = cli("replay", str(recording), "ctx.txt", cwd=isolated_env)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.strip() == "84"  # the model's own step 1 would have given 2


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


# --- replay, export, and --set parsing ----------------------------------------------------------------


def record_vault_session(serve: Callable[..., ScriptedServer], root: Path) -> Path:
    """A finished three-step session on the corpus, with one sub-call; returns its JSONL."""
    docs = corpus(root)
    script = [
        fence("print(len(P))"),
        fence("r = llm_query('which code? ' + P['b.txt'])\nprint(r)"),
        fence("FINAL(r)"),
    ]
    server = serve({"root": script, "sub": lambda r: "7781"})
    done = cli(
        "run", "Code?", str(docs), "--model", "root", "--sub-model", "sub", "--base-url", server.base_url,
        "--export", "rec.jsonl", cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    server.stop()
    return root / "rec.jsonl"


def test_replay_command_prints_the_answer_and_exports_any_format(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    recording = record_vault_session(serve, isolated_env)
    replayed = cli("replay", str(recording), "docs", "--export", "again.ipynb", cwd=isolated_env)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.strip() == "7781"
    assert "final · 3 iterations" in replayed.stderr
    notebook = json.loads((isolated_env / "again.ipynb").read_text())
    assert notebook["nbformat"] == 4

    other = isolated_env / "other"
    other.mkdir()
    (other / "x.txt").write_text("not the recorded corpus")
    differs = cli("replay", str(recording), "other", cwd=isolated_env)
    assert "differs from the one the session was recorded on" in differs.stderr


def test_replay_past_the_recording_stops_or_goes_live(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    recording = record_vault_session(serve, isolated_env)
    cut = (
        isolated_env / "cut.jsonl"
    )  # as a crash leaves it: the last step and the final are missing
    cut.write_text("".join(recording.read_text().splitlines(True)[:-2]))

    offline = cli("replay", str(cut), "docs", cwd=isolated_env)
    assert offline.returncode == 3, offline.stderr
    assert "The recording holds no response from 'root'" in offline.stderr
    assert "--live-fallback" in offline.stderr
    assert "Traceback" not in offline.stderr

    live = serve({"root": [fence("FINAL(r)")]})
    fallback = cli(
        "replay", str(cut), "docs", "--live-fallback", "--base-url", live.base_url, "--set", "max_retries=0",
        cwd=isolated_env,
    )  # fmt: skip
    assert fallback.returncode == 0, fallback.stderr
    assert fallback.stdout.strip() == "7781"
    assert [r.model for r in live.requests] == ["root"]  # only the turn the recording lacked

    no_model = cli("replay", str(cut), "docs", "--live-fallback", cwd=isolated_env)
    assert no_model.returncode == 3
    assert "no model to talk to" in no_model.stderr


def test_export_command(serve: Callable[..., ScriptedServer], isolated_env: Path) -> None:
    recording = record_vault_session(serve, isolated_env)
    for name in ("out.rlm.jsonl", "out.ipynb", "out.json", "out.sft.jsonl"):
        done = cli("export", str(recording), name, cwd=isolated_env)
        assert done.returncode == 0, done.stderr
        assert f"Wrote {name}" in done.stderr
    assert Trajectory.load(isolated_env / "out.json") == Trajectory.load(recording)
    assert len((isolated_env / "out.sft.jsonl").read_text().splitlines()) == 1

    unfinished = isolated_env / "cut.jsonl"
    unfinished.write_text("".join(recording.read_text().splitlines(True)[:-1]))
    assert cli("export", str(unfinished), "u.sft.jsonl", cwd=isolated_env).returncode == 0
    assert (isolated_env / "u.sft.jsonl").read_text() == ""  # sft keeps answered sessions only
    everything = cli("export", str(unfinished), "u.sft.jsonl", "--all", cwd=isolated_env)
    assert everything.returncode == 0, everything.stderr
    assert len((isolated_env / "u.sft.jsonl").read_text().splitlines()) == 1
    with_children = cli(
        "export", str(recording), "c.txt", "--format", "sft", "--include-children", cwd=isolated_env
    )
    assert with_children.returncode == 0, with_children.stderr

    wrong = cli("export", str(recording), "o.ipynb", "--all", cwd=isolated_env)
    assert wrong.returncode == 3
    assert "--all does not apply to the ipynb format" in wrong.stderr
    unreadable = cli("export", str(isolated_env / "out.rlm.jsonl"), "x.json", cwd=isolated_env)
    assert unreadable.returncode == 3
    assert "cannot be read back" in unreadable.stderr


def test_run_exports_by_suffix_and_checks_it_first(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    (isolated_env / "text").write_text("some text")
    server = serve({"root": [fence("print(P)"), fence("FINAL(P)")]})
    done = cli(
        "run", "q", "text", "--model", "root", "--base-url", server.base_url, "--export", "run.rlm.jsonl",
        cwd=isolated_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    first = json.loads((isolated_env / "run.rlm.jsonl").read_text().splitlines()[0])
    assert first["type"] == "metadata"  # the reference visualizer's format, not ours
    asked = len(server.requests)
    bad = cli(
        "run", "q", "text", "--model", "root", "--base-url", server.base_url, "--export", "run.txt",
        cwd=isolated_env,
    )  # fmt: skip
    assert bad.returncode == 3
    assert "Cannot tell the export format" in bad.stderr
    assert len(server.requests) == asked  # refused before any model call


def test_parse_assignment() -> None:
    assert parse_assignment("max_tokens=200000") == ("max_tokens", 200000)
    assert parse_assignment(" model = gpt-5") == ("model", " gpt-5")
    assert parse_assignment("stream=false") == ("stream", False)
    assert parse_assignment("base_url=http://h:1/v1") == ("base_url", "http://h:1/v1")
    assert parse_assignment("tags=[1, 2]") == ("tags", [1, 2])
    with pytest.raises(ConfigError, match="is not NAME=VALUE"):
        parse_assignment("max_tokens")
    with pytest.raises(ConfigError, match="is not NAME=VALUE"):
        parse_assignment("=3")


def test_install_writes_a_kernelspec_that_starts_this_python(tmp_path: Path) -> None:
    done = cli("install", "--prefix", str(tmp_path / "env"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    spec = json.loads((tmp_path / "env/share/jupyter/kernels/rlm/kernel.json").read_text())
    # By full path: Jupyter would replace a bare "python" with its own, maybe elsewhere.
    assert spec["argv"][:3] == [sys.executable, "-m", "rlm_kernel"]
    assert spec["display_name"] == "RLM (Python 3)"


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    from rlm_kernel._version import __version__

    done = cli("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"rlm_kernel {__version__}"


def test_examples_copies_every_notebook_with_what_it_reads_and_keeps_an_existing_folder(
    tmp_path: Path,
) -> None:
    done = cli("examples", "mine", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    copied = tmp_path / "mine"
    notebooks = sorted(p.name for p in copied.glob("*.ipynb"))
    bundled = Path(__file__).resolve().parent.parent / "examples"
    assert notebooks == sorted(p.name for p in bundled.glob("*.ipynb"))
    assert "quickstart.ipynb" in notebooks
    for name in notebooks:
        assert name in done.stdout
    assert (copied / "sessions" / "quickstart.jsonl").is_file()  # what the notebooks replay
    assert (copied / "ops-log.txt").is_file()  # and the contexts they read
    assert (copied / "python-dotenv" / "src" / "dotenv" / "main.py").is_file()
    # corpus_qa.ipynb generates its collection with these, and replays this
    for name in ("make_issues.py", "make_corpus_qa_recording.py", "sessions/corpus_qa.jsonl"):
        assert (copied / name).is_file(), name
    (copied / "quickstart.ipynb").write_text("a person's edits")
    again = cli("examples", "mine", cwd=tmp_path)
    assert again.returncode == 3
    assert "already exists" in again.stderr
    assert (copied / "quickstart.ipynb").read_text() == "a person's edits"
