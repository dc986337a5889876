"""The timeline's picture: a Vega-Lite spec (the bars at their times, lane by lane, and tokens and
cost per lane beside them), a text form for terminals, the MIME bundle notebooks show, and files.

Why Vega-Lite. The spec is a JSON dict built here, so drawing costs no import. JupyterLab 4 and
Notebook 7 render ``application/vnd.vegalite.v5+json`` with their built-in renderer (Vega-Lite 5.6
in JupyterLab 4.6, offline, hover tooltips), and so do VS Code's notebook renderers; a front end
without the renderer (Colab, nbviewer, GitHub) takes the ``image/svg+xml`` of the same spec, drawn
by ``vl-convert-python`` (maintained by the Vega project, no browser, offline): measured here, its
import takes 2 ms, the first SVG 0.36 s (its V8 starting), later ones 40-50 ms, a PNG 90 ms and a
self-contained HTML file with the JavaScript inlined (0.9 MB) 0.9 s. It is a 33 MB wheel, so it is
the ``timeline`` extra: without it the bundle has the spec and the text, and ``save`` writes
``.json`` and ``.txt`` and says what to install for the rest. The bundle has no ``text/html``:
JupyterLab ranks HTML (50) above Vega-Lite (57) and would show it instead. matplotlib would give
pictures without hover and a 0.3 s import; plotly a 3.5 MB script in every output.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._timeline import KINDS, Lane, Timeline, build
from ._trajectory import Trajectory
from .errors import ConfigError, TrajectoryError

MIME = "application/vnd.vegalite.v5+json"
# Drawn as SVG in the page too (vega-embed's default is a canvas): crisp when zoomed, and its marks
# are elements that browser tests can count.
METADATA = {MIME: {"embed_options": {"renderer": "svg"}}}
SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
# vl-convert draws with the oldest Vega-Lite 5 it ships, the nearest to JupyterLab's own.
VL_VERSION = "5.8"
COLORS = ("#4e79a7", "#59a14f", "#f28e2b", "#edc948", "#b07aa1", "#e15759", "#bab0ac")
SUFFIXES = (".html", ".svg", ".png", ".json", ".txt")
INSTALL = "pip install 'rlm_kernel[timeline]' (vl-convert-python draws the pictures, offline)"
UNIT = 20  # pixels per row unit: a step's own row is one unit
GAP = 0.3  # units between lanes
SUB_ROWS = 4.0  # units a lane's sub-call rows take at most (a wave of 60 gets thin rows)
WIDTH, TOKENS_WIDTH = 560, 150


def can_draw() -> bool:
    """Whether vl-convert-python (the ``timeline`` extra) is installed: SVG, PNG and HTML."""
    return importlib.util.find_spec("vl_convert") is not None


class TimelineView:
    """One or more sessions' timelines, shown one above the other on the same time scale.

    In a notebook it displays itself (``_repr_mimebundle_``); ``text()`` is the terminal form,
    ``spec()`` the Vega-Lite spec, ``save(path)`` a file (``.html``, ``.svg``, ``.png``, ``.json``,
    ``.txt``), and ``timelines`` the data, from the trajectories alone (``_timeline.build``)."""

    def __init__(self, timelines: Sequence[Timeline], labels: Sequence[str]) -> None:
        self.timelines = list(timelines)
        self.labels = list(labels)

    def spec(self) -> dict[str, Any]:
        """The Vega-Lite 5 spec: per session the bars and, on the right, tokens and cost per lane."""
        span = max([t.duration for t in self.timelines] + [1e-3])
        most = max([ln.root_tokens + ln.sub_tokens for t in self.timelines for ln in t.lanes] + [1])
        charts = [
            _session_chart(t, label, span, most)
            for t, label in zip(self.timelines, self.labels, strict=True)
        ]
        body: dict[str, Any] = charts[0] if len(charts) == 1 else {"vconcat": charts, "spacing": 28}
        return {"$schema": SCHEMA, "config": {"view": {"stroke": None}}, **body}

    def text(self, width: int = 60) -> str:
        """The timelines as text: per lane a row of its calls and code over ``width`` columns, the
        sub-calls in flight below it, and its seconds, tokens and cost."""
        span = max([t.duration for t in self.timelines] + [1e-3])
        return "\n\n".join(
            _text(t, label, span, width)
            for t, label in zip(self.timelines, self.labels, strict=True)
        )

    def bundle(self) -> dict[str, Any]:
        """The MIME bundle: the Vega-Lite spec, its SVG when vl-convert is installed, the text."""
        spec = self.spec()
        data: dict[str, Any] = {MIME: spec}
        if can_draw():
            data["image/svg+xml"] = _convert("svg", spec)
        data["text/plain"] = self.text()
        return data

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.bundle(), METADATA

    def __repr__(self) -> str:
        return self.text()

    def save(self, path: str | Path) -> Path:
        """Write the picture to ``path``, in the format its suffix names: ``.html`` (one file, the
        JavaScript inlined, opens offline), ``.svg``, ``.png``, ``.json`` (the spec), ``.txt``."""
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix not in SUFFIXES:
            raise ConfigError(
                f"Cannot tell what to write the timeline as from the file name {target.name!r}",
                fix=f"Name the file with one of the suffixes {', '.join(SUFFIXES)}",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".txt":
            target.write_text(self.text() + "\n", encoding="utf-8")
        elif suffix == ".json":
            from . import _stdjson as json

            target.write_text(
                json.dumps(self.spec(), ensure_ascii=False, indent=1), encoding="utf-8"
            )
        else:
            if not can_draw():
                raise ConfigError(
                    f"Cannot write the timeline as {suffix}: vl-convert-python is not installed",
                    fix=f"{INSTALL}; or write .json (the Vega-Lite spec) or .txt",
                )
            drawn = _convert(suffix[1:], self.spec())
            if isinstance(drawn, bytes):
                target.write_bytes(drawn)
            else:
                target.write_text(drawn, encoding="utf-8")
        return target


def timeline(*sources: Any, labels: Sequence[str] | None = None) -> TimelineView:
    """The timeline of each source, one above the other: a ``Trajectory``, a ``Session`` (one still
    running is drawn up to now), a ``Result``, or the path of a trajectory file."""
    if not sources:
        raise TrajectoryError(
            "No session to draw a timeline of",
            fix="Pass a Result, a Session, a Trajectory or a trajectory file's path",
        )
    timelines, names = [], []
    for source in sources:
        trajectory, now = _trajectory_of(source)
        drawn = build(trajectory, now=now)
        timelines.append(drawn)
        names.append(_label(drawn.question))  # the scrubbed question: a secret in it stays out
    if labels is not None and len(labels) != len(sources):
        raise TrajectoryError(
            f"{len(labels)} labels for {len(sources)} timelines", fix="Pass one label per source"
        )
    return TimelineView(timelines, list(labels) if labels is not None else names)


def _trajectory_of(source: Any) -> tuple[Trajectory, float | None]:
    if isinstance(source, str | Path):
        source = Trajectory.load(source)
    trajectory = getattr(source, "trajectory", source)
    if not isinstance(trajectory, Trajectory):
        raise TrajectoryError(
            f"Cannot draw a timeline of a {type(source).__name__}",
            fix="Pass a Result, a Session, a Trajectory or a trajectory file's path",
        )
    # A session that is running has a step in progress; drawn up to now, as its live view is.
    now = time.time() if getattr(source, "state", None) == "running" else None
    return trajectory, now


def _label(question: str) -> str:
    question = " ".join(question.split())
    return question if len(question) <= 70 else question[:69] + "…"


def _convert(fmt: str, spec: dict[str, Any]) -> Any:
    import vl_convert as vlc  # the timeline extra; 2 ms

    if fmt == "svg":
        return vlc.vegalite_to_svg(spec, vl_version=VL_VERSION, allowed_base_urls=[])
    if fmt == "png":
        return vlc.vegalite_to_png(spec, vl_version=VL_VERSION, scale=2, allowed_base_urls=[])
    return vlc.vegalite_to_html(spec, vl_version=VL_VERSION, bundle=True)


# --- the chart -------------------------------------------------------------------------------------
def _layout(lanes: Sequence[Lane]) -> tuple[list[float], list[float], float]:
    """Each lane's top (in row units) and its sub-call rows' height; the total height."""
    tops, heights, y = [], [], 0.0
    for lane in lanes:
        subs = lane.rows - 1
        tops.append(y)
        heights.append(min(0.5, SUB_ROWS / subs) if subs else 0.0)
        y += 1 + subs * heights[-1] + GAP
    return tops, heights, max(y - GAP, 1.0)


def _session_chart(t: Timeline, label: str, span: float, most: int) -> dict[str, Any]:
    tops, heights, total = _layout(t.lanes)
    kinds = {b.kind for b in t.bars}
    present = [(k, c) for k, c in zip(KINDS, COLORS, strict=True) if k in kinds]
    least = span / 300  # the narrowest bar drawn: a cached call takes no time
    bars = []
    for b in t.bars:
        top = tops[b.lane] + (0 if b.row == 0 else 1 + (b.row - 1) * heights[b.lane])
        tall = 0.86 if b.row == 0 else heights[b.lane] * 0.85
        bars.append(
            {
                "lane": t.lanes[b.lane].label,
                "what": b.kind + (f" · {b.model}" if b.model else ""),
                "kind": b.kind,
                "x": b.start,
                "x2": max(b.end, b.start + least),
                "y": top,
                "y2": top + tall,
                "start": round(b.start, 3),
                "seconds": round(b.end - b.start, 3),
                "tokens": b.tokens,
                "cost": "unknown" if b.cost is None else f"${b.cost:.6f}",
                "cached": b.cached,
                "wave": b.wave or "",
                "prompt": b.prompt,
                "answer": f"Error: {b.error}" if b.error else b.answer,
            }
        )
    labels = [
        {"y": top + 0.45, "label": ("  " * ln.depth) + ln.label}
        for ln, top in zip(t.lanes, tops, strict=True)
    ]
    y = {"type": "quantitative", "scale": {"domain": [0, total], "reverse": True}, "axis": None}
    height = max(40, int(total * UNIT))
    tooltip = [
        {"field": f, "type": kind, "title": title}
        for f, kind, title in (
            ("lane", "nominal", "lane"),
            ("what", "nominal", "call"),
            ("start", "quantitative", "starts at (s)"),
            ("seconds", "quantitative", "seconds"),
            ("tokens", "quantitative", "tokens"),
            ("cost", "nominal", "cost"),
            ("cached", "nominal", "cached"),
            ("wave", "nominal", "parallel wave"),
            ("prompt", "nominal", "prompt / code"),
            ("answer", "nominal", "answer / output"),
        )
    ]
    x_scale = {"domain": [0, span], "nice": False}
    timeline_chart = {
        "width": WIDTH,
        "height": height,
        "layer": [
            {
                "data": {"values": bars},
                "mark": {"type": "bar", "stroke": "#222", "strokeDash": [3, 2]},
                "encoding": {
                    "x": {
                        "field": "x",
                        "type": "quantitative",
                        "scale": x_scale,
                        "title": "seconds since the session started",
                    },
                    "x2": {"field": "x2"},
                    "y": {"field": "y", **y},
                    "y2": {"field": "y2"},
                    "color": {
                        "field": "kind",
                        "type": "nominal",
                        "scale": {
                            "domain": [k for k, _ in present],
                            "range": [c for _, c in present],
                        },
                        "legend": {
                            "title": None,
                            "orient": "bottom",
                            "columns": 4,
                            "symbolStrokeWidth": 0,
                        },
                    },
                    "opacity": {"condition": {"test": "datum.cached", "value": 0.45}, "value": 1},
                    "strokeWidth": {"condition": {"test": "datum.cached", "value": 1}, "value": 0},
                    "tooltip": tooltip,
                },
            },
            {
                "data": {"values": labels},
                "mark": {"type": "text", "align": "right", "dx": -6, "fontSize": 11},
                "encoding": {
                    "x": {"value": 0},
                    "y": {"field": "y", **y},
                    "text": {"field": "label"},
                },
            },
        ],
    }
    costs = [ln.cost for ln in t.lanes if ln.cost is not None]
    tokens = []
    for ln, top in zip(t.lanes, tops, strict=True):
        for part, x0, x1 in (
            ("root model", 0, ln.root_tokens),
            ("sub-calls", ln.root_tokens, ln.root_tokens + ln.sub_tokens),
        ):
            if x1 > x0:
                tokens.append(
                    {
                        "lane": ln.label,
                        "part": part,
                        "x": x0,
                        "x2": x1,
                        "tokens": x1 - x0,
                        "y": top,
                        "y2": top + 0.86,
                        "cost": "unknown" if ln.cost is None else f"${ln.cost:.6f}",
                    }
                )
    tokens_chart = {
        "width": TOKENS_WIDTH,
        "height": height,
        "data": {"values": tokens},
        "mark": "bar",
        "encoding": {
            "x": {
                "field": "x",
                "type": "quantitative",
                "scale": {"domain": [0, most]},
                "title": "tokens per lane" + (" (cost in the tooltip)" if costs else ""),
            },
            "x2": {"field": "x2"},
            "y": {"field": "y", **y},
            "y2": {"field": "y2"},
            "color": {
                "field": "part",
                "type": "nominal",
                "scale": {"domain": ["root model", "sub-calls"], "range": [COLORS[0], COLORS[2]]},
                "legend": {"title": None, "orient": "bottom"},
            },
            "tooltip": [
                {"field": "lane", "type": "nominal"},
                {"field": "part", "type": "nominal"},
                {"field": "tokens", "type": "quantitative"},
                {"field": "cost", "type": "nominal"},
            ],
        },
    }
    return {
        "title": {"text": label, "subtitle": _subtitle(t, costs), "anchor": "start"},
        "hconcat": [timeline_chart, tokens_chart],
        "resolve": {"scale": {"color": "independent"}, "legend": {"color": "independent"}},
    }


def _subtitle(t: Timeline, costs: list[float], *, legend: bool = True) -> str:
    steps = sum(1 for ln in t.lanes if ln.kind == "step" and ln.depth == 0)
    what = (
        f"{steps} step{'s' if steps != 1 else ''}" if steps or t.ended != "baseline" else "one call"
    )
    state = f"ended: {t.ended}" if t.ended else "running or paused"
    tokens = sum(ln.root_tokens + ln.sub_tokens for ln in t.lanes if ln.depth == 0)
    cost = f", ${sum(costs):.4f}" if costs else ""
    cached = legend and any(b.cached for b in t.bars)
    return f"{what}, {t.duration:.1f} s, {tokens:,} tokens{cost}, {state}" + (
        " · faded, dashed bars: cached" if cached else ""
    )


# --- the text form ---------------------------------------------------------------------------------
SHADES = " ▁▂▃▄▅▆▇█"


def _text(t: Timeline, label: str, span: float, width: int) -> str:
    summary = _subtitle(t, [ln.cost for ln in t.lanes if ln.cost is not None], legend=False)
    lines = [f"{label}  [{t.session_id}]", summary]
    lines.append(" " * 26 + "0 s".ljust(width - 8) + f"{span:.1f} s".rjust(8))
    per = span / width
    for index, lane in enumerate(t.lanes):
        own = [" "] * width
        counts = [0] * width
        for b in t.bars:
            if b.lane != index:
                continue
            first, last = (
                int(b.start / per),
                max(int(b.start / per), int(min(b.end, span) / per - 1e-9)),
            )
            for col in range(max(first, 0), min(last, width - 1) + 1):
                if b.row == 0:
                    own[col] = {"code": "#", "running": "~"}.get(b.kind, "=")
                else:
                    counts[col] += 1
        name = ("  " * lane.depth + lane.label)[:25].ljust(26)
        extra = f"{lane.end - lane.start:7.1f} s {lane.root_tokens + lane.sub_tokens:>7,} tok"
        if lane.cost is not None:
            extra += f" ${lane.cost:.4f}"
        lines.append(f"{name}|{''.join(own)}|{extra}")
        if lane.subcalls:
            top = max(counts) or 1
            shade = "".join(SHADES[min(8, -(-8 * c // top))] if c else " " for c in counts)
            cached = f", {lane.cached} cached" if lane.cached else ""
            what = f"{lane.subcalls} sub-call{'s' if lane.subcalls != 1 else ''}"
            lines.append(
                f"{('  ' * lane.depth + '  ' + what)[:25].ljust(26)}|{shade}| up to {top} at once{cached}"
            )
    lines.append("= root model  # code  ▁▄█ sub-calls in flight  ~ running")
    return "\n".join(lines)


def draw_timeline(trajectory: Trajectory, target: str) -> int:
    """``rlm-kernel replay … --timeline [FILE]``: the text form on standard output (``-``), or the
    picture written to ``target``, named on standard error. Returns the exit code, 0."""
    import sys

    view = timeline(trajectory)
    if target == "-":
        print(view.text(width=max(30, min(100, shutil.get_terminal_size().columns - 50))))
    else:
        print(f"rlm-kernel: wrote the timeline to {view.save(target)}", file=sys.stderr)
    return 0
