"""The timeline: its data comes from the trajectory alone (a session drawn as it runs, its saved file
and ``rlm-kernel replay --timeline`` give the same), bars sit at the recorded times, parallel waves
stack, child RLMs nest, cached calls are marked; the picture's MIME bundle in a real kernel."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import rlm_kernel
from rlm_kernel import RLM, Session, Trajectory
from rlm_kernel._events import Event, IterationFinished
from rlm_kernel._replay import replay_session
from rlm_kernel._timeline import build
from rlm_kernel._timeline_view import MIME, TimelineView, can_draw
from rlm_kernel.errors import ConfigError, TrajectoryError
from rlm_kernel.testing import ScriptedServer, child_rlm_sub, fence, run_cli, settings

SESSIONS = Path(__file__).resolve().parent.parent / "examples" / "sessions"
CONTEXT = "The vault code is 4471. " * 40

ROOT = [
    fence("print(len(P))"),
    fence("verdicts = llm_batch([f'Is {w} a number?' for w in P.split()[:6]])\nprint(verdicts)"),
    fence("r = rlm_query('What is the vault code?', P[:200])\nprint(r)"),
    fence("FINAL(r)"),
]


def sub_reader(request: Any) -> str:
    return "4471" if "vault" in request.prompt else "no"


def run_session(serve: Callable[..., ScriptedServer], **overrides: Any) -> tuple[Session, list]:
    """A session with a batch wave and a child RLM, and its timeline as drawn after every step."""
    server = serve({"root": ROOT, "sub": child_rlm_sub(sub_reader)}, latency=0.01)
    session = Session(
        "What is the vault code?",
        CONTEXT,
        config=RLM().with_overrides(settings(server, max_depth=2, **overrides)),
    )
    live: list[tuple[int, dict[str, Any]]] = []

    def watch(event: Event) -> None:
        if isinstance(event, IterationFinished) and event.depth == 0:
            records = len(session.trajectory.records)
            live.append((records, build(session.trajectory).to_dict()))

    session.subscribe(watch)
    session.run()
    return session, live


def test_the_timeline_is_the_same_live_saved_and_drawn_by_the_cli(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    session, live = run_session(serve)
    assert session.reason == "final"
    path = session.trajectory.save(tmp_path / "run.jsonl")
    saved = Trajectory.load(path)
    assert build(saved).to_dict() == build(session.trajectory).to_dict()
    # Each drawing made while it ran is the drawing of the file cut at the same record.
    assert [n for n, _ in live] == [2, 3, 4, 5]
    for records, drawn in live:
        assert build(Trajectory(saved.records[:records])).to_dict() == drawn
    # rlm-kernel replay RECORDING --timeline FILE draws the recording without running it.
    out = run_cli("replay", str(path), "--timeline", "spec.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    spec = json.loads((tmp_path / "spec.json").read_text())
    assert spec == rlm_kernel.timeline(session).spec()
    text = run_cli("replay", str(path), "--timeline", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert text.stdout.strip() == rlm_kernel.timeline(path).text(width=30).strip()
    missing = run_cli("replay", str(path), cwd=tmp_path)
    assert missing.returncode == 3
    assert "needs CONTEXT" in missing.stderr


def test_bars_sit_at_the_recorded_times_waves_stack_and_children_nest(
    serve: Callable[..., ScriptedServer],
) -> None:
    session, _ = run_session(serve)
    trajectory = session.trajectory
    timeline = build(trajectory)
    t0 = rlm_kernel._timeline._epoch(trajectory.session["created"])
    labels = [lane.label for lane in timeline.lanes]
    assert labels == [
        "step 1",
        "step 2",
        "step 3",
        "child 1 · step 1",
        "child 1 · step 2",
        "step 4",
    ]
    assert [lane.depth for lane in timeline.lanes] == [0, 0, 0, 1, 1, 0]
    # Every sub-call of the root's steps is a bar from its start for its latency.
    for index, record in enumerate(trajectory.iterations):
        lane = labels.index(f"step {record['iteration']}")
        subs = [b for b in timeline.bars if b.lane == lane and b.row > 0]
        assert len(subs) == len(record["subcalls"])
        for bar, call in zip(subs, record["subcalls"], strict=True):
            assert bar.start == pytest.approx(call["started"] - t0)
            assert bar.end - bar.start == pytest.approx(call["latency"])
            assert bar.kind == call["kind"]
            assert bar.call_id == call["id"]
        code = next(b for b in timeline.bars if b.lane == lane and b.kind == "code")
        end = rlm_kernel._timeline._epoch(record["started"]) - t0
        assert code.end == pytest.approx(end)
        root_call = record["model_call"]["latency"]
        assert code.end - code.start == pytest.approx(record["duration"] - root_call)
        assert timeline.lanes[lane].root_tokens > 0, index
    # The batch's six calls overlap (a parallel wave): six rows, one wave id.
    wave = [b for b in timeline.bars if b.kind == "llm_batch"]
    assert len(wave) == 6
    assert len({b.wave for b in wave}) == 1
    assert sorted(b.row for b in wave) == [1, 2, 3, 4, 5, 6]
    assert timeline.lanes[1].rows == 7
    assert timeline.lanes[1].subcalls == 6
    # The child's steps come right after the step that started it, inside its rlm_query's span.
    [child_call] = [b for b in timeline.bars if b.kind == "rlm_query"]
    # A step's start is derived (its end stamp less its duration), good to a millisecond or so.
    for lane in timeline.lanes[3:5]:
        assert child_call.start - 1e-3 <= lane.start
        assert lane.end <= child_call.end + 1e-3
    assert timeline.lanes[-1].final
    assert timeline.ended == "final"
    assert timeline.answer == "4471"
    # The tokens per lane are the records' usage.
    step2 = trajectory.iterations[1]
    assert timeline.lanes[1].sub_tokens == sum(
        c["usage"]["prompt_tokens"] + c["usage"]["completion_tokens"] for c in step2["subcalls"]
    )


def test_cached_calls_are_marked(serve: Callable[..., ScriptedServer]) -> None:
    root = [
        fence("a = llm_query('Is the sky blue?')\nb = llm_query('Is the sky blue?')\nprint(a, b)"),
        fence("FINAL(a)"),
    ]
    server = serve({"root": root, "sub": lambda request: "yes"})
    result = rlm_kernel.run("q", "ctx", **settings(server, cache="memory"))
    timeline = build(result.trajectory)
    first, second = [b for b in timeline.bars if b.kind == "llm_query"]
    assert (first.cached, second.cached) == (False, True)
    assert second.tokens == 0
    assert first.tokens > 0
    assert timeline.lanes[0].cached == 1
    spec = json.dumps(rlm_kernel.timeline(result).spec())
    assert '"cached": true' in spec
    assert "datum.cached" in spec


def test_a_replay_draws_the_same_lanes_with_every_call_from_the_recording(
    serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    session, _ = run_session(serve)
    recorded = build(session.trajectory)
    replay = replay_session(session.trajectory, None, CONTEXT)
    replay.run()
    replayed = build(replay.trajectory)
    assert [ln.label for ln in replayed.lanes] == [ln.label for ln in recorded.lanes]
    # The same calls in the same lanes (rows may differ: a replay's calls are answered at once, so a
    # batch's later calls may start once earlier ones have ended and share their rows).
    assert sorted((b.lane, b.kind) for b in replayed.bars) == sorted(
        (b.lane, b.kind) for b in recorded.bars
    )
    # A replay is answered by the recording: its sub-calls are marked as served, not made (a child
    # RLM is run again, its own calls served).
    assert all(b.cached for b in replayed.bars if b.row > 0 and b.kind != "rlm_query")
    assert not any(b.cached for b in recorded.bars if b.row > 0)


def test_bundled_sessions_draw_and_a_running_session_has_an_open_lane(tmp_path: Path) -> None:
    view = rlm_kernel.timeline(SESSIONS / "how_rlm_works_count.jsonl")
    [timeline] = view.timelines
    assert [ln.label for ln in timeline.lanes] == [
        "step 1",
        "step 2",
        "step 3",
        "step 4 (not run)",
        "best answer",
    ]
    assert timeline.lanes[1].subcalls == 60
    assert timeline.lanes[1].rows == 61
    text = view.text()
    assert "up to 60 at once" in text
    assert "step 4 (not run)" in text
    direct = rlm_kernel.timeline(SESSIONS / "how_rlm_works_direct.jsonl").timelines[0]
    assert [ln.label for ln in direct.lanes] == ["direct call"]
    assert direct.bars[0].kind == "answer call"
    # Cut before its end, with ``now``: the step under way is one open bar up to now.
    full = Trajectory.load(SESSIONS / "quickstart.jsonl")
    cut = Trajectory(full.records[:3])
    t0 = rlm_kernel._timeline._epoch(full.session["created"])
    running = build(cut, now=t0 + 30.0)
    assert running.ended is None
    assert running.lanes[-1].kind == "running"
    assert running.lanes[-1].label == "step 3"
    assert running.bars[-1].end == pytest.approx(30.0)
    # Several sessions share one time scale.
    both = rlm_kernel.timeline(
        SESSIONS / "how_rlm_works_needle.jsonl", SESSIONS / "how_rlm_works_direct.jsonl"
    )
    spec = both.spec()
    assert len(spec["vconcat"]) == 2
    domains = [
        c["hconcat"][0]["layer"][0]["encoding"]["x"]["scale"]["domain"] for c in spec["vconcat"]
    ]
    assert domains[0] == domains[1] == [0, pytest.approx(41.01, abs=0.01)]


def test_the_bundle_and_the_files(tmp_path: Path) -> None:
    view = rlm_kernel.timeline(SESSIONS / "codebase_qa.jsonl")
    bundle, metadata = view._repr_mimebundle_()
    assert metadata == {MIME: {"embed_options": {"renderer": "svg"}}}
    assert set(bundle) == {MIME, "text/plain"} | ({"image/svg+xml"} if can_draw() else set())
    spec = bundle[MIME]
    assert spec["$schema"].endswith("vega-lite/v5.json")
    bars = spec["hconcat"][0]["layer"][0]["data"]["values"]
    assert {b["kind"] for b in bars} == {"root model", "code", "rlm_query", "answer call"}
    assert any(b["lane"] == "child 1 · step 3" for b in bars)
    assert all({"prompt", "answer", "tokens", "seconds"} <= set(b) for b in bars)
    for suffix in (".json", ".txt"):
        assert view.save(tmp_path / f"t{suffix}").stat().st_size > 0
    with pytest.raises(ConfigError, match=r"suffixes \.html, \.svg"):
        view.save(tmp_path / "t.pdf")
    with pytest.raises(TrajectoryError, match="Cannot draw a timeline of a int"):
        rlm_kernel.timeline(3)
    if not can_draw():
        pytest.skip("vl-convert-python (the timeline extra) is not installed")
    svg = view.save(tmp_path / "t.svg").read_text()
    assert svg.startswith("<svg")
    assert "child 1 · step 3" in svg
    assert view.save(tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = view.save(tmp_path / "t.html").read_text()
    assert "vegaEmbed" in html
    assert "cdn.jsdelivr" not in html
    assert bundle["image/svg+xml"].startswith("<svg")


def test_without_the_extra_pictures_say_what_to_install(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['vl_convert'] = None\n"  # as if vl-convert were not installed
        "import rlm_kernel\n"
        f"view = rlm_kernel.timeline({str(SESSIONS / 'quickstart.jsonl')!r})\n"
        "print(sorted(view.bundle()))\n"
        "try:\n    view.save('t.svg')\nexcept rlm_kernel.ConfigError as exc:\n    print(exc)\n"
    )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert f"['{MIME}', 'text/plain']" in out.stdout
    assert "pip install 'rlm_kernel[timeline]'" in out.stdout


def test_a_notebook_shows_the_timeline_live_and_after(
    serve: Callable[..., ScriptedServer], env: Path
) -> None:
    server = serve({"root": ROOT, "sub": child_rlm_sub(sub_reader)})
    setup = "\n".join(
        f"%config RLM.{k} = {v!r}" for k, v in settings(server, max_depth=2, timeline=True).items()
    )
    cells = [
        "%load_ext rlm_kernel",
        setup,
        f"ctx = {CONTEXT!r}",
        '%rlm "What is the vault code?" ctx',
        "import rlm_kernel\nrlm_kernel.timeline()",
        "rlm_kernel.current_session().trajectory.save('run.jsonl')",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(env)}}).execute()
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    # The %rlm cell's live timeline, updated in place, ends as the saved trajectory's timeline.
    [live] = [o for o in nb.cells[3].outputs if MIME in o.get("data", {})]
    [after] = [o for o in nb.cells[4].outputs if MIME in o.get("data", {})]
    expected = TimelineView(
        [build(Trajectory.load(env / "run.jsonl"))], ["What is the vault code?"]
    )
    assert json.loads(json.dumps(live.data[MIME])) == expected.spec()
    assert json.loads(json.dumps(after.data[MIME])) == expected.spec()
    for output in (live, after):
        assert "text/plain" in output.data
        assert "child 1 · step 1" in output.data["text/plain"]
        assert ("image/svg+xml" in output.data) == can_draw()


def test_a_secret_in_the_question_stays_out_of_the_drawing(
    serve: Callable[..., ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-timeline-0123456789abcdefghijklmnop"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    server = serve({"root": [fence("print(len(P))"), fence("FINAL('4')")]})
    result = rlm_kernel.run(f"Is {secret} the key?", "abcd", **settings(server))
    assert secret in result.trajectory.session["question"]  # the record in memory keeps it
    view = rlm_kernel.timeline(result)
    drawn = json.dumps(view.spec()) + view.text() + json.dumps(build(result.trajectory).to_dict())
    assert secret not in drawn
    assert "Is " in view.labels[0]  # the title is still the question, scrubbed
