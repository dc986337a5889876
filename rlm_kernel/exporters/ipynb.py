"""``ipynb``: a standalone notebook (nbformat 4.5) that reads like the session did.

A title cell (question, context fingerprint), then per standing iteration a markdown cell with the
model's words around its code and the step's numbers, and a code cell holding the code that ran with its
recorded outputs (stdout, stderr, the traceback as an error output, the value as ``execute_result``,
sub-calls as ``<details>`` in a ``display_data``), then the answer. It is a record, not something to
re-run: ``P`` and the helpers are not in it. It opens cleanly untrusted: no JavaScript, only
``text/plain``, ``text/html`` and markdown, and every piece of model or user text is HTML-escaped.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, cast

from .. import _stdjson as json
from .._guards import guard_line
from .._schema import SCHEMA_VERSION, GuardRecord, context_summary
from .._trajectory import Trajectory
from .._version import __version__
from ._common import subcall_tokens, walk, write_text

# A fenced block, or an unclosed one running to the end: what is left is the model's prose.
_FENCED = re.compile(r"```[^\n]*\n.*?(?:```|\Z)", re.DOTALL)


def write(trajectory: Trajectory, path: Path, *, max_chars: int = 2_000) -> None:
    """``max_chars``: how much of each sub-call prompt and response is shown (they often carry large
    slices of ``P``; the json export keeps them whole)."""
    notebook = build(trajectory, max_chars=max_chars)
    write_text(path, json.dumps(notebook, ensure_ascii=False, indent=1) + "\n", trajectory)


def build(trajectory: Trajectory, *, max_chars: int = 2_000) -> dict[str, Any]:
    """The nbformat 4.5 notebook ``write`` saves, as a dict; cell ids are ``{session}-{index}``."""
    session = trajectory.session
    sid = session["session_id"]
    steps, _ = walk(trajectory)
    standing = sum(step.type == "iteration" for step in steps)
    cells = [_markdown(_title(trajectory, standing), None, "title")]
    for step in steps:
        record = step.record
        if step.type == "iteration":
            cells.append(_markdown(_notes(record), record["iteration"], "step-notes"))
            if record["code"].strip():
                cells.append(_code_cell(record, max_chars))
        elif step.type == "compaction":
            text = f"*History compacted after step {step.after}; the model went on from:*"
            text += f"\n\n{_esc(record['summary'])}"
            cells.append(_markdown(text, step.after, "compaction"))
        elif step.type == "follow_up":
            text = f"## Follow-up question\n\n{_esc(record['question'])}"
            cells.append(_markdown(text, step.after, "follow-up"))
        elif step.type == "guard":
            text = f"*{_esc(guard_line(cast(GuardRecord, record)))}*"
            cells.append(_markdown(text, record["iteration"], "guard"))
        elif step.type == "final":
            cells.append(_markdown(_answer(record), step.after, "answer"))
    if not steps or steps[-1].type != "final":
        text = "## Not finished\n\nThe session had not ended when it was exported."
        cells.append(_markdown(text, None, "answer"))
    for index, cell in enumerate(cells):
        # Unique and stable ids (nbformat 4.5); the session id keeps them unique across merged notebooks.
        cell["id"] = f"{sid}-{index}"
        cell["metadata"]["rlm"] = {"session": sid, **cell["metadata"]["rlm"]}
    final = trajectory.final
    typed: dict[str, Any] = {"output": session["output"]} if "output" in session else {}
    if typed and final is not None:
        typed["value"] = final.get("value")
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "rlm": {
                "session": sid,
                "question": session["question"],
                "reason": final["reason"] if final else None,
                "schema_version": SCHEMA_VERSION,
                "exported_by": f"rlm_kernel {__version__}",
                **typed,  # a typed session (output=): the spec, and the validated answer as JSON
            },
        },
        "cells": cells,
    }


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters; the json export has them all]"


def _markdown(text: str, n: int | None, role: str) -> dict[str, Any]:
    return {
        "cell_type": "markdown",
        "metadata": {"rlm": {"iteration": n, "role": role}},
        "source": text,
    }


def _title(trajectory: Trajectory, steps: int) -> str:
    session = trajectory.session
    superseded = sum(r["type"] == "iteration" for r in trajectory.records) - steps
    lines = [
        "# RLM session",
        "",
        f"**Question:** {_esc(session['question'])}",
        "",
        f"- Context `P`: {_esc(context_summary(session))} (not included)",
        f"- Models: root `{_esc(session['models']['root'])}`, sub `{_esc(session['models']['sub'])}`",
        f"- Session `{_esc(session['session_id'])}`, started {_esc(session['created'])}",
        f"- {steps} step{'' if steps == 1 else 's'}"
        + (f" ({superseded} superseded by rewinds, not shown)" if superseded else ""),
    ]
    return "\n".join(lines)


def _notes(record: dict[str, Any]) -> str:
    calls = record.get("subcalls", [])
    usage = record["model_call"]["usage"]
    tokens = int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))
    tokens += sum(sum(subcall_tokens(call)) for call in calls)
    facts = [
        f"{len(calls)} sub-call{'' if len(calls) == 1 else 's'}",
        f"{tokens:,} tokens",
        f"{float(record['duration']):.2f} s",
    ]
    if record["edited_by_user"]:
        facts.append("**edited by a person**")
    parts = [f"### Step {record['iteration']}"]
    prose = _FENCED.sub("", record["response"]).strip()
    if prose:
        parts.append(_esc(prose))
    parts.append(" · ".join(facts))
    if record["edited_by_user"] and record.get("diff"):
        # <pre> is a raw HTML block in CommonMark up to </pre>, so the escaped diff keeps its lines.
        parts.append(f"What the person changed:\n<pre>{_esc(record['diff'])}</pre>")
    parts += [f"> Note: {_esc(note)}" for note in record.get("notes", [])]
    if record.get("final"):
        parts.append(f"Submitted with `{_esc(record['final']['source'])}`.")
    if record.get("invalid"):  # a typed answer refused: the validator's message is in the notes
        parts.append(f"Submitted with `{_esc(record['invalid']['source'])}`; did not match.")
    return "\n\n".join(parts)


def _code_cell(record: dict[str, Any], max_chars: int) -> dict[str, Any]:
    n = record["iteration"]
    outputs: list[dict[str, Any]] = []
    for result in record["results"]:
        for name in ("stdout", "stderr"):
            if result[name]:
                outputs.append({"output_type": "stream", "name": name, "text": result[name]})
        if result.get("error"):
            outputs.append(_error(result))
        if result.get("value") is not None:
            outputs.append(
                {
                    "output_type": "execute_result",
                    "execution_count": n,
                    "data": {"text/plain": result["value"]},
                    "metadata": {},
                }
            )
    calls = record.get("subcalls", [])
    if calls:
        outputs.append(
            {
                "output_type": "display_data",
                "data": {
                    "text/html": _calls_html(calls, max_chars),
                    "text/plain": _calls_text(calls),
                },
                "metadata": {},
            }
        )
    return {
        "cell_type": "code",
        "metadata": {
            "rlm": {
                "iteration": n,
                "role": "step",
                "edited_by_user": bool(record["edited_by_user"]),
            }
        },
        "execution_count": n,
        "source": record["code"],
        "outputs": outputs,
    }


def _error(result: dict[str, Any]) -> dict[str, Any]:
    text: str = result["error"]
    last = text.rstrip().splitlines()[-1] if text.strip() else ""
    name = result.get("error_type") or "Error"
    return {
        "output_type": "error",
        "ename": name,
        "evalue": last.removeprefix(f"{name}:").strip(),
        "traceback": text.splitlines(),
    }


def _call_title(call: dict[str, Any]) -> str:
    batch = call.get("batch")
    parts = [f"{call['kind']} {batch['index'] + 1}/{batch['size']}" if batch else call["kind"]]
    parts.append(call["model"])
    if call.get("cached"):
        parts.append("cached")
    tool_calls = sum(len(turn["calls"]) for turn in call.get("tool_turns") or ())
    if tool_calls:
        parts.append(f"{tool_calls} tool call{'' if tool_calls == 1 else 's'}")
    parts += [f"{sum(subcall_tokens(call)):,} tokens", f"{float(call['latency']):.2f} s"]
    if call.get("error"):
        parts.append("error")
    return " · ".join(parts)


def _calls_html(calls: list[dict[str, Any]], max_chars: int) -> str:
    items = []
    for call in calls:
        body = f"<b>prompt</b><pre>{_esc(_clip(call['prompt'], max_chars))}</pre>"
        body += _tool_calls_html(call, max_chars)
        if call.get("error"):
            body += f"<b>error</b><pre>{_esc(call['error'])}</pre>"
        else:
            body += f"<b>response</b><pre>{_esc(_clip(call['response'], max_chars))}</pre>"
        if call.get("child"):
            body += _child_html(Trajectory.from_dict(call["child"]), max_chars)
        items.append(
            f"<details><summary>{_esc(_call_title(call))}</summary>"
            f"<blockquote>{body}</blockquote></details>"
        )
    return f"<div>{''.join(items)}</div>"


def _tool_calls_html(call: dict[str, Any], max_chars: int) -> str:
    """A sub-call's tool calls (``sub_tools=``), turn by turn, with each result or error."""
    items = []
    for number, turn in enumerate(call.get("tool_turns") or (), start=1):
        for c in turn["calls"]:
            head = f"turn {number} · {c['name']}({c['arguments']}) · {float(c['duration']):.2f} s"
            outcome = c["result"] if c.get("error") is None else f"Error: {c['error']}"
            items.append(f"<i>{_esc(head)}</i><pre>{_esc(_clip(outcome or '', max_chars))}</pre>")
    if call.get("tool_limit"):
        items.append("<i>the tool calls were cut at RLM.sub_tool_turns</i>")
    return f"<b>tool calls</b>{''.join(items)}" if items else ""


