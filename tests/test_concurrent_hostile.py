"""Hostile code in one session while other sessions of the same process carry on (issue 15).

The namespace executor runs the model's code in the host process, so what it does to the standard
library or to threads, every session sees until the runtime puts it back. These tests run real
sessions on real threads through the real openai SDK against the loopback ScriptedServer: one
session's code rebinds ``json.dumps`` and holds its block open while another session runs to its
answer, autosaving, sub-calling and streaming; and a block that ends in time leaves no worker thread.
"""

from __future__ import annotations

import ast
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rlm_kernel
from rlm_kernel import Trajectory, _astparse
from rlm_kernel.testing import ChatRequest, ScriptedServer, fence
from rlm_kernel.testing import settings as server_settings

PACKAGE = Path(rlm_kernel.__file__).parent


def _hostile_step(release: Path) -> str:
    """Code that rebinds ``json.dumps`` process-wide and keeps it rebound (another block's end puts
    it back) until ``release`` exists (at most 20 s): another session runs its course meanwhile."""
    return (
        "import json, time, pathlib\n"
        "json.dumps = None\n"
        "json.JSONEncoder = None\n"
        "deadline = time.monotonic() + 20\n"
        f"while not pathlib.Path({str(release)!r}).exists() and time.monotonic() < deadline:\n"
        "    json.dumps = json.JSONEncoder = None\n"
        "    time.sleep(0.002)\n"
        "print('released')"
    )


def _root(release: Path) -> Callable[[ChatRequest], str]:
    def answer(request: ChatRequest) -> str:
        turn = sum(m["role"] == "assistant" for m in request.messages)
        first_user = next(m["content"] for m in request.messages if m["role"] == "user")
        if "hostile" in str(first_user):
            return fence(_hostile_step(release)) if turn == 0 else fence("FINAL('hostile done')")
        steps = [
            "n = len(P)\nprint('length', n)",
            "echo = llm_query('say ' + P.split()[-1])\nprint('echo', echo)",
            "FINAL(echo)",
        ]
        return fence(steps[min(turn, len(steps) - 1)])

    return answer


def _sub(request: ChatRequest) -> str:
    return request.prompt.split()[-1]


@pytest.mark.parametrize(
    "transport",
    [{}, {"lean_http": True}, {"stream": True}],
    ids=["sdk-default", "lean-http", "streamed"],
)
def test_a_session_runs_to_its_answer_while_another_sessions_code_has_json_dumps_rebound(
    serve: Callable[..., ScriptedServer], tmp_path: Path, transport: dict[str, Any]
) -> None:
    release = tmp_path / "release"
    server = serve({"root": _root(release), "sub": _sub})
    base = server_settings(server, iteration_timeout=60.0, autosave=True, **transport)
    hostile_result: list[rlm_kernel.Result] = []
    hostile = threading.Thread(
        target=lambda: hostile_result.append(
            rlm_kernel.run("hostile: wait", "x", trajectory_dir=str(tmp_path / "hostile"), **base)
        ),
        name="hostile-session",
    )
    original = json.dumps
    hostile.start()
    try:
        deadline = time.monotonic() + 20
        while json.dumps is not None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert json.dumps is None, "the hostile session's code never rebound json.dumps"

        outcome: list[rlm_kernel.Result | BaseException] = []

        def bystander() -> None:
            try:
                outcome.append(
                    rlm_kernel.run(
                        "bystander: what is the last word?",
                        "the last word is TOKEN-31337",
                        trajectory_dir=str(tmp_path / "bystander"),
                        **base,
                    )
                )
            except BaseException as exc:  # a raise out of run() is the failure this test is for
                outcome.append(exc)

        worker = threading.Thread(target=bystander, name="bystander-session")
        worker.start()
        worker.join(30)
        # The whole bystander session ran inside the hostile block, which is still running.
        overlapped = hostile.is_alive()
    finally:
        release.touch()
        hostile.join(30)
    assert overlapped
    assert len(outcome) == 1
    result = outcome[0]
    assert not isinstance(result, BaseException), repr(result)
    assert (result.reason, result.answer) == ("final", "TOKEN-31337"), result.message
    [saved] = (tmp_path / "bystander").glob("*.jsonl")
    loaded = Trajectory.load(saved)
    assert [it["observation"] for it in loaded.iterations][:2] == [
        it["observation"] for it in result.trajectory.iterations
    ][:2]
    assert "echo TOKEN-31337" in loaded.iterations[1]["observation"]
    # The hostile session ended too, and the runtime put json back after its block.
    assert json.dumps is original
    assert len(hostile_result) == 1
    assert hostile_result[0].answer == "hostile done"


