"""Hostile inputs, settings and records (issue 15): each ends in a clear error of rlm_kernel's own,
before anything runs where it can, and nothing is lost.

Real files on disk (sparse ones for the huge cases), real subprocess runs of ``rlm-kernel`` against
the loopback scripted server, a real kernel for ``%config`` and ``%rlm --set``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from traitlets import Float, Int
from traitlets.config import Config

import rlm_kernel
from rlm_kernel import RLM, ConfigError, ContextError, Session, Trajectory, TrajectoryError
from rlm_kernel._config import setting_names
from rlm_kernel._recovery import resume
from rlm_kernel.testing import Kernel, ScriptedServer, configure, fence, kernel_env, settings
from rlm_kernel.testing import run_cli as cli

GB = 1 << 30


def sparse(path: Path, size: int, head: bytes = b"") -> Path:
    """A file of ``size`` bytes that takes no disk: ``head``, then zeros (holes)."""
    with path.open("wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def in_little_memory(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python whose address space is capped at 2 GB: reading a 5 GB file whole
    would fail there with a MemoryError, so passing proves it is never read whole."""
    script = "import resource\nresource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n" + code
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


# --- 1. huge files --------------------------------------------------------------------------------


def test_a_huge_binary_file_is_refused_from_its_first_block(tmp_path: Path) -> None:
    sparse(tmp_path / "disk.img", 5 * GB)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sparse(corpus / "disk.img", 5 * GB)
    (corpus / "notes.txt").write_text("the code is 7781\n")
    done = in_little_memory(
        textwrap.dedent(
            """
            import rlm_kernel
            from rlm_kernel import ContextError
            try:
                rlm_kernel.load_context("disk.img")
            except ContextError as e:
                print("refused:", e)
            docs = rlm_kernel.load_context("corpus")
            print("docs:", sorted(docs), docs.skipped)
            """
        ),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "refused: 'disk.img' looks binary" in done.stdout
    assert "docs: ['notes.txt'] ['disk.img']" in done.stdout  # skipped, never read whole


def test_a_text_file_too_large_to_load_is_refused_before_it_is_read(
    tmp_path: Path, serve: Callable[..., ScriptedServer]
) -> None:
    # Text in the first block (no NUL there), then 3 GB: only its size can stop it.
    sparse(tmp_path / "huge.log", 3 * GB, head=b"2026-12-03 boot ok\n" * 1000)
    done = in_little_memory(
        "import rlm_kernel\ntry:\n    rlm_kernel.load_context('huge.log')\n"
        "except rlm_kernel.ContextError as e:\n    print(e.setting, '|', e)\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "RLM.max_context_mb | 'huge.log' is 3,072 MB, more than the 2,048 MB" in done.stdout
    assert "%config RLM.max_context_mb" in done.stdout

    # The limit is a setting, for files and for a directory's text files together.
    server = serve({"root": [fence("print(len(P))"), fence("FINAL(len(P))")]})
    (tmp_path / "two.txt").write_text("x" * (2 << 20))
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.txt", "b.txt"):
        (docs / name).write_text("y" * (600 << 10))
    for source in (tmp_path / "two.txt", docs):
        with pytest.raises(ContextError, match="more than the 1 MB") as info:
            rlm_kernel.run("q", source, **settings(server), max_context_mb=1)
        assert info.value.setting == "RLM.max_context_mb"
    assert server.requests == []
    answered = rlm_kernel.run("q", tmp_path / "two.txt", **settings(server), max_context_mb=None)
    assert answered.answer == str(2 << 20)


# --- 2. deep nesting ------------------------------------------------------------------------------


def test_deeply_nested_json_is_a_context_error_that_says_to_pass_it_as_text(
    tmp_path: Path,
) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "deep.json").write_text(deep)
    (tmp_path / "deep.jsonl").write_text('{"ok": 1}\n' + deep + "\n")
    with pytest.raises(ContextError, match="nested too deeply") as info:
        rlm_kernel.load_context(tmp_path / "deep.json")
    assert ".txt" in info.value.fix
    with pytest.raises(ContextError, match=r"line 2, is JSON nested too deeply"):
        rlm_kernel.load_context(tmp_path / "deep.jsonl")
    assert rlm_kernel.load_context(deep) == deep  # as text it is fine

    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(ContextError, match="nested too deeply to describe"):
        Session("q", value, config=RLM(model="m", autosave=False), client=_no_model())


def _no_model() -> Any:
    from rlm_kernel.models import ScriptedClient

    return ScriptedClient([])


# --- 3. empty contexts ----------------------------------------------------------------------------


def test_empty_contexts_are_refused_with_what_to_pass(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.md").write_text("\n  \n")
    (tmp_path / "empty.json").write_text("[]")
    (tmp_path / "nothing").mkdir()
    only_empty = tmp_path / "only_empty"
    only_empty.mkdir()
    (only_empty / "__init__.py").write_text("")
    cases: list[tuple[object, str]] = [
        ("", "The context is an empty string"),
        ("   ", "holds only whitespace"),
        ([], "The context is an empty list"),
        ({}, "The context is an empty dict"),
        (b"", "The context is an empty string"),
        (tmp_path / "empty.txt", "empty.txt' is empty"),
        (str(tmp_path / "blank.md"), "blank.md' holds only whitespace"),
        (tmp_path / "empty.json", "holds an empty JSON list"),
        (tmp_path / "nothing", "holds no files"),
        (only_empty, "contains no text files (nothing skipped, 1 empty)"),
    ]
    for source, what in cases:
        with pytest.raises(ContextError) as info:
            rlm_kernel.load_context(source)
        assert what in str(info.value), (source, str(info.value))
        assert info.value.fix
    # An empty file among others stays a document: that it exists can matter.
    (only_empty / "main.py").write_text("print(1)\n")
    assert sorted(rlm_kernel.load_context(only_empty)) == ["__init__.py", "main.py"]


def test_an_empty_standard_input_is_a_clear_cli_error(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    server = serve({"root": [fence("FINAL(1)")]})
    done = cli("run", "q", "-", "--model", "root", "--base-url", server.base_url, cwd=isolated_env)
    assert done.returncode == 3, done.stderr
    assert "rlm-kernel: The context is an empty string" in done.stderr
    assert "Traceback" not in done.stderr
    assert server.requests == []


# --- 4. strings shaped like paths ------------------------------------------------------------------


def test_a_path_shaped_string_that_names_nothing_is_refused(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(isolated_env / "home"))
    for source, where in (
        ("data/corpus", isolated_env / "data" / "corpus"),
        ("./notes", isolated_env / "notes"),
        ("~/papers", isolated_env / "home" / "papers"),
    ):
        with pytest.raises(ContextError, match="looks like a path") as info:
            rlm_kernel.load_context(source)
        assert f"nothing is at {where}" in str(info.value)
        assert "pass it in a list: [text]" in info.value.fix
    # What it names, once there, is loaded, ~ read as the home directory.
    papers = isolated_env / "home" / "papers"
    papers.mkdir(parents=True)
    (papers / "a.md").write_text("# A\n")
    assert dict(rlm_kernel.load_context("~/papers")) == {"a.md": "# A\n"}
    # Text stays text: prose, numbers, dates, JSON, several lines.
    for text in ("What is 2/3?", "3/4", "12/03/2026", '{"a":"b/c"}', "a/b\nc/d", "hello"):
        assert rlm_kernel.load_context(text) == text


# --- 5. settings out of range -----------------------------------------------------------------------

BAD_VALUES = [
    ("max_iterations", 0),
    ("max_iterations", -3),
    ("subcall_concurrency", 0),
    ("iteration_timeout", -1.0),
    ("iteration_timeout", float("nan")),
    ("max_depth", -1),
    ("max_depth", 0),
    ("request_timeout", -1.0),
    ("request_timeout", 0.0),
    ("max_retries", -1),
    ("wall_timeout", 0.0),
    ("max_tokens", 0),
    ("max_cost", -0.5),
    ("max_subcalls", -1),
    ("max_output_chars", 5),
    ("compaction_threshold", 1.5),
    ("context_window", 0),
    ("temperature", -0.1),
    ("max_completion_tokens", 0),
    ("baseline_threshold", -1),
    ("loop_guard", -1),
    ("max_context_mb", 0),
    ("monty_memory_mb", 1),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_an_out_of_range_setting_is_a_config_error_naming_it(name: str, value: object) -> None:
    for attempt in (
        lambda: RLM(**{name: value}),
        lambda: RLM().with_overrides({name: value}),
        lambda: RLM(config=Config({"RLM": {name: value}})),
    ):
        with pytest.raises(ConfigError) as info:
            attempt()
        assert info.value.setting == f"RLM.{name}"
        assert f"RLM.{name} = {value!r} is out of range: it must be " in info.value.what
        assert "(the default)" in info.value.fix


def test_every_numeric_setting_has_a_range() -> None:
    from rlm_kernel._ranges import RANGES

    numeric = [n for n in setting_names() if isinstance(RLM.class_traits()[n], (Int, Float))]
    assert sorted(RANGES) == sorted(numeric)


def test_values_at_the_edge_of_a_range_still_work() -> None:
    cfg = RLM(max_retries=0, max_subcalls=0, loop_guard=0, request_timeout=0.5, max_iterations=1)
    assert (cfg.max_retries, cfg.max_subcalls, cfg.loop_guard) == (0, 0, 0)
    assert RLM(compaction_threshold=1.0, max_cost=None, temperature=0.0).compaction_threshold == 1


def test_a_bad_value_in_a_config_update_changes_nothing() -> None:
    cfg = RLM()
    with pytest.raises(ConfigError, match=r"RLM\.max_depth = 0"):
        cfg.update_config(Config({"RLM": {"max_iterations": 5, "max_depth": 0}}))
    assert (cfg.max_iterations, cfg.max_depth) == (30, 1)  # traitlets rolled both back
    with pytest.raises(ConfigError, match=r"RLM\.subcall_concurrency"):
        cfg.subcall_concurrency = 0
    assert cfg.subcall_concurrency == 16


def test_a_bad_price_is_refused_when_set_not_mid_run() -> None:
    for prices in ({"m": {"input": "cheap"}}, {"m": {"input": -1}}, {"m": 3}, {"m": {"in": 1}}):
        with pytest.raises(ConfigError, match=r"RLM.prices\['m'\]") as info:
            RLM(prices=prices)
        assert "'input'" in info.value.fix
    assert RLM(prices={"m": {"input": 0.25, "output": 2}}).prices["m"]["output"] == 2


def test_run_and_the_cli_refuse_a_bad_setting_before_any_request(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    server = serve({"root": [fence("FINAL(1)")]})
    with pytest.raises(ConfigError, match=r"RLM\.max_iterations = 0 is out of range"):
        rlm_kernel.run("q", "some text", **settings(server), max_iterations=0)
    (isolated_env / "text.txt").write_text("some text")
    base = ("run", "q", "text.txt", "--model", "root", "--base-url", server.base_url)
    for extra in (("--set", "request_timeout=-1"), ("--max-iterations", "0")):
        done = cli(*base, *extra, cwd=isolated_env)
        assert done.returncode == 3, done.stderr
        assert "is out of range: it must be" in done.stderr
        assert "Traceback" not in done.stderr
    assert server.requests == []


def test_config_magic_and_rlm_set_refuse_a_bad_setting_in_a_kernel(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    server = serve({"root": [fence("FINAL(len(P))")]})
    k = Kernel("rlm", kernel_env(tmp_path), tmp_path)
    try:
        configure(k, server)
        bad = k.run("%config RLM.max_iterations = 0")
        assert "RLM.max_iterations = 0 is out of range: it must be at least 1" in bad.stderr
        shown = k.run(
            "from rlm_kernel._notebook import get_magics\n"
            "print(get_magics(get_ipython()).settings.max_iterations)"
        )
        assert shown.stdout.strip() == "30"  # unchanged
        k.run("ctx = 'some text'")
        refused = k.run('%rlm "q" ctx --set subcall_concurrency=0')
        said = refused.text + refused.stderr + json.dumps(refused.errors)
        assert "RLM.subcall_concurrency = 0 is out of range" in said
        assert server.requests == []
    finally:
        k.shutdown()


# --- 6. unusable trajectory and export paths ----------------------------------------------------------


def _unusable_dirs(root: Path) -> list[tuple[Path, str]]:
    afile = root / "afile"
    afile.write_text("x")
    cases = [(afile, f"{afile} is a file, not a directory"), (afile / "sub", "is a file")]
    if os.geteuid() != 0:  # root writes anywhere
        locked = root / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        cases.append((locked, f"no permission to write in {locked}"))
    return cases


def test_an_unusable_trajectory_dir_is_refused_before_the_first_step(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    server = serve({"root": [fence("FINAL(1)")]})
    for directory, why in _unusable_dirs(isolated_env):
        with pytest.raises(ConfigError) as info:
            rlm_kernel.run("q", "some text", **settings(server), trajectory_dir=str(directory))
        assert why in info.value.what
        assert info.value.setting == "RLM.trajectory_dir"
        assert "RLM.autosave = False" in info.value.fix
    done = cli(
        "run", "q", "afile", "--model", "root", "--base-url", server.base_url,
        "--set", f"trajectory_dir={isolated_env / 'afile'}", cwd=isolated_env,
    )  # fmt: skip
    assert done.returncode == 3
    assert "Cannot autosave the trajectory to" in done.stderr
    assert "Traceback" not in done.stderr
    assert server.requests == []


def test_an_unusable_export_path_is_refused_before_the_run(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    server = serve({"root": [fence("FINAL(1)")]})
    (isolated_env / "text.txt").write_text("some text")
    (isolated_env / "afile").write_text("x")
    (isolated_env / "adir.json").mkdir()
    for target, why in (("afile/out.json", "afile is a file"), ("adir.json", "is a directory")):
        done = cli(
            "run", "q", "text.txt", "--model", "root", "--base-url", server.base_url,
            "--export", target, cwd=isolated_env,
        )  # fmt: skip
        assert done.returncode == 3, done.stderr
        assert f"Cannot write --export {target}" in done.stderr
        assert why in done.stderr
        assert "Traceback" not in done.stderr
    assert server.requests == []
    assert not (isolated_env / "data").exists()  # no session was started

    recorded = rlm_kernel.run("q", "some text", **settings(serve({"root": [fence("FINAL(1)")]})))
    assert recorded.path is not None
    exported = cli("export", str(recorded.path), "afile/out.ipynb", cwd=isolated_env)
    assert exported.returncode == 3
    assert "Cannot write afile/out.ipynb: " in exported.stderr
    assert "Traceback" not in exported.stderr


@pytest.mark.parametrize("autosave", [True, False])
def test_an_export_that_fails_after_the_run_still_prints_the_answer_and_keeps_the_trajectory(
    serve: Callable[..., ScriptedServer], isolated_env: Path, autosave: bool
) -> None:
    # The model's own code takes the export directory away during the run.
    code = "import os\nos.rmdir('out')\nopen('out', 'w').close()\nFINAL('7781')"
    server = serve({"root": [fence("print(len(P))"), fence(code)]})
    (isolated_env / "text.txt").write_text("the code is 7781")
    done = cli(
        "run", "q", "text.txt", "--model", "root", "--base-url", server.base_url,
        "--export", "out/run.json", "--set", f"autosave={json.dumps(autosave)}",
        cwd=isolated_env,
    )  # fmt: skip
    assert done.stdout.strip() == "7781"  # the answer, whatever became of the export
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    assert "could not write --export out/run.json: out is a file, not a directory" in done.stderr
    kept = Path(done.stderr.split("The trajectory is in ")[1].split(";")[0])
    assert Trajectory.load(kept).final is not None
    assert Trajectory.load(kept).final["answer"] == "7781"  # type: ignore[index]
    assert f"rlm-kernel export {kept} out/run.json" in done.stderr
    if not autosave:
        kept.unlink()


# --- 7. damaged records ------------------------------------------------------------------------------


@pytest.mark.parametrize("tail", ["garbage\n", '{"type": "iteration", "itera\n', "3\n", "[1, 2]"])
def test_resume_cuts_a_torn_last_line_so_the_file_keeps_loading(
    serve: Callable[..., ScriptedServer], tail: str
) -> None:
    server = serve({"root": [fence("k = 3\nprint(k)"), fence("FINAL(k)"), fence("FINAL(k)")]})
    crashed = Session("q", "ctx", config=RLM(**settings(server)), namespace={})
    crashed.step()
    assert crashed.path is not None
    with crashed.path.open("a") as f:
        f.write(tail)  # what a crash in the middle of a write left (a newline made it, or not)
    assert Trajectory.load(crashed.path) == crashed.trajectory  # skipped when read

    session = resume(crashed.path, "ctx", config=RLM(**settings(server)), namespace={})
    assert session.run().answer == "3"
    loaded = Trajectory.load(crashed.path)
    assert [r["type"] for r in loaded.records] == ["session", "iteration", "iteration", "final"]
    assert loaded == session.trajectory


@pytest.mark.parametrize("value", ["[1, 2]", '"x"', "3", "null"])
def test_a_json_value_that_is_not_a_record_is_a_trajectory_error(
    tmp_path: Path, value: str
) -> None:
    (tmp_path / "t.json").write_text(value)
    with pytest.raises(TrajectoryError, match="This is not a trajectory: a JSON "):
        Trajectory.load(tmp_path / "t.json")
    (tmp_path / "r.json").write_text('{"schema_version": 2, "records": 5}')
    with pytest.raises(TrajectoryError, match="a JSON object"):
        Trajectory.load(tmp_path / "r.json")
    session = json.dumps({"type": "session", "schema_version": 2})
    (tmp_path / "t.jsonl").write_text(f"{session}\n{value}\n{session}\n")
    with pytest.raises(TrajectoryError, match=r"line 2, is a JSON \w+, not a record") as info:
        Trajectory.load(tmp_path / "t.jsonl")
    assert "remove it" in info.value.fix


# --- 8. an autosave that fails mid-run ----------------------------------------------------------------

# Run as the model's code (the namespace executor runs in the process that writes the autosave): from
# here on the autosave file's descriptor writes to /dev/full, where every write fails with ENOSPC, as
# on a disk that has just filled up; or its directory is removed, so what is written goes nowhere.
_FAULTS = {
    "disk full": (
        "import os\n"
        "for fd in os.listdir('/proc/self/fd'):\n"
        "    try:\n"
        "        where = os.readlink(f'/proc/self/fd/{fd}')\n"
        "    except OSError:\n"
        "        continue\n"
        "    if where.endswith('.jsonl') and '/autosaves/' in where:\n"
        "        full = os.open('/dev/full', os.O_WRONLY)\n"
        "        os.dup2(full, int(fd))\n"
        "        os.close(full)\n",
        "No space left on device",
    ),
    "directory removed": (
        "import shutil\nshutil.rmtree('autosaves')\n",
        "the file was removed during the run",
    ),
}


@pytest.mark.parametrize("fault", sorted(_FAULTS))
def test_an_autosave_that_fails_mid_run_pauses_the_session_with_every_record_kept(
    serve: Callable[..., ScriptedServer], isolated_env: Path, fault: str
) -> None:
    from rlm_kernel.errors import AutosaveError

    code, reason = _FAULTS[fault]
    server = serve(
        {"root": [fence(code + "print('step one ran')"), fence("print('two')"), fence("FINAL(7)")]}
    )
    config = RLM(**settings(server), trajectory_dir=str(isolated_env / "autosaves"))
    session = Session("q", "some text", config=config, namespace={})
    result = session.run()  # no OSError out of run()

    assert (session.state, result.reason, result.answer) == ("paused", "error", None)
    assert isinstance(result.error, AutosaveError)
    assert result.error.setting == "RLM.trajectory_dir"
    assert f"The autosave of the trajectory to {session.path} failed: {reason}" in str(result.error)
    for advice in ("Nothing is lost", "result.trajectory.save(path)", "free space", "resume"):
        assert advice in result.error.fix
    assert result.message == str(result.error)
    assert len(server.requests) == 1  # it stopped at once: no step that only memory would keep
    # Every record so far is in memory, and saving it elsewhere writes it all.
    assert [r["type"] for r in result.trajectory.records] == ["session", "iteration"]
    assert "step one ran" in result.trajectory.iterations[0]["output"]
    kept = result.trajectory.save(isolated_env / "elsewhere" / "kept.jsonl")
    assert Trajectory.load(kept) == result.trajectory

    # Once there is room again, resuming writes the file whole again and goes on.
    assert session.run().answer == "7"
    assert session.path is not None
    assert Trajectory.load(session.path) == session.trajectory
    types = [r["type"] for r in Trajectory.load(session.path).records]
    assert types == ["session", "iteration", "iteration", "iteration", "final"]
    assert not list(session.path.parent.glob(".*"))  # no spare file left beside it


def test_an_autosave_that_fails_on_the_answering_step_keeps_the_answer(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    from rlm_kernel.errors import AutosaveError

    code, _ = _FAULTS["disk full"]
    server = serve({"root": [fence("print(len(P))"), fence(code + "FINAL('7781')")]})
    config = RLM(**settings(server), trajectory_dir=str(isolated_env / "autosaves"))
    result = rlm_kernel.run("q", "some text", config=config)
    assert (result.answer, result.reason) == ("7781", "final")
    assert isinstance(result.error, AutosaveError)
    types = [r["type"] for r in result.trajectory.records]
    assert types == ["session", "iteration", "iteration", "final"]
    assert result.path is not None
    assert len(Trajectory.load(result.path).records) == 2  # the file holds only what came before


@pytest.mark.parametrize("export", [None, "out/run.json"])
def test_the_cli_prints_the_answer_and_keeps_the_trajectory_when_the_autosave_fails(
    serve: Callable[..., ScriptedServer],
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    export: str | None,
) -> None:
    code, _ = _FAULTS["disk full"]
    # With --export, the failure comes before any answer; without, on the answering step.
    steps = [fence("print(len(P))")]
    steps += [fence(code), fence("FINAL('never')")] if export else [fence(code + "FINAL('7781')")]
    server = serve({"root": steps})
    (isolated_env / "text.txt").write_text("the code is 7781")
    (isolated_env / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(isolated_env / "tmp"))  # where the CLI saves it aside
    done = cli(
        "run", "q", "text.txt", "--model", "root", "--base-url", server.base_url,
        "--set", f"trajectory_dir={isolated_env / 'autosaves'}",
        *(("--export", export) if export else ()), cwd=isolated_env,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "The autosave of the trajectory to " in done.stderr
    assert "failed: No space left on device" in done.stderr
    assert "--set trajectory_dir=DIR" in done.stderr
    kept = Path(done.stderr.split(" records) is in ")[1].split(" instead;")[0])
    if export:
        assert done.stdout == ""  # no answer yet: the session stopped at the failed write
        assert kept == Path(export)
        records = Trajectory.load(isolated_env / kept).records
        assert [r["type"] for r in records] == ["session", "iteration", "iteration"]
        assert len(server.requests) == 2
    else:
        assert done.stdout.strip() == "7781"  # the answer, whatever became of the autosave
        assert kept.parent == isolated_env / "tmp"
        assert Trajectory.load(kept).final["answer"] == "7781"  # type: ignore[index]
        assert f"rlm_kernel.resume('{kept}', context)" in done.stderr


# --- 9. a replay's context limit ------------------------------------------------------------------------


def test_a_replay_loads_its_context_under_its_own_max_context_mb(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    from rlm_kernel._replay import replay_session

    (isolated_env / "two.txt").write_text("x" * (2 << 20))
    server = serve({"root": [fence("print(len(P))"), fence("FINAL(len(P))")]})
    recorded = rlm_kernel.run("q", isolated_env / "two.txt", **settings(server), max_context_mb=3)
    assert recorded.path is not None
    assert recorded.answer == str(2 << 20)
    recording = Trajectory.load(recorded.path)

    for attempt in (
        lambda: replay_session(recording, None, "two.txt", base=RLM(max_context_mb=1)),
        lambda: replay_session(recording, None, "two.txt", {"max_context_mb": 1}),
    ):
        with pytest.raises(ContextError, match="more than the 1 MB") as info:
            attempt()
        assert info.value.setting == "RLM.max_context_mb"
    replayed = replay_session(recording, None, "two.txt", base=RLM(max_context_mb=3)).run()
    assert replayed.answer == str(2 << 20)

    done = cli(
        "replay", str(recorded.path), "two.txt", "--set", "max_context_mb=1", cwd=isolated_env
    )
    assert done.returncode == 3, done.stderr
    assert "more than the 1 MB" in done.stderr
    assert "Traceback" not in done.stderr
