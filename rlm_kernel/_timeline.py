"""A session's timeline as data, derived from its trajectory alone: one lane per root step (child RLMs'
steps as nested lanes under the step that started them), a bar for each root-model call, each block
run and each sub-call at its real start and duration, parallel sub-calls stacked on rows of their lane,
cached calls marked, and tokens and cost per lane.

Because nothing but the records goes in, a session drawn while it runs and the same records drawn
from the saved file afterwards give the same timeline (``build(trajectory)``); a running session's
step in progress, which has no record yet, is one open bar up to ``now`` when the caller passes it.

How the times are read (docs/formats.md §1): a sub-call record has its real start (``started``, Unix
seconds) and ``latency`` (from the call's creation, so a wait for a concurrency slot is in it). An
``iteration`` record is stamped when its last block ended (``started``) and has ``duration``, the root
call's latency plus the blocks' time: the blocks are drawn ending at the stamp and the root call just
before them. That is exact for a run (``run()``); in step mode a person's pause between the proposal
and the run is not in the record, and the root call is drawn adjoining the blocks. A guard that
stopped a step before it ran, and the forced best-answer (or baseline) call, end at their records'
stamps. The bars' times are seconds since the root session's ``created``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from ._schema import standing
from ._trajectory import Trajectory

PREVIEW_CHARS = 240  # of a prompt or an answer, in a bar's tooltip

# What a bar stands for, in the order a legend lists them.
KINDS = ("root model", "code", "llm_query", "llm_batch", "rlm_query", "answer call", "running")


@dataclass(frozen=True)
class Bar:
    """One span of time on a lane: a root-model call, a step's blocks running, or a sub-call."""

    lane: int  # index into Timeline.lanes
    row: int  # 0: the step's own calls and code; 1 and on: its sub-calls, overlapping ones apart
    kind: str  # one of KINDS
    start: float  # seconds since the session began
    end: float
    model: str = ""
    cached: bool = False
    tokens: int = 0
    cost: float | None = None
    wave: str | None = None  # an llm_batch's id: the items that ran in parallel
    call_id: str = ""
    error: str | None = None
    prompt: str = ""  # previews, PREVIEW_CHARS at most
    answer: str = ""


@dataclass(frozen=True)
class Lane:
    """A root step (``depth`` 0), a child RLM's step (``depth`` 1 and on, right after its
    parent's lane), a step a guard stopped before it ran, the answer call, or the step running."""

    label: str
    kind: str  # "step", "not run", "answer", "running"
    depth: int
    iteration: int | None
    rows: int  # 1 + the rows its sub-calls take
    start: float
    end: float
    root_tokens: int  # the root (or child's) model call of the step
    sub_tokens: int  # its sub-calls (a child RLM's whole tree included)
    cost: float | None  # the known costs summed; None when no call reported one
    subcalls: int
    cached: int  # sub-calls answered by the cache (or, in a replay, by the recording)
    final: bool  # the step submitted the answer


