"""Directory contexts loaded as the tools people use read a project: ignore files (checked against
git itself), default skips (a real virtual environment, build output, tool caches), binary files,
include/exclude globs, caps per file and in total; through load_context, rlm_kernel.run against the
scripted server, %rlm in a real kernel, the CLI, and a replay of what was loaded."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

import rlm_kernel
from rlm_kernel import RLM, Documents, describe_context, load_context
from rlm_kernel._config import setting_names
from rlm_kernel._files import LoadRules, PathRules, read_text, walk_files
from rlm_kernel._prompts import metadata_message
from rlm_kernel._replay import replay_session
from rlm_kernel._trajectory import Trajectory
from rlm_kernel.errors import ContextError
from rlm_kernel.testing import Kernel, ScriptedServer, configure, fence, settings
from rlm_kernel.testing import run_cli as cli

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

CACHEDIR_TAG = b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n"
SOURCE = {
    ".gitignore",
    "README.md",
    "keep.log",
    "src/app/.gitignore",
    "src/app/__init__.py",
    "src/app/core.py",
    "src/app/nested/deep.py",
    "src/app/scratch_keep.py",
}


def write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project as people have them: a real virtual environment under a name no list holds, build
    output, tool caches, binaries, a big data file, nested ignore files with negations."""
    root = tmp_path_factory.mktemp("loading") / "proj"
    write(root / "README.md", "# Project\n")
    write(root / ".gitignore", "*.log\n!keep.log\nsecrets/\n!secrets/key.txt\n/local.py\ndata/\n")
    write(root / "keep.log", "kept by a negation\n")
    write(root / "debug.log", "ignored\n")
    write(root / "local.py", "anchored: only the top one is ignored\n")
    write(root / "secrets" / "key.txt", "an ignored directory is never entered\n")
    write(root / "data" / "big.csv", "a,b\n" + "1,2\n" * 300_000)  # 1.2 MB, gitignored
    write(root / "src" / "app" / "__init__.py", "")
    write(root / "src" / "app" / "core.py", "def main():\n    return 1\n")
    write(root / "src" / "app" / ".gitignore", "scratch_*.py\n!scratch_keep.py\n")
    write(root / "src" / "app" / "scratch_1.py", "x = 1\n")
    write(root / "src" / "app" / "scratch_keep.py", "y = 2\n")
    write(root / "src" / "app" / "nested" / "deep.py", "Z = 'é'\n")
    write(root / "src" / "app" / "nested" / "debug.log", "ignored from the top's file\n")
    write(root / "assets" / "logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(root / "build" / "lib" / "app" / "core.py", "def main():\n    return 1\n")
    write(root / "dist" / "app-1.0.tar.gz", b"\x1f\x8b\x08\x00" + bytes(64))
    write(root / ".tox" / "py311" / "lib" / "mod.py", "tox's copy\n")
    write(root / "node_modules" / "left-pad" / "index.js", "module.exports = 1\n")
    write(root / "app.egg-info" / "PKG-INFO", "Name: app\n")
    write(root / "scratch-cache" / "CACHEDIR.TAG", CACHEDIR_TAG)
    write(root / "scratch-cache" / "blob.txt", "cached\n")
    write(root / "poetry.lock", "[[package]]\n")
    write(root / "static" / "app.min.js", "var a=1;")
    write(root / "src" / "app" / "__pycache__" / "core.cpython-311.pyc", b"\x00\x01")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "tools")], check=True)
    write(root / "tools" / "lib" / "helper.py", "inside the venv\n")
    return root