def _child_html(child: Trajectory, max_chars: int) -> str:
    steps = []
    for record in child.iterations:
        calls = cast(list[dict[str, Any]], record["subcalls"])
        nested = _calls_html(calls, max_chars) if calls else ""
        steps.append(
            f"<details><summary>child step {record['iteration']} · {len(calls)} "
            f"sub-call{'' if len(calls) == 1 else 's'}</summary>"
            f"<pre>{_esc(record['code'])}</pre><b>output</b><pre>{_esc(record['output'])}</pre>"
            f"{nested}</details>"
        )
    return f"<b>child RLM ({len(steps)} steps)</b>{''.join(steps)}"


def _calls_text(calls: list[dict[str, Any]]) -> str:
    lines = [f"{len(calls)} sub-call{'' if len(calls) == 1 else 's'}:"]
    for call in calls:
        said = call["error"] if call.get("error") else call["response"]
        lines.append(f"- {_call_title(call)}: {_clip(' '.join(str(said).split()), 100)}")
    return "\n".join(lines)


def _answer(final: dict[str, Any]) -> str:
    answer = final["answer"]
    total = (final.get("usage") or {}).get("total", {})
    tokens = int(total.get("prompt_tokens", 0)) + int(total.get("completion_tokens", 0))
    cost = f", ${total['cost']:.4f}" if total.get("cost") is not None else ""
    answered = final["reason"] in ("final", "baseline")
    if answer is None:
        shown = "*(no answer)*"
    elif final.get("value") is not None and not isinstance(final["value"], str):
        # A typed answer is JSON: a <pre> block keeps its layout (escaped, like every text here).
        shown = f"<pre>{_esc(json.dumps(final['value'], ensure_ascii=False, indent=2))}</pre>"
    else:
        shown = _esc(answer)
    lines = [
        "## Answer" if answered else f"## Ended: {_esc(final['reason'])}",
        "",
        shown,
        "",
        f"*{_esc(final['message'])}*",
        "",
        f"*{int(total.get('calls', 0)):,} model calls, {tokens:,} tokens{cost}, "
        f"{float(final.get('duration', 0.0)):.1f} s*",
    ]
    return "\n".join(lines)
