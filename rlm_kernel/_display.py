"""Rich displays of a ``Result``, a ``Trajectory`` and a ``UsageSummary``: HTML and Markdown for
notebooks, a one-line plain text for terminals and logs.

A result shows its answer, why it ended, the question, the steps, sub-calls, tokens, cost and time,
the usage by model, its timeline (``_timeline_view``: the SVG when vl-convert is installed, else the
text form; the interactive Vega-Lite chart is ``rlm_kernel.timeline(result)``) and what can be done
with the record: the autosave file (a link when it lies under the working directory, which is where
a notebook server can serve it from: the kernel starts in the notebook's directory), and the export,
timeline and replay commands. Everything shown comes from the records, scrubbed of secrets as every
export is; everything model-written (answers, questions, model names) is escaped.

The records reach this module through ``_rich`` (the package face installs ``render``), since they
live below the timeline in the layers.
"""

from __future__ import annotations

import html
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ._records import Result
from ._timeline import build
from ._timeline_view import TimelineView, can_draw
from ._trajectory import Trajectory
from .models import Usage, UsageSummary

__all__ = ["render"]

_PIPE = "\\|"  # GFM: a pipe escaped inside a table cell, code spans included
_ANSWER_CHARS = 4_000  # an answer longer than this is cut in the display (the record keeps it)
_STYLE = (
    "font-family:var(--jp-ui-font-family,sans-serif);font-size:13px;border:1px solid "
    "var(--jp-border-color2,#ddd);border-radius:4px;padding:8px 12px;max-width:900px"
)


def render(obj: object, mime: str) -> str | None:
    """``obj`` (a Result, Trajectory or UsageSummary) as ``mime``: ``text/html``,
    ``text/markdown`` or ``text/plain``; None for anything else."""
    if isinstance(obj, Result):
        return _result(obj, mime)
    if isinstance(obj, Trajectory):
        return _trajectory(obj, mime)
    if isinstance(obj, UsageSummary):
        return _usage(obj, mime)
    return None


# --- the facts, once for every form ----------------------------------------------------------------


def _facts(trajectory: Trajectory, usage: UsageSummary) -> list[tuple[str, str]]:
    """(label, value) rows: steps, sub-calls, tokens, cost, time."""
    total = usage.total
    final = trajectory.final
    steps = len(trajectory.iterations)
    subcalls = sum(1 for _ in trajectory.subcalls())
    seconds = final["duration"] if final is not None else build(trajectory).duration
    return [
        ("steps", str(steps)),
        ("sub-calls", str(subcalls)),
        ("tokens", _tokens(total)),
        ("cost", _cost(total) + _unpriced(usage)),
        ("time", f"{seconds:.1f} s"),
    ]


def _tokens(u: Usage) -> str:
    cached = f", {u.cached_tokens:,} cached" if u.cached_tokens else ""
    estimated = " (estimated)" if u.estimated else ""
    return (
        f"{u.total_tokens:,} ({u.prompt_tokens:,} prompt{cached}, {u.completion_tokens:,} "
        f"completion) in {u.calls:,} call(s){estimated}"
    )


def _unpriced(usage: UsageSummary) -> str:
    """What a known total leaves out: the models whose calls have no price."""
    missing = sorted(m for m, u in usage.by_model.items() if u.cost is None and u.calls)
    if usage.total.cost is None or not missing:
        return ""
    return f" (without {', '.join(missing)}: no price)"


def _cost(u: Usage) -> str:
    return "unknown (no price for these models)" if u.cost is None else f"${u.cost:.4f}"


def _answer_text(answer: str | None) -> str:
    if answer is None:
        return ""
    if len(answer) <= _ANSWER_CHARS:
        return answer
    return answer[:_ANSWER_CHARS] + f"\n… ({len(answer) - _ANSWER_CHARS:,} more characters)"


def _what_next(path: Path | None) -> list[tuple[str, str]]:
    """(what, how) rows: the file and the commands that take the record further."""
    rows: list[tuple[str, str]] = []
    if path is not None:
        rows.append(("trajectory", str(path)))
        rows.append(("replay", f"rlm-kernel replay {path} CONTEXT  (or %rlm replay {path} ctx)"))
    rows.append(("export", "%rlm export run.ipynb  (json, jsonl, rlm-jsonl, ipynb, sft)"))
    rows.append(("timeline", "rlm_kernel.timeline(result)  (.save('timeline.html'))"))
    return rows


def _link(path: Path) -> str:
    """The file as a link a notebook server can follow (relative, under the working directory),
    else as plain text: a server serves only what lies under its root."""
    shown = html.escape(str(path))
    try:
        relative = Path(os.path.relpath(path.resolve(), Path.cwd()))
    except ValueError:  # another drive (Windows)
        return f"<code>{shown}</code>"
    if relative.parts and relative.parts[0] == "..":
        return f"<code>{shown}</code>"
    href = html.escape(relative.as_posix(), quote=True)
    return f'<a href="{href}" target="_blank" rel="noopener"><code>{shown}</code></a>'