def test_a_project_loads_its_source_and_says_why_the_rest_was_left_out(project: Path) -> None:
    docs = load_context(project)
    assert isinstance(docs, Documents)
    assert set(docs) == SOURCE
    assert docs.skip_reasons == {
        ".tox/": "virtual environment",
        "app.egg-info/": "build output",
        "assets/logo.png": "binary",
        "build/": "build output",
        "data/": "ignored by .gitignore",
        "debug.log": "ignored by .gitignore",
        "dist/": "build output",
        "local.py": "ignored by .gitignore",
        "node_modules/": "dependencies",
        "poetry.lock": "generated (lockfile)",
        "scratch-cache/": "cache",
        "secrets/": "ignored by .gitignore",
        "src/app/__pycache__/": "cache",
        "src/app/nested/debug.log": "ignored by .gitignore",
        "src/app/scratch_1.py": "ignored by .gitignore",
        "static/app.min.js": "generated (minified)",
        "tools/": "virtual environment",  # by its pyvenv.cfg: no list names "tools"
    }
    assert "17 skipped" in repr(docs)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_ignore_files_mean_what_git_makes_of_them(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "repo"
    shutil.copytree(project, tree, symlinks=True)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)  # no one's global excludes file
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    write(tree / ".git" / "info" / "exclude", "README.md\n")
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    docs = load_context(tree, default_skips=False)
    assert isinstance(docs, Documents)
    # A venv's bin/python and lib64 are symlinks: git lists them as links, the loader follows the
    # file link (a binary) and never a directory link.
    unread = {
        rel.rstrip("/")
        for rel, why in docs.skip_reasons.items()
        if why in ("binary", "symlinked directory (not followed)")
    }
    # What git would add is what loads, less the binary files, which are there unread.
    assert set(docs) | unread == set(listed)
    assert docs.skip_reasons["README.md"] == "ignored by .git/info/exclude"
    # Loading a part of the repository applies the ignore files above it, to the repository root.
    part = load_context(tree / "src" / "app", default_skips=False)
    assert isinstance(part, Documents)
    assert part.skip_reasons["nested/debug.log"] == "ignored by .gitignore"
    assert "scratch_1.py" not in part
    assert "scratch_keep.py" in part
    # Pointing at an ignored directory is asking for it: the ignore files above have no say.
    assert load_context(tree / "secrets") == {"key.txt": "an ignored directory is never entered\n"}
    assert list(load_context(f"{tree}/secrets/*.txt")) == ["key.txt"]


def test_an_ignore_file_wins_over_the_gitignore_beside_it(tmp_path: Path) -> None:
    tmp_path = tmp_path / "tree"
    write(tmp_path / ".gitignore", "notes.txt\n*.md\n")
    write(tmp_path / ".ignore", "!notes.txt\n")
    write(tmp_path / "notes.txt", "kept by .ignore\n")
    write(tmp_path / "a.md", "ignored\n")
    write(tmp_path / "sub" / ".gitignore", "!b.md\n")
    write(tmp_path / "sub" / "b.md", "a deeper file re-includes it\n")
    docs = load_context(tmp_path)
    assert isinstance(docs, Documents)
    assert set(docs) == {".gitignore", ".ignore", "notes.txt", "sub/.gitignore", "sub/b.md"}
    assert docs.skip_reasons == {"a.md": "ignored by .gitignore"}
    assert set(load_context(tmp_path, gitignore=False)) >= {"a.md", "notes.txt"}


