"""``rlm-jsonl``: the log format of the reference implementation (``rlms``), so its visualizer shows a
session: question, iterations, code, output, sub-calls with timings and tokens.

One ``metadata`` line, then one ``iteration`` line per standing iteration and one without code per
forced best-answer call (like the reference's default-answer entry), numbered in file order, follow-up
questions included (they reach the model inside an observation, so they are in the prompts). Fields:
``docs/formats.md`` §3. Child RLMs nest under ``rlm_calls[].metadata`` as
``{run_metadata, iterations}``. The context is never written: ``locals`` stay empty, and the baseline
prompt that carried it is replaced by a note. Lossy (no notes, diffs or superseded steps): not read back.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from .._trajectory import Trajectory
from ..models import Message, ToolCall
from ._common import (
    Step,
    executed_blocks,
    message,
    subcall_tokens,
    tool_conversation,
    walk,
    write_jsonl,
)

# The visualizer's "Context / Question" box (visualizer/src/lib/parse-logs.ts, extractContextQuestion).
_QUERY = re.compile(r'original query: "([^"]+)"')
# Settings that describe the REPL side of a run, reported as environment_kwargs.
_ENVIRONMENT_SETTINGS = (
    "executor",
    "mode",
    "max_output_chars",
    "iteration_timeout",
    "max_subcalls",
    "max_tokens",
    "max_cost",
    "wall_timeout",
    "subcall_concurrency",
    "compaction",
    "refuse_early_final",
)


def write(trajectory: Trajectory, path: Path) -> None:
    """Write the reference's log: the metadata line, then the iteration entries, the first one made
    to show the question in the visualizer."""
    entries = iteration_entries(trajectory)
    if entries:
        _show_question(entries[0], trajectory.session["question"])
    header = {"type": "metadata", "timestamp": trajectory.session["created"]}
    write_jsonl(path, [{**header, **run_metadata(trajectory)}, *entries], trajectory)


def run_metadata(trajectory: Trajectory) -> dict[str, Any]:
    """The metadata line without ``type`` and ``timestamp``: also how a child run is described."""
    session = trajectory.session
    config, models = session["config"], session["models"]
    context = {k: session["context"][k] for k in ("type", "chars", "docs", "sha256")}
    environment = {k: config[k] for k in _ENVIRONMENT_SETTINGS if k in config}
    sub = models.get("sub")
    return {
        "root_model": models["root"],
        "max_depth": config.get("max_depth"),
        "max_iterations": config.get("max_iterations"),
        "backend": "openai",
        "backend_kwargs": {"model_name": models["root"], "base_url": session.get("endpoint")},
        "environment_type": "rlm_kernel",
        "environment_kwargs": {
            **_without_keys(environment),
            "session_id": session["session_id"],
            "depth": session["depth"],
            "context": context,
            "rlm_kernel_version": session.get("rlm_kernel_version"),
            # A typed run's expected answer (name, kind, JSON schema); its final_answer is JSON.
            **({"output": session["output"]} if session.get("output") else {}),
        },
        "other_backends": [sub] if sub and sub != models["root"] else None,
    }


def _without_keys(values: dict[str, Any]) -> dict[str, Any]:
    # The reference drops every kwarg whose name has both "api" and "key" in it; so do we.
    return {k: v for k, v in values.items() if not ("api" in k.lower() and "key" in k.lower())}


def iteration_entries(trajectory: Trajectory) -> list[dict[str, Any]]:
    """One entry per standing iteration and per forced best-answer call, numbered in file order."""
    entries: list[dict[str, Any]] = []
    for step in walk(trajectory)[0]:
        if step.type == "iteration":
            entries.append(_iteration(step, len(entries) + 1))
        elif step.type == "final" and step.record.get("forced"):
            entries.append(_forced(step, len(entries) + 1))
    return entries


def _iteration(step: Step, number: int) -> dict[str, Any]:
    record = step.record
    final = record["final"]["value"] if record.get("final") else None
    blocks = executed_blocks(record)
    calls = _calls_by_block(record, len(blocks))
    code_blocks = [
        {"code": code, "result": _result(result, calls[i], final if i == len(blocks) - 1 else None)}
        for i, (code, result) in enumerate(zip(blocks, record["results"], strict=False))
    ]
    return {
        "type": "iteration",
        "iteration": number,
        "timestamp": record["started"],
        "prompt": step.prompt,
        "response": record["response"],
        "code_blocks": code_blocks,
        "final_answer": final,
        "iteration_time": record["duration"],
        "edited_by_user": record["edited_by_user"],
    }


def _forced(step: Step, number: int) -> dict[str, Any]:
    """Like the reference's default-answer entry: no code, no iteration time."""
    final = step.record
    return {
        "type": "iteration",
        "iteration": number,
        "timestamp": final["finished"],
        "prompt": step.prompt,
        "response": final["forced"]["response"],
        "code_blocks": [],
        "final_answer": final["answer"],
        "iteration_time": None,
        "forced": final["reason"],
    }