# --- Result -----------------------------------------------------------------------------------------


def _result(r: Result, mime: str) -> str | None:
    trajectory = r.trajectory.scrubbed()
    if r.trajectory.records:  # the answer and message as the records keep them: without secrets
        scrub = r.trajectory.redactor().scrub
        answer = None if r.answer is None else scrub(r.answer)
        r = replace(r, answer=answer, message=scrub(r.message), trajectory=trajectory)
    if mime == "text/plain":
        answer = "no answer" if r.answer is None else repr(_short(r.answer, 60))
        known = dict(_facts(trajectory, r.usage))
        return (
            f"<Result {r.reason}: {answer}, {known['steps']} step(s), "
            f"{r.usage.total.total_tokens:,} tokens, {known['cost']}, {known['time']}>"
        )
    question = trajectory.session["question"] if trajectory.records else ""
    if mime == "text/markdown":
        return _result_markdown(r, trajectory, question)
    if mime != "text/html":
        return None
    e = html.escape
    answer = (
        f"<pre style='white-space:pre-wrap;margin:4px 0'>{e(_answer_text(r.answer))}</pre>"
        if r.answer is not None
        else "<p><i>no answer</i></p>"
    )
    facts = "".join(
        f"<tr><th style='text-align:left;padding-right:12px'>{e(k)}</th><td>{e(v)}</td></tr>"
        for k, v in _facts(trajectory, r.usage)
    )
    path_row = (
        f"<tr><th style='text-align:left;padding-right:12px'>trajectory</th><td>{_link(r.path)}</td></tr>"
        if r.path is not None
        else ""
    )
    more = "".join(
        f"<tr><th style='text-align:left;padding-right:12px'>{e(k)}</th><td><code>{e(v)}</code></td></tr>"
        for k, v in _what_next(r.path)
        if k != "trajectory"
    )
    return (
        f"<div class='rlm-result' style='{_STYLE}'>"
        f"<div><b>RLM result</b> <span class='rlm-reason' style='padding:1px 6px;border-radius:3px;"
        f"background:{'#e3f1df' if r.ok else '#fbeed5'}'>{e(r.reason)}</span></div>"
        f"<div style='color:#666;margin-top:4px'>{e(_short(question, 300))}</div>"
        f"{answer}<p style='margin:4px 0'>{e(r.message)}</p>"
        f"<table>{facts}</table>"
        f"<details><summary>usage by model</summary>{_usage_table(r.usage)}</details>"
        f"<details><summary>timeline</summary>{_timeline_html(trajectory)}</details>"
        f"<details><summary>the record</summary><table>{path_row}{more}</table></details>"
        "</div>"
    )


def _result_markdown(r: Result, trajectory: Trajectory, question: str) -> str:
    answer = _answer_text(r.answer) if r.answer is not None else "*no answer*"
    lines = [
        f"**RLM result**: `{r.reason}`",
        "",
        f"> {_md_line(_short(question, 300))}",
        "",
        _fenced(answer) if r.answer is not None else answer,
        "",
        _md_line(r.message),
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {_md_cell(v)} |" for k, v in _facts(trajectory, r.usage)),
        *(f"| {k} | {_md_code(v)} |" for k, v in _what_next(r.path)),
    ]
    return "\n".join(lines)


# --- Trajectory -------------------------------------------------------------------------------------


def _recorded_usage(t: Trajectory) -> UsageSummary:
    """The usage the last final record holds (the whole tree's), else the root calls' own."""
    final = t.final
    if final is not None and final.get("usage"):
        return UsageSummary.from_dict(final["usage"])
    summary = UsageSummary()
    for step in t.iterations:
        call = step.get("model_call")
        if call is not None:
            summary.add(call["model"], Usage.from_dict(call["usage"]))
    return summary