def test_odd_entries_each_get_a_reason(tmp_path: Path) -> None:
    tree = tmp_path / "odd"
    write(tree / "a.py", "x = 1\n")
    write(tree / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(tree / "env-conda" / "conda-meta" / "history", "==> 2026 <==\n")
    write(tree / "wide.txt", "wide text".encode("utf-16"))
    # Packages named like build output or a venv (pypa/build's src/build/, the stdlib's venv/).
    write(tree / "src" / "build" / "__init__.py", "")
    write(tree / "src" / "venv" / "__init__.py", "")
    write(tree / "src" / "build" / "dist" / "out.txt", "build output inside the package\n")
    os.mkfifo(tree / "pipe")  # a read would block forever
    (tree / "loop").symlink_to(tree, target_is_directory=True)
    docs = load_context(tree)
    assert isinstance(docs, Documents)
    assert docs.skip_reasons == {
        ".git/": "version control",
        "env-conda/": "virtual environment",  # by its conda-meta/
        "loop/": "symlinked directory (not followed)",
        "pipe": "not a regular file",
        "src/build/dist/": "build output",
        "wide.txt": "binary",  # UTF-16 is full of NUL bytes: binary unless asked for
    }
    assert {"src/build/__init__.py", "src/venv/__init__.py"} <= set(docs)
    wide = load_context(tree / "wide.txt", encoding="utf-16")
    assert wide == "wide text"
    # With the defaults off, version control still stays out; an include glob naming it does not.
    off = load_context(tree, default_skips=False)
    assert isinstance(off, Documents)
    assert off.skip_reasons[".git/"] == "version control"
    named = load_context(tree, include=[".git/", "*.py"])
    assert isinstance(named, Documents)
    assert set(named) == {".git/HEAD", "a.py", "src/build/__init__.py", "src/venv/__init__.py"}


def test_include_and_exclude_globs(project: Path) -> None:
    py = load_context(project, include="*.py")
    assert isinstance(py, Documents)
    # A bare glob names no path: the venv's, tox's and build's copies stay out.
    assert set(py) == {
        "src/app/__init__.py",
        "src/app/core.py",
        "src/app/nested/deep.py",
        "src/app/scratch_keep.py",
    }
    assert py.skip_reasons["README.md"] == "not included"
    assert py.skip_reasons["tools/"] == "virtual environment"
    some = load_context(project, include=["*.py", "*.md"], exclude=["nested/", "scratch_*"])
    assert isinstance(some, Documents)
    assert set(some) == {"README.md", "src/app/__init__.py", "src/app/core.py"}
    assert some.skip_reasons["src/app/nested/"] == "excluded"  # pruned, never listed
    assert some.skip_reasons["src/app/scratch_keep.py"] == "excluded"  # exclude beats include
    with pytest.raises(ContextError, match=r"no text files \(.*not included") as info:
        load_context(project, include="*.rs")
    assert info.value.setting == "RLM.include"
    with pytest.raises(ContextError, match="glob git cannot read") as info:
        load_context(project, exclude=["tests/", "!"])
    assert info.value.setting == "RLM.exclude"


def test_an_include_glob_that_names_a_skipped_path_brings_it_back(project: Path) -> None:
    docs = load_context(project, include=["build/**", "poetry.lock", "secrets/", "data/*.csv"])
    assert isinstance(docs, Documents)
    assert set(docs) == {"build/lib/app/core.py", "poetry.lock", "secrets/key.txt", "data/big.csv"}
    assert docs.skip_reasons["tools/"] == "virtual environment"
    assert docs.skip_reasons["src/app/core.py"] == "not included"
    # With the defaults off, everything but version control and binaries loads.
    everything = load_context(project, default_skips=False, gitignore=False)
    assert isinstance(everything, Documents)
    assert {"tools/pyvenv.cfg", "tools/lib/helper.py", "node_modules/left-pad/index.js"} <= set(
        everything
    )
    assert everything.skip_reasons["dist/app-1.0.tar.gz"] == "binary"


def test_a_file_over_the_cap_is_skipped_and_the_total_cap_is_an_error(project: Path) -> None:
    big = project / "data" / "big.csv"
    loaded = load_context(project, include=["data/", "*.md"], max_file_mb=1)
    assert isinstance(loaded, Documents)
    assert set(loaded) == {"README.md"}
    assert loaded.skip_reasons["data/big.csv"] == "too large"
    with pytest.raises(ContextError, match=r"no text files \(1 too large\)"):
        load_context(project / "data", max_file_mb=1)
    under_the_cap = load_context(project / "data", max_file_mb=2)
    assert isinstance(under_the_cap, Documents)
    assert len(under_the_cap["big.csv"]) == big.stat().st_size
    assert load_context(big, max_file_mb=1) == big.read_text()  # a file given by itself loads
    with pytest.raises(ContextError, match="more than the 1 MB") as info:
        load_context(project, include=["data/", "*.md"], max_mb=1)
    assert info.value.setting == "RLM.max_context_mb"


def test_a_glob_follows_the_same_rules(project: Path) -> None:
    docs = load_context(f"{project}/**/*.py")
    assert isinstance(docs, Documents)
    assert set(docs) == {
        "src/app/__init__.py",
        "src/app/core.py",
        "src/app/nested/deep.py",
        "src/app/scratch_keep.py",
    }
    assert docs.skip_reasons["tools/lib/helper.py"] == "virtual environment"
    assert docs.skip_reasons["build/lib/app/core.py"] == "build output"
    assert docs.skip_reasons["src/app/scratch_1.py"] == "ignored by .gitignore"
    assert docs.skip_reasons["local.py"] == "ignored by .gitignore"


def test_walk_files_streams_and_agrees_with_the_verdict_on_each_path(project: Path) -> None:
    rules = LoadRules(include=("src/", "*.md"), exclude=("nested/",))
    walk = walk_files(project, rules)
    it = iter(walk)
    first = next(it)
    # A generator: one entry read, the rest of the tree not walked yet.
    assert (first.rel, first.size) == ("README.md", 10)
    assert len(walk.skipped) < 5
    rest = list(it)
    check = PathRules(project, rules)
    for entry in [first, *rest]:
        assert check.reason(entry.rel) is None, entry.rel
    for skip in walk.skipped:
        if not skip.rel.endswith("/"):
            assert check.reason(skip.rel) == skip.reason, skip.rel
        else:
            assert check.dir_reason(skip.rel) == skip.reason, skip.rel
    assert read_text(project / "assets" / "logo.png", "utf-8") == (None, "binary")


def test_one_set_of_rules_from_the_settings_to_load_context() -> None:
    fields = list(LoadRules.__dataclass_fields__)
    keywords = [
        p.name
        for p in inspect.signature(load_context).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name != "encoding"
    ]
    assert sorted(fields) == sorted(keywords)
    rules = RLM(include="*.py", max_file_mb=0.5, gitignore=False, max_context_mb=10).load_rules()
    assert rules == LoadRules(include=("*.py",), gitignore=False, max_file_mb=0.5, max_mb=10)
    assert set(fields) - {"max_mb"} <= set(setting_names())


def test_the_metadata_says_what_was_skipped_within_a_bounded_line(tmp_path: Path) -> None:
    tmp_path = tmp_path / "tree"
    write(tmp_path / "main.py", "print('hi')\n")
    for i in range(3000):
        write(tmp_path / "blobs" / f"{i:04d}-{'x' * 100}.bin", b"\x00")
    write(tmp_path / ".gitignore", "*.tmp\n")
    for i in range(500):
        write(tmp_path / f"t{i}.tmp", "x")
    for name in (
        "build",
        "dist",
        "node_modules",
        ".venv",
        ".tox",
        "target",
        "vendor",
        ".mypy_cache",
    ):
        write(tmp_path / name / "f.txt", "x")
    write(tmp_path / "poetry.lock", "x")
    write(tmp_path / "a.min.js", "x")
    write(tmp_path / ".git" / "HEAD", "ref: refs/heads/main\n")
    (tmp_path / "linked").symlink_to(tmp_path / "build", target_is_directory=True)
    docs = load_context(tmp_path)
    info = describe_context(docs)
    assert info.skipped[0] == (
        "binary",
        3000,
        tuple(f"blobs/{i:04d}-{'x' * 100}.bin" for i in range(3)),
    )
    assert info.skipped[1][:2] == ("ignored by .gitignore", 500)
    assert type(info).from_dict(info.to_dict()) == info
    message = metadata_message("q", info, max_iterations=5)
    [line] = [line for line in message.splitlines() if line.startswith("Not loaded into `P`")]
    assert "3,000 binary ('…" in line
    assert "500 ignored by .gitignore ('t0.tmp'" in line
    assert "more for other reasons" in line
    assert len(line) < 800


def test_run_sends_the_model_what_was_skipped(
    serve: Callable[..., ScriptedServer], project: Path
) -> None:
    server = serve({"root": [fence("print(sorted(P))"), fence("FINAL(len(P))")]})
    result = rlm_kernel.run("How many files?", str(project), include=["*.py"], **settings(server))
    assert result.reason == "final", result.message
    assert result.answer == "4"
    first = server.requests[0].messages[1]["content"]
    assert "Not loaded into `P` (skipped when loading):" in first
    assert "virtual environment ('.tox/', 'tools/')" in first
    assert "not included ('.gitignore', 'README.md', …)" in first
    recorded = result.trajectory.session
    assert recorded["config"]["include"] == ["*.py"]
    groups = recorded["context"]["skipped"]
    assert {"reason": "virtual environment", "count": 2, "examples": [".tox/", "tools/"]} in groups


def test_a_replay_loads_the_directory_by_the_recorded_rules(
    serve: Callable[..., ScriptedServer], project: Path, tmp_path: Path
) -> None:
    server = serve({"root": [fence("print(len(P))"), fence("FINAL(sorted(P)[0])")]})
    result = rlm_kernel.run("First?", str(project), include="src/", **settings(server))
    assert result.answer == "src/app/.gitignore"
    path = result.trajectory.save(tmp_path / "run.json")
    server.stop()
    # Warnings are errors here: a P unlike the recorded one (other rules) would fail the replay.
    replayed = replay_session(Trajectory.load(path), None, str(project)).run()
    assert replayed.answer == "src/app/.gitignore"


def test_rlm_include_in_a_real_kernel(
    kernel: Kernel, serve: Callable[..., ScriptedServer], project: Path
) -> None:
    server = serve({"root": [fence("print(sorted(P))"), fence("FINAL(len(P))")]})
    configure(kernel, server)
    setup = f"import rlm_kernel\nrepo = {str(project)!r}\ndocs = rlm_kernel.load_context(repo)"
    assert not kernel.run(setup).errors
    run = kernel.run("%rlm \"How many?\" repo --include '*.py' --exclude nested/")
    assert not run.errors, run.errors
    assert "['src/app/__init__.py', 'src/app/core.py', 'src/app/scratch_keep.py']" in run.stdout
    first = server.requests[0].messages[1]["content"]
    assert "1 excluded ('src/app/nested/')" in first
    refused = kernel.run("%rlm \"How many?\" docs --include '*.py'")
    said = refused.text + refused.stderr
    assert "--include choose the files of a directory or glob" in said
    assert "Documents already loaded" in said


def test_the_command_line_takes_include_and_exclude(
    serve: Callable[..., ScriptedServer], project: Path, isolated_env: Path
) -> None:
    server = serve({"root": [fence("print(sorted(P))"), fence("FINAL(','.join(sorted(P)))")]})
    done = cli(
        "run", "Which?", str(project), "--model", "root", "--base-url", server.base_url,
        "--include", "*.md", "--include", "*.log", "--exclude", "keep.log", "--quiet",
        cwd=isolated_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "README.md"
    assert "1 excluded ('keep.log')" in server.requests[0].messages[1]["content"]


def test_rlm_flags_parse_into_the_settings_and_not_into_a_follow_up() -> None:
    from IPython.core.error import UsageError

    from rlm_kernel._notebook import _args

    tokens = _args.split("\"q\" repo --include '*.py' --include docs/ --exclude tests/")
    args = _args.parse_start(tokens)
    assert _args.overrides(args) == {"include": ["*.py", "docs/"], "exclude": ["tests/"]}
    with pytest.raises(UsageError, match="--include cannot be given with it"):
        _args.parse_start(_args.split("\"again\" --continue --include '*.py'"))