@dataclass(frozen=True)
class Timeline:
    """A session's timeline (see the module docstring); ``to_dict`` is its plain-data form."""

    session_id: str
    question: str
    created: str
    duration: float  # seconds from the session's start to the end of its last bar
    ended: str | None  # the final record's reason; None while it runs or is paused
    answer: str | None
    lanes: list[Lane] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The timeline as JSON-ready data: the same for a live session and its saved records."""
        return asdict(self)


def build(trajectory: Trajectory, *, now: float | None = None) -> Timeline:
    """The timeline of ``trajectory`` (scrubbed of secrets first, as every export is). ``now``
    (Unix seconds), for a session that is still running: its step in progress is drawn up to it."""
    clean = trajectory.scrubbed()
    session = clean.session
    t0 = _epoch(session["created"])
    lanes: list[Lane] = []
    bars: list[Bar] = []
    _session_lanes(clean, t0, 0, "", lanes, bars)
    final = clean.final
    if final is None and now is not None:
        begun = max([b.end for b in bars], default=0.0)
        step = len(clean.iterations) + 1
        end = max(now - t0, begun)
        lanes.append(_lane(f"step {step}", "running", 0, step, begun, end))
        bars.append(Bar(len(lanes) - 1, 0, "running", begun, end))
    return Timeline(
        session_id=session["session_id"],
        question=session["question"],
        created=session["created"],
        duration=max([b.end for b in bars], default=0.0),
        ended=final["reason"] if final else None,
        answer=final["answer"] if final else None,
        lanes=lanes,
        bars=bars,
    )


def _session_lanes(
    trajectory: Trajectory, t0: float, depth: int, prefix: str, lanes: list[Lane], bars: list[Bar]
) -> None:
    """The lanes of one session (a child's nested after its parent's step), appended in order."""
    for record, _after in standing(trajectory.records):
        if record["type"] == "iteration":
            _step(record, t0, depth, prefix, trajectory, lanes, bars)
        elif record["type"] == "guard" and record["model_call"] and record["action"] == "stopped":
            call = record["model_call"]
            end = _epoch(record["at"]) - t0
            start = end - float(call["latency"])
            label = f"{prefix}step {record['iteration']} (not run)"
            lanes.append(_lane(label, "not run", depth, record["iteration"], start, end, call))
            bars.append(_root_bar(len(lanes) - 1, call, start, end, record["response"] or ""))
        elif record["type"] == "final" and record["forced"]:
            forced = record["forced"]
            call = forced["model_call"]
            end = _epoch(record["finished"]) - t0
            start = end - float(call["latency"])
            what = "direct call" if record["reason"] == "baseline" else "best answer"
            lanes.append(_lane(f"{prefix}{what}", "answer", depth, None, start, end, call, True))
            bar = _root_bar(len(lanes) - 1, call, start, end, forced["response"])
            bars.append(replace(bar, kind="answer call"))


def _step(
    record: Mapping[str, Any],
    t0: float,
    depth: int,
    prefix: str,
    trajectory: Trajectory,
    lanes: list[Lane],
    bars: list[Bar],
) -> None:
    call = record["model_call"]
    end = _epoch(record["started"]) - t0  # stamped when its last block ended
    code = max(0.0, float(record["duration"]) - float(call["latency"]))
    begin = end - code - float(call["latency"])
    index = len(lanes)
    own = [_root_bar(index, call, begin, end - code, record["response"])]
    own.append(
        Bar(
            index,
            0,
            "code",
            end - code,
            end,
            prompt=_preview(record["code"]),
            answer=_preview(record["output"]),
        )
    )
    subcalls = list(record.get("subcalls", []))
    sub_bars = [_sub_bar(index, 0, sub, t0) for sub in subcalls]
    rows = _rows([(b.start, b.end) for b in sub_bars])
    sub_bars = [replace(b, row=row) for b, row in zip(sub_bars, rows, strict=True)]
    costs = [call["usage"].get("cost"), *(s["usage"].get("cost") for s in subcalls)]
    known = [c for c in costs if c is not None]
    label = f"{prefix}step {record['iteration']}"
    lanes.append(
        Lane(
            label=label,
            kind="step",
            depth=depth,
            iteration=record["iteration"],
            rows=1 + max(rows, default=0),
            start=min([begin, *(b.start for b in sub_bars)]),
            end=max([end, *(b.end for b in sub_bars)]),
            root_tokens=_tokens(call["usage"]),
            sub_tokens=sum(_tokens(s["usage"]) for s in subcalls),
            cost=sum(known) if known else None,
            subcalls=len(subcalls),
            cached=sum(1 for s in subcalls if s["cached"]),
            final=record.get("final") is not None,
        )
    )
    # A step recreated by a rewind made no root call: it has no root bar.
    bars.extend(b for b in own if b.end > b.start or b.kind == "code")
    bars.extend(sub_bars)
    for n, sub in enumerate(subcalls, 1):
        if sub.get("child"):
            child = Trajectory.from_dict(sub["child"])
            _session_lanes(child, t0, depth + 1, f"child {n} · ", lanes, bars)


def _lane(
    label: str,
    kind: str,
    depth: int,
    iteration: int | None,
    start: float,
    end: float,
    call: Mapping[str, Any] | None = None,
    final: bool = False,
) -> Lane:
    """A lane of one root-model call (or none: the step running)."""
    usage = call["usage"] if call else {}
    return Lane(
        label,
        kind,
        depth,
        iteration,
        1,
        start,
        end,
        _tokens(usage),
        0,
        usage.get("cost"),
        0,
        0,
        final,
    )


def _root_bar(lane: int, call: Mapping[str, Any], start: float, end: float, response: str) -> Bar:
    return Bar(
        lane,
        0,
        "root model",
        start,
        end,
        model=call["model"],
        cached=bool(call["cached"]),
        tokens=_tokens(call["usage"]),
        cost=call["usage"].get("cost"),
        answer=_preview(response),
    )


def _sub_bar(lane: int, row: int, call: Mapping[str, Any], t0: float) -> Bar:
    start = float(call["started"]) - t0
    batch = call.get("batch")
    return Bar(
        lane,
        row,
        call["kind"],
        start,
        start + float(call["latency"]),
        model=call["model"],
        cached=bool(call["cached"]),
        tokens=_tokens(call["usage"]),
        cost=call["usage"].get("cost"),
        wave=batch["id"] if batch else None,
        call_id=call["id"],
        error=call["error"],
        prompt=_preview(call["prompt"]),
        answer=_preview(call["response"]),
    )


def _rows(spans: Iterable[tuple[float, float]]) -> list[int]:
    """A row (1 and on) for each span, in order: the first row free at its start, so calls that
    overlap in time (a batch's parallel wave) stack, and calls one after another share a row."""
    spans = list(spans)
    free_at: list[float] = []  # per row, when its last span ends
    rows = [0] * len(spans)
    for i in sorted(range(len(spans)), key=lambda k: (spans[k][0], k)):
        start, end = spans[i]
        for row, free in enumerate(free_at):
            if free <= start:
                free_at[row] = end
                rows[i] = row + 1
                break
        else:
            free_at.append(end)
            rows[i] = len(free_at)
    return rows


def _tokens(usage: Mapping[str, Any]) -> int:
    return int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)


def _preview(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()