def _trajectory(t: Trajectory, mime: str) -> str | None:
    if not t.records or t.records[0]["type"] != "session":
        return None  # not a whole trajectory: the plain repr says what it holds
    clean = t.scrubbed()
    final = clean.final
    usage = _recorded_usage(clean)
    answer = final["answer"] if final is not None else None
    state = final["reason"] if final is not None else "not finished"
    if mime == "text/plain":
        return None  # Trajectory.__repr__ stays the short one
    question = clean.session["question"]
    if mime == "text/markdown":
        lines = [
            f"**RLM trajectory** `{clean.session['session_id']}`: `{state}`",
            "",
            f"> {_md_line(_short(question, 300))}",
            "",
            _fenced(_answer_text(answer)) if answer is not None else "*no answer*",
            "",
            "| | |",
            "|---|---|",
            *(f"| {k} | {_md_cell(v)} |" for k, v in _facts(clean, usage)),
        ]
        return "\n".join(lines)
    if mime != "text/html":
        return None
    e = html.escape
    facts = "".join(
        f"<tr><th style='text-align:left;padding-right:12px'>{e(k)}</th><td>{e(v)}</td></tr>"
        for k, v in _facts(clean, usage)
    )
    shown = (
        f"<pre style='white-space:pre-wrap;margin:4px 0'>{e(_answer_text(answer))}</pre>"
        if answer is not None
        else "<p><i>no answer</i></p>"
    )
    return (
        f"<div class='rlm-trajectory' style='{_STYLE}'>"
        f"<div><b>RLM trajectory</b> <code>{e(clean.session['session_id'])}</code> "
        f"<span class='rlm-reason'>{e(state)}</span></div>"
        f"<div style='color:#666;margin-top:4px'>{e(_short(question, 300))}</div>{shown}"
        f"<table>{facts}</table>"
        f"<details><summary>usage by model</summary>{_usage_table(usage)}</details>"
        f"<details><summary>timeline</summary>{_timeline_html(clean)}</details>"
        "</div>"
    )


# --- UsageSummary -----------------------------------------------------------------------------------


def _usage(u: UsageSummary, mime: str) -> str | None:
    if mime == "text/plain":
        models = ", ".join(f"{m}: {_tokens(x)}, {_cost(x)}" for m, x in sorted(u.by_model.items()))
        return f"<UsageSummary {_tokens(u.total)}, {_cost(u.total)}" + (
            f"; {models}>" if models else ">"
        )
    if mime == "text/markdown":
        rows = [
            "| model | tokens | cost |",
            "|---|---|---|",
            *(
                f"| {_md_code(m)} | {_tokens(x)} | {_cost(x)} |"
                for m, x in sorted(u.by_model.items())
            ),
            f"| **total** | {_tokens(u.total)} | {_cost(u.total)} |",
        ]
        return "\n".join(rows)
    if mime == "text/html":
        return f"<div class='rlm-usage' style='{_STYLE}'>{_usage_table(u)}</div>"
    return None


def _usage_table(u: UsageSummary) -> str:
    e = html.escape
    head = (
        "<tr><th style='text-align:left'>model</th><th>calls</th><th>prompt</th><th>cached</th>"
        "<th>completion</th><th>cost</th></tr>"
    )

    def row(name: str, x: Usage, bold: bool = False) -> str:
        cells = [
            str(x.calls),
            f"{x.prompt_tokens:,}",
            f"{x.cached_tokens:,}",
            f"{x.completion_tokens:,}",
            "unknown" if x.cost is None else f"${x.cost:.4f}",
        ]
        tag = "b" if bold else "code"
        return (
            f"<tr><td><{tag}>{e(name)}</{tag}></td>"
            + "".join(f"<td style='text-align:right'>{c}</td>" for c in cells)
            + "</tr>"
        )

    rows = "".join(row(m, x) for m, x in sorted(u.by_model.items()))
    return f"<table>{head}{rows}{row('total', u.total, bold=True)}</table>"


# --- the timeline -----------------------------------------------------------------------------------


def _timeline_html(trajectory: Trajectory) -> str:
    """The timeline as a picture (vl-convert's SVG, made from the spec's own data) when the
    ``timeline`` extra is installed, else its text form."""
    view = TimelineView([build(trajectory)], ["session"])
    if can_draw():
        bundle: dict[str, Any] = view.bundle()
        svg = bundle.get("image/svg+xml")
        if isinstance(svg, str):
            return f"<div class='rlm-timeline'>{svg}</div>"
    return f"<pre class='rlm-timeline'>{html.escape(view.text())}</pre>"


# --- text helpers -----------------------------------------------------------------------------------


def _short(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _md_line(text: str) -> str:
    """One Markdown line: HTML escaped (Markdown renders raw HTML), line breaks as spaces."""
    return html.escape(" ".join(text.split()))


def _md_cell(text: str) -> str:
    return _md_line(text).replace("|", "\\|")


def _md_code(text: str) -> str:
    """A code span in a table cell: literal text (no escaping inside), backticks that cannot close
    it, and no bare ``|`` to split the cell."""
    ticks = "`" * (_longest_backticks(text) + 1)
    return f"{ticks} {' '.join(text.split()).replace('|', _PIPE)} {ticks}"


def _fenced(text: str) -> str:
    """``text`` in a code fence long enough that no run of backticks in it closes it early."""
    ticks = "`" * max(3, _longest_backticks(text) + 1)
    return f"{ticks}\n{text}\n{ticks}"


def _longest_backticks(text: str) -> int:
    best = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        best = max(best, run)
    return best
