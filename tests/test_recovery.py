"""Taking a session up again after a crash: ``rlm_kernel.resume`` and ``%rlm resume --from``.

The catch-up re-runs recorded code with every model answer served from the record, so the scripted
server counts prove it spends no tokens; the kernel test kills a real kernel mid-step.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rlm_kernel
from rlm_kernel import RLM, ContextError, Session, SessionStateError, Trajectory
from rlm_kernel._recovery import resume
from rlm_kernel._reenact import Reenactment
from rlm_kernel.errors import RecoveryWarning
from rlm_kernel.models import ScriptedClient
from rlm_kernel.testing import Kernel, ScriptedServer, configure, fence, kernel_env, settings


def config(server: ScriptedServer, **overrides: Any) -> RLM:
    return RLM().with_overrides(settings(server, **overrides))


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_load_rebuilds_namespace_history_and_usage_without_tokens(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [
        fence("a = len(P)\nprint(a)"),
        fence("b = llm_query('double ' + str(a))\nprint(b)"),
        fence("FINAL(f'{a} {b}')"),
    ]
    server = serve({"root": root, "sub": lambda r: "10"})
    crashed = Session("q", "abcde", config=config(server), namespace={})
    crashed.step()
    crashed.step()
    path = crashed.path
    assert path is not None
    asked = len(server.requests)  # 2 root turns + 1 sub-call
    # The process dies here: nothing more is written, the object is never used again.

    ns: dict[str, Any] = {}
    session = resume(path, "abcde", config=config(server), namespace=ns)

    assert len(server.requests) == asked  # the catch-up asked nothing
    assert (session.id, session.path, session.iteration) == (crashed.id, path, 2)
    assert session.messages == crashed.messages
    assert (ns["a"], ns["b"]) == (5, "10")
    assert session.usage.total.total_tokens == crashed.usage.total.total_tokens
    assert session.state == "paused"
    assert "no tokens spent" in session.message

    result = session.run()
    assert result.answer == "5 10"
    assert server.requests[asked].messages == crashed.messages  # the live turn sees the old history
    records = lines(path)  # one file: the old records, then the new step and the final
    assert [r["type"] for r in records] == [
        "session",
        "iteration",
        "iteration",
        "iteration",
        "final",
    ]
    assert [r["iteration"] for r in records if r["type"] == "iteration"] == [1, 2, 3]
    assert Trajectory.load(path) == session.trajectory


def test_rewinds_edits_follow_ups_and_finals_are_re_enacted(
    serve: Callable[..., ScriptedServer],
) -> None:
    root = [
        fence("x = 1\nlog = [x]\nprint(x)"),
        fence("y = x * 10\nprint(y)"),
        fence("FINAL(y)"),  # after the edit of step 2
        fence("print(y + 1)"),  # the follow-up
    ]
    server = serve({"root": root})
    crashed = Session("q", "ctx", config=config(server), namespace={})
    crashed.step()
    crashed.step()
    crashed.rewind(2)
    crashed.execute("y = x * 100\nlog.append(y)\nprint(y)")
    crashed.step()
    assert crashed.answer == "100"
    crashed.follow_up("and plus one?")
    crashed.step()
    assert crashed.path is not None
    asked = len(server.requests)

    ns: dict[str, Any] = {}
    session = resume(crashed.path, "ctx", config=config(server), namespace=ns)
    assert len(server.requests) == asked
    assert session.messages == crashed.messages
    assert session.trajectory == crashed.trajectory
    assert session.question == "and plus one?"
    assert ns["log"] == [1, 100]  # the superseded step ran too, as it had in the crashed namespace
    assert ns["y"] == 100
    assert session.iteration == crashed.iteration


def test_a_different_output_is_reported_and_the_history_kept(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    (isolated_env / "data.txt").write_text("first")
    root = [fence("seen = Path('data.txt').read_text()\nprint(seen)"), fence("FINAL(seen)")]
    server = serve({"root": root})
    ns: dict[str, Any] = {"Path": Path}
    crashed = Session("q", "ctx", config=config(server), namespace=dict(ns))
    crashed.step()
    assert crashed.path is not None
    (isolated_env / "data.txt").write_text("second")

    with pytest.warns(RecoveryWarning, match=r"iteration\(s\) 1") as caught:
        session = resume(crashed.path, "ctx", config=config(server), namespace=ns)
    (warning,) = (w.message for w in caught if isinstance(w.message, RecoveryWarning))
    assert [m.iteration for m in warning.mismatches] == [1]
    assert "-first" in warning.mismatches[0].diff
    assert "+second" in warning.mismatches[0].diff
    assert session.messages == crashed.messages  # what the model saw stays its history
    assert "outputs differ at iteration(s) 1" in session.message
    assert session.run().answer == "second"  # and it goes on, with what the namespace holds now


def test_resume_takes_settings_by_name_and_warns_at_its_caller(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    (isolated_env / "data.txt").write_text("first")
    root = [fence("seen = Path('data.txt').read_text()\nprint(seen)"), fence("FINAL(seen)")]
    server = serve({"root": root})
    crashed = Session("q", "ctx", config=config(server), namespace={"Path": Path})
    crashed.step()
    assert crashed.path is not None
    (isolated_env / "data.txt").write_text("second")

    with pytest.warns(RecoveryWarning) as caught:
        # Settings by name, as rlm_kernel.run takes them; the record's loop settings still win.
        session = resume(
            crashed.path, "ctx", namespace={"Path": Path}, max_iterations=99, **settings(server)
        )
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]
    assert session.config.max_iterations == crashed.config.max_iterations
    assert session.run().answer == "second"


def test_the_recovery_seam_is_refused_once_the_session_is_live(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve({"root": [fence("print(1)")]})
    recorded = Session("q", "ctx", config=config(server), namespace={})
    recorded.step()
    reenacted = Reenactment(
        recorded.trajectory, "ctx", config=config(server), client=ScriptedClient([]), namespace={}
    )
    live = reenacted.go_live(ScriptedClient([]))
    for call in (
        lambda: reenacted.restore_records(Trajectory()),
        lambda: reenacted.reopen("why"),
        lambda: reenacted.end_as_recorded("a", "final", "m"),
        lambda: reenacted.compact_if_due(),
        lambda: reenacted.go_live(ScriptedClient([])),
    ):
        with pytest.raises(SessionStateError, match="has gone live"):
            call()
    # A live session has no way into the seam at all.
    assert not any(hasattr(live, name) for name in ("restore_records", "reopen", "go_live"))
    assert live.state == "idle"
    assert live.id == recorded.id


def test_the_context_must_be_the_recorded_one(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"root": [fence("print(P)")]})
    crashed = Session("q", "the context", config=config(server), namespace={})
    crashed.step()
    assert crashed.path is not None
    with pytest.raises(ContextError, match="not the one session") as info:
        resume(crashed.path, "another context", config=config(server))
    assert "fingerprint" in info.value.fix
    assert crashed.id in str(info.value)


def test_sub_calls_of_new_steps_go_live(serve: Callable[..., ScriptedServer]) -> None:
    root = [
        fence("r = llm_batch(['one', 'two'])\nprint(r)"),
        fence("s = llm_query('three')\nprint(s)"),
        fence("FINAL(s)"),
    ]
    server = serve({"root": root, "sub": lambda r: r.prompt.upper()})
    crashed = Session("q", "ctx", config=config(server), namespace={})
    crashed.step()
    assert crashed.path is not None
    asked = len(server.requests)
    session = resume(crashed.path, "ctx", config=config(server), namespace={})
    assert len(server.requests) == asked
    assert session.run().answer == "THREE"
    new = [r.prompt for r in server.requests[asked:] if r.model == "sub"]
    assert new == ["three"]


def test_a_json_export_and_a_torn_last_line(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    server = serve({"root": [fence("k = 3\nprint(k)"), fence("FINAL(k)"), fence("FINAL(k)")]})
    crashed = Session("q", "ctx", config=config(server), namespace={})
    crashed.step()
    assert crashed.path is not None
    exported = rlm_kernel.export(crashed.trajectory, isolated_env / "saved.json")

    from_json = resume(exported, "ctx", config=config(server), namespace={})
    assert from_json.path is not None
    assert from_json.path != crashed.path  # a .json cannot be appended to: a new, complete file
    assert from_json.run().answer == "3"
    assert [r["type"] for r in lines(from_json.path)] == [
        "session",
        "iteration",
        "iteration",
        "final",
    ]

    with crashed.path.open("a") as f:
        f.write('{"type": "iteration", "iter')  # the process died in the middle of this line
    session = resume(crashed.path, "ctx", config=config(server), namespace={})
    assert session.run().answer == "3"
    assert [r["type"] for r in lines(crashed.path)] == [
        "session",
        "iteration",
        "iteration",
        "final",
    ]


def test_a_line_torn_mid_character_and_unicode_line_separators_in_records(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    # U+2028 and U+0085 are line breaks to str.splitlines(); JSON leaves them unescaped.
    server = serve({"root": [fence("s = 'a\u2028b\x85c'\nprint(s)"), fence("FINAL(len(s))")]})
    crashed = Session("q", "ctx", config=config(server), namespace={})
    crashed.step()
    assert crashed.path is not None
    with crashed.path.open("ab") as f:
        f.write('{"type": "iteration", "output": "dé'.encode()[:-1])  # died inside the "é"
    loaded = Trajectory.load(crashed.path)
    assert [r["type"] for r in loaded.records] == ["session", "iteration"]
    assert loaded.iterations[0]["results"][0]["stdout"] == "a\u2028b\x85c\n"
    session = resume(crashed.path, "ctx", config=config(server), namespace={})
    assert session.run().answer == "5"


# --- a real kernel, killed ----------------------------------------------------------------------------

WAIT = "import os, time\nwhile not os.path.exists('never'):\n    time.sleep(0.05)"


def _wait_for(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _iterations(directory: Path) -> int:
    files = list(directory.glob("*.jsonl"))
    return sum('"type":"iteration"' in line for f in files for line in f.read_text().splitlines())


def test_resume_after_the_kernel_is_killed(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    root = [
        fence("a = len(P)\nprint(a)"),
        fence("b = llm_query('twice ' + str(a))\nprint(b)"),
        fence(WAIT),  # the kernel dies in here
        fence("FINAL(f'{a} and {b}')"),  # asked again by the resumed session
    ]
    server = serve({"root": root, "sub": lambda r: "8"})
    sessions = tmp_path / "data" / "rlm_kernel" / "sessions"
    first = Kernel("rlm", kernel_env(tmp_path), tmp_path)
    try:
        configure(first, server)
        pid = int(first.run("import os\nctx = 'four'\nprint(os.getpid())").stdout)
        first.client.execute('%rlm "q" ctx')
        _wait_for(lambda: len(server.requests) == 4 and _iterations(sessions) == 2)
        os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: not first.manager.is_alive())
    finally:
        first.shutdown()
    (path,) = sessions.glob("*.jsonl")
    record = Trajectory.load(path)
    assert [it["iteration"] for it in record.iterations] == [1, 2]
    assert record.final is None

    second = Kernel("rlm", kernel_env(tmp_path), tmp_path)
    try:
        configure(second, server)
        assert not second.run("ctx = 'four'").errors
        missing = second.run(f"%rlm resume --from {path}")
        assert "which context" in missing.stderr
        second.run("other = 'five'")
        wrong = second.run(f"%rlm resume --from {path} other")
        assert "is not the one session" in wrong.stderr
        resumed = second.run(f"%rlm resume --from {path} ctx")
        assert not resumed.errors, resumed.errors
        assert "4 and 8" in resumed.text
        assert "re-ran 2 recorded step" in resumed.text
        assert resumed.stdout == ""  # the re-run steps' old prints stay out of the cell
        assert second.run("print(a, b)").stdout.strip() == "4 8"  # the namespace is back
        assert len(server.requests) == 5  # one new root turn; nothing for the caught-up steps
        assert server.requests[4].messages == server.requests[3].messages  # the same history
        twice = second.run(f"%rlm resume --from {path} ctx")
        assert "already in this kernel" in twice.stderr
        status = second.run("%rlm status")
        assert record.session["session_id"] in status.stdout
    finally:
        second.shutdown()
    again = Trajectory.load(path)  # still one file, now finished
    assert [it["iteration"] for it in again.iterations] == [1, 2, 3]
    assert again.final is not None
    assert again.final["answer"] == "4 and 8"
    assert {r["session_id"] for r in again.records if r["type"] == "session"} == {
        record.session["session_id"]
    }


def test_a_taken_up_session_whose_autosave_goes_away_pauses_and_writes_its_file_whole_again(
    serve: Callable[..., ScriptedServer], isolated_env: Path
) -> None:
    from rlm_kernel.errors import AutosaveError

    root = [
        fence("a = len(P)\nprint(a)"),
        # The first live step: the autosave's directory is removed under the session.
        fence("import shutil\nshutil.rmtree('autosaves')\nb = a * 2\nprint(b)"),
        fence("FINAL(b)"),
    ]
    server = serve({"root": root})
    cfg = config(server, trajectory_dir=str(isolated_env / "autosaves"))
    crashed = Session("q", "abcde", config=cfg, namespace={})
    crashed.step()
    assert crashed.path is not None

    session = resume(crashed.path, "abcde", config=cfg, namespace={})
    held = session.run()
    assert (session.state, held.reason) == ("paused", "error")
    assert isinstance(held.error, AutosaveError)
    assert f"to {crashed.path} failed: No such file or directory" in str(held.error)
    assert not crashed.path.exists()
    assert [r["type"] for r in session.trajectory.records] == ["session", "iteration", "iteration"]

    assert session.run().answer == "10"  # the directory is made again, the file written whole
    assert Trajectory.load(crashed.path) == session.trajectory
    again = resume(crashed.path, "abcde", config=cfg, namespace={})  # and it is a sound record
    assert (again.state, again.answer, again.iteration) == ("done", "10", 3)