def _result(
    result: dict[str, Any], calls: list[dict[str, Any]], final: str | None
) -> dict[str, Any]:
    stdout = result["stdout"]
    if result.get("value") is not None:
        # The model saw the value of a trailing expression as "Out: …" (as a notebook shows it).
        separator = "" if not stdout or stdout.endswith("\n") else "\n"
        stdout += f"{separator}Out: {result['value']}\n"
    stderr = "\n".join(p for p in (result["stderr"].rstrip("\n"), result.get("error") or "") if p)
    return {
        "stdout": stdout,
        "stderr": stderr,
        "locals": {},  # the namespace holds P; it is not recorded and never exported
        "execution_time": float(result["duration"]),
        "rlm_calls": [subcall(call) for call in calls],
        "final_answer": final,
    }


def _calls_by_block(record: dict[str, Any], blocks: int) -> list[list[dict[str, Any]]]:
    """The iteration's sub-calls split by the block that made them.

    Sub-call records do not say which block made them. The blocks ran back to back and the iteration
    record was stamped right after the last one, so block k started about ``stamp - sum(durations[k:])``;
    a call belongs to the last block that had started by its midpoint.
    """
    calls: list[dict[str, Any]] = list(record.get("subcalls", []))
    groups: list[list[dict[str, Any]]] = [[] for _ in range(blocks)]
    if blocks <= 1:
        return [calls] if blocks else groups
    end = datetime.fromisoformat(record["started"]).timestamp()
    durations = [float(r["duration"]) for r in record["results"][:blocks]]
    starts = [end - sum(durations[k:]) for k in range(blocks)]
    for call in calls:
        middle = float(call["started"]) + float(call["latency"]) / 2
        groups[max((k for k in range(blocks) if starts[k] <= middle), default=0)].append(call)
    return groups


def subcall(call: dict[str, Any]) -> dict[str, Any]:
    """One sub-call as an ``rlm_calls`` entry, with our ids for a tree view; a child RLM's run nests
    under ``metadata``."""
    prompt_tokens, completion_tokens = subcall_tokens(call)
    child = Trajectory.from_dict(call["child"]) if call.get("child") else None
    entry: dict[str, Any] = {
        "root_model": call["model"],
        "prompt": call["prompt"],
        "response": "" if call.get("error") else call["response"],
        "usage_summary": _usage_summary(call, child),
        "execution_time": float(call["latency"]),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        # Ours, ignored by the visualizer: enough for a tree view (docs/formats.md §3.3).
        "id": call["id"],
        "kind": call["kind"],
        "depth": call["depth"],
        "cached": call.get("cached", False),
        "batch": call.get("batch"),
    }
    if call.get("error"):
        entry["error"] = call["error"]
    if call.get("tool_turns"):
        # Ours: the tool calls (sub_tools=) in the chat-completions form, each with its outcome.
        entry["tool_calls"] = [
            {
                **ToolCall(c["id"], c["name"], c["arguments"]).to_dict(),
                "turn": number,
                "result": c["result"],
                "error": c["error"],
                "duration": c["duration"],
            }
            for number, turn in enumerate(call["tool_turns"], start=1)
            for c in turn["calls"]
        ]
        entry["messages"] = tool_conversation(call)
        entry["tool_limit"] = bool(call.get("tool_limit"))
    if child is not None:
        entry["metadata"] = {
            "run_metadata": run_metadata(child),
            "iterations": iteration_entries(child),
        }
    return entry


def _usage_summary(call: dict[str, Any], child: Trajectory | None) -> dict[str, Any]:
    """The reference's ``UsageSummary`` shape; a child's usage is broken down by model."""
    by_model: dict[str, dict[str, Any]] = {call["model"]: call.get("usage") or {}}
    final = child.final if child is not None else None
    if final is not None and final.get("usage", {}).get("by_model"):
        by_model = final["usage"]["by_model"]
    summaries: dict[str, dict[str, Any]] = {}
    costs: list[float] = []
    for model, usage in by_model.items():
        summary: dict[str, Any] = {
            "total_calls": int(usage.get("calls", 0)),
            "total_input_tokens": int(usage.get("prompt_tokens", 0)),
            "total_output_tokens": int(usage.get("completion_tokens", 0)),
        }
        if usage.get("cost") is not None:
            summary["total_cost"] = float(usage["cost"])
            costs.append(summary["total_cost"])
        summaries[model] = summary
    result: dict[str, Any] = {"model_usage_summaries": summaries}
    if costs:
        result["total_cost"] = sum(costs)
    return result


def _show_question(entry: dict[str, Any], question: str) -> None:
    """Make the visualizer's "Context / Question" box show the question.

    It shows the first ``original query: "…"`` of the first entry's user messages, else the first user
    message of 51–499 characters, cut to 200. Our first user message starts with ``Question: …``, which
    is enough unless that message is too long or the question too long; then a quoted query line is
    appended to it, in this entry only, so the prompt stays otherwise as sent.
    """
    prompt: list[Message] = entry["prompt"]
    if question.strip() in (_visualizer_question(prompt) or ""):
        return
    for index, m in enumerate(prompt):
        if m["role"] == "user":
            quoted = question.replace('"', "'")
            content = f'{m["content"]}\n\noriginal query: "{quoted}"'
            entry["prompt"] = [*prompt[:index], message("user", content), *prompt[index + 1 :]]
            return


def _visualizer_question(prompt: list[Message]) -> str | None:
    for m in prompt:
        content = m["content"]
        if m["role"] != "user" or not content:
            continue
        found = _QUERY.search(content)
        if found:
            return found.group(1)
        if "answer the prompt" in content:
            continue
        if 50 < len(content) < 500:
            return content[:200]
    return None