def test_the_runtime_takes_its_json_from_stdjson_only() -> None:
    """One source of truth: a runtime module that imported the standard ``json`` would look its
    names up at call time, and break while another session's code has them rebound."""
    exempt = {"_stdjson.py", "install.py"}  # install runs from the command line, before any session
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name in exempt:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            if any(n == "json" or n.startswith("json.") for n in names):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == [], (
        f"import the runtime's json instead (`from . import _stdjson as json`): {offenders}"
    )


def test_a_block_waiting_on_sub_calls_off_the_main_thread_ends_at_its_limit(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    """The watchdog's timeout lands in ``llm_batch``'s wait: the sub-calls are cancelled and the
    block's worker thread ends, rather than being abandoned until the sub-model answers."""
    server = serve(
        {
            "root": lambda r: fence(
                "FINAL('gave up')"
                if sum(m["role"] == "assistant" for m in r.messages)
                else "print(llm_batch(['a', 'b', 'c']))"
            ),
            "sub": lambda r: "late",
        },
        latency={"sub": 8.0},
    )
    base = server_settings(server, iteration_timeout=0.5, autosave=False)
    outcome: list[rlm_kernel.Result] = []
    before = {t.ident for t in threading.enumerate()}
    started = time.monotonic()
    session = threading.Thread(target=lambda: outcome.append(rlm_kernel.run("q", "ctx", **base)))
    session.start()
    session.join(20)
    took = time.monotonic() - started
    [result] = outcome
    assert result.answer == "gave up"
    first = result.trajectory.iterations[0]["observation"]
    assert "iteration_timeout" in first
    assert "still running" not in first  # ended at its limit, not left running
    assert took < 4.0  # the sub-model answers after 8 s
    blocks = [t for t in threading.enumerate() if t.name == "rlm-block" and t.ident not in before]
    assert blocks == []


def test_the_runtimes_parse_survives_other_threads_parsing_at_once() -> None:
    """CPython 3.11 counts the AST constructor's recursion per interpreter (python/cpython#106905):
    parses on other threads at the same moment make a sound parse fail with ``SystemError``.
    ``_astparse.parse`` repeats such a parse; plain ``ast.parse`` threads race it here."""
    source = "\n".join(
        f"def f{i}(x):\n    return [y for y in range(x) if y % {i + 1}]" for i in range(40)
    )
    failures: list[str] = []

    class Finalized:
        def __del__(self) -> None:  # the collector running this mid-parse is what switches threads
            pass

    def churn(parse: Callable[[str], object], ours: bool) -> None:
        for _ in range(80):
            garbage = [Finalized() for _ in range(40)]
            for g in garbage:
                g.self = g  # type: ignore[attr-defined]  # a cycle: only the collector frees it
            try:
                parse(source)
            except SystemError as exc:
                if ours:
                    failures.append(str(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=churn, args=(_astparse.parse, True)) for _ in range(3)]
        threads += [threading.Thread(target=churn, args=(ast.parse, False)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []


def test_a_rebinding_is_undone_for_good_when_another_block_began_inside_it(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    """Block B starts while block A's code has ``json.dumps = None`` and ends after A was restored:
    B must not 'put back' the None it saw at its start (nor be told it replaced anything)."""
    b_started, a_done = tmp_path / "b-started", tmp_path / "a-done"

    def wait_for(path: Path) -> str:
        return (
            "deadline = time.monotonic() + 20\n"
            f"while not pathlib.Path({str(path)!r}).exists() and time.monotonic() < deadline:\n"
            "    time.sleep(0.01)\n"
        )

    def root(request: ChatRequest) -> str:
        first_user = str(next(m["content"] for m in request.messages if m["role"] == "user"))
        if sum(m["role"] == "assistant" for m in request.messages):
            return fence("FINAL('done')")
        if "first" in first_user:
            return fence("import json, time, pathlib\njson.dumps = None\n" + wait_for(b_started))
        return fence(
            f"import time, pathlib\npathlib.Path({str(b_started)!r}).touch()\n" + wait_for(a_done)
        )

    server = serve({"root": root, "sub": lambda r: "-"})
    base = server_settings(server, iteration_timeout=60.0, autosave=False)
    results: dict[str, rlm_kernel.Result] = {}
    original = json.dumps

    def run(name: str) -> None:
        results[name] = rlm_kernel.run(f"{name}: go", "x", **base)

    a = threading.Thread(target=run, args=("first",))
    a.start()
    deadline = time.monotonic() + 20
    while json.dumps is not None and time.monotonic() < deadline:
        time.sleep(0.005)
    b = threading.Thread(target=run, args=("second",))
    b.start()
    a.join(30)
    a_done.touch()
    b.join(30)
    assert json.dumps is original
    assert "json.dumps" in results["first"].trajectory.iterations[0]["observation"]
    assert "replaced" not in results["second"].trajectory.iterations[0]["observation"]
