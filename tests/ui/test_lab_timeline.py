"""The timeline in JupyterLab: its built-in Vega-Lite renderer draws it (as SVG: every bar and every
tokens bar is a mark, counted against the timeline's data), for the bundled sessions and live under a
cells-mode %rlm cell; screenshots go to ci-artifacts/screenshots/ and, where the project keeps them,
to /work/notes/screens/."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rlm_kernel
from rlm_kernel import Trajectory
from rlm_kernel.testing import ScriptedServer, child_rlm_sub, fence, settings

from .conftest import SCREENSHOTS, LabPage

pytestmark = pytest.mark.ui

SESSIONS = Path(__file__).resolve().parents[2] / "examples" / "sessions"
NOTES = Path(os.environ.get("RLM_TIMELINE_SCREENS", "/work/notes/screens"))

# Per output holding a Vega-Lite chart: the chart's rect marks (bars) and its text marks (labels).
MARKS = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    return Array.from(w.content.node.querySelectorAll('.jp-RenderedVegaLite')).map(out => ({
        svg: !!out.querySelector('svg'),
        rects: out.querySelectorAll('g.mark-rect path').length,
        labels: Array.from(out.querySelectorAll('g.mark-text.role-mark text')).map(t => t.textContent),
    }));
}"""


def expected_marks(view: rlm_kernel._timeline_view.TimelineView) -> int:
    """The bars the spec draws: each timeline bar, and each tokens bar beside it."""
    spec = view.spec()
    charts = spec.get("vconcat", [spec])
    return sum(
        len(c["hconcat"][0]["layer"][0]["data"]["values"]) + len(c["hconcat"][1]["data"]["values"])
        for c in charts
    )


def wait_for_charts(lab: LabPage, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        charts: list[dict[str, Any]] = lab.evaluate(MARKS)
        if len(charts) >= count and all(c["svg"] and c["rects"] for c in charts):
            return charts
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(charts)} of {count} charts drawn: {charts}")
        time.sleep(0.25)


def keep(lab: LabPage, index: int, name: str) -> None:
    """Screenshot the ``index``-th chart's output, for CI and for the project's notes."""
    chart = lab.page.locator(".jp-RenderedVegaLite").nth(index)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    chart.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    if NOTES.parent.is_dir():
        NOTES.mkdir(exist_ok=True)
        chart.screenshot(path=str(NOTES / f"{name}.png"))


def test_lab_draws_the_bundled_sessions_timelines(lab: LabPage) -> None:
    names = sorted(p.stem for p in SESSIONS.glob("*.jsonl"))
    compare = [SESSIONS / f"how_rlm_works_{n}.jsonl" for n in ("needle", "count", "direct")]
    sources = [
        *(f"import rlm_kernel\nrlm_kernel.timeline(r'{SESSIONS / n}.jsonl')" for n in names),
        f"rlm_kernel.timeline(*{[str(p) for p in compare]!r}, labels=['needle', 'count', 'direct'])",
    ]
    lab.server.write_notebook("timelines.ipynb", sources)
    lab.open_notebook("timelines.ipynb")
    lab.run_all()
    charts = wait_for_charts(lab, len(sources))
    views = [rlm_kernel.timeline(SESSIONS / f"{n}.jsonl") for n in names]
    views.append(rlm_kernel.timeline(*compare, labels=["needle", "count", "direct"]))
    for index, (chart, view) in enumerate(zip(charts, views, strict=True)):
        assert chart["rects"] == expected_marks(view), (index, chart["rects"])
        lanes = [ln.label for t in view.timelines for ln in t.lanes]
        assert [x.strip() for x in chart["labels"]] == lanes
    for index, name in enumerate(names):
        keep(lab, index, f"timeline_{name}")
    keep(lab, len(names), "timeline_how_rlm_works_compare")


def test_lab_cells_mode_keeps_the_timeline_under_the_rlm_cell_live(
    lab: LabPage, serve: Callable[..., ScriptedServer], tmp_path: Path
) -> None:
    root = [
        fence("print(len(P))"),
        fence("v = llm_batch([f'Is {w} a number?' for w in P.split()[:5]])\nprint(v)"),
        fence("r = rlm_query('What is the vault code?', P)\nprint(r)"),
        fence("FINAL(r)"),
    ]
    model = serve({"root": root, "sub": child_rlm_sub(lambda r: "7781")}, latency=0.05)
    config = {
        **settings(model, max_depth=2, timeline=True),
        "trajectory_dir": str(tmp_path / "sessions"),
    }
    setup = "\n".join(f"%config RLM.{key} = {value!r}" for key, value in config.items())
    lab.server.write_notebook(
        "live.ipynb",
        ["%load_ext rlm_kernel", setup, "ctx = 'the vault code is 7781'", '%rlm "Code?" ctx'],
    )
    lab.open_notebook("live.ipynb")
    lab.run_all()
    [saved] = wait_for_file(tmp_path / "sessions")
    deadline = time.monotonic() + 60
    while Trajectory.load(saved).final is None:
        assert time.monotonic() < deadline, "the session did not finish"
        time.sleep(0.25)
    view = rlm_kernel.timeline(saved, labels=["Code?"])
    lanes = [ln.label for ln in view.timelines[0].lanes]
    deadline = time.monotonic() + 30
    while True:  # the last redraw (after the answer) reaches the %rlm cell's output
        [chart] = wait_for_charts(lab, 1)
        if [x.strip() for x in chart["labels"]] == lanes:
            break
        assert time.monotonic() < deadline, (chart["labels"], lanes)
        time.sleep(0.25)
    assert chart["rects"] == expected_marks(view)
    assert lanes[3:5] == ["child 1 · step 1", "child 1 · step 2"]
    # It is the %rlm cell's output (the step cells below hold none).
    in_rlm_cell = lab.evaluate(
        """() => {
            const w = window.jupyterapp.shell.currentWidget;
            return w.content.widgets.map(c => !!c.node.querySelector('.jp-RenderedVegaLite'));
        }"""
    )
    assert in_rlm_cell[3], in_rlm_cell
    assert sum(in_rlm_cell) == 1, in_rlm_cell
    keep(lab, 0, "timeline_cells_live")


def wait_for_file(folder: Path, timeout: float = 60.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while not list(folder.glob("*.jsonl")):
        assert time.monotonic() < deadline, f"no autosave in {folder}"
        time.sleep(0.25)
    return list(folder.glob("*.jsonl"))


def test_notebook7_draws_a_timeline_with_its_own_renderer(nb7: LabPage) -> None:
    path = SESSIONS / "quickstart.jsonl"
    nb7.server.write_notebook("nb7.ipynb", [f"import rlm_kernel\nrlm_kernel.timeline(r'{path}')"])
    nb7.open_notebook("nb7.ipynb")
    nb7.run_all()
    [chart] = wait_for_charts(nb7, 1)
    view = rlm_kernel.timeline(path)
    assert chart["rects"] == expected_marks(view)
    assert [x.strip() for x in chart["labels"]] == ["step 1", "step 2", "step 3"]
    keep(nb7, 0, "timeline_quickstart_notebook7")
