"""Answer quality on a real model: a direct call against rlm_kernel, with and without strategies.

Tasks come from ``_quality_tasks.py`` (fixed seeds: needles at several depths and sizes, counting over
a log, and a semantic kind that needs sub-calls). Each is run once per configuration against the
OpenAI-compatible endpoint in ``RLM_TEST_BASE_URL`` (model ``RLM_TEST_MODEL``, default ``local``),
through ``rlm_kernel.run`` and the real ``openai`` SDK:

- ``direct``: ``mode="baseline"``, the whole context in one call (a context past the model's window is
  refused by the endpoint, and scores 0);
- ``rlm``: the REPL loop;
- ``rlm+NAME``: the loop with ``strategy=NAME`` (only where the installed rlm_kernel has strategies).

Every run appends one JSON line to ``benchmarks/results/quality-LABEL.jsonl`` as soon as it ends, so
a long sweep can be stopped and taken up again with ``--resume``; ``--report`` prints the table of
every label's file without running anything. The table gives, per kind × size × configuration: mean
score, the share of runs ended by the model's own submission (``final``) and by the loop guard's
early stop (``loop``), root prompt tokens per task (every root call: the steps, a step the guard did
not run, and the forced best-answer call), sub-calls per task, and wall time per task.

To compare with an older version, run the same script with that version first on the path, e.g.
``git worktree add /tmp/today <commit>`` and ``PYTHONPATH=/tmp/today python benchmarks/quality.py
--label today``: each line records which rlm_kernel ran it. This is not a timed test: a local model
takes minutes per task, and ``benchmarks/README.md`` keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(1, str(Path(__file__).resolve().parent))  # _quality_tasks; after any PYTHONPATH

import _quality_tasks as tasks

import rlm_kernel
from rlm_kernel._config import parse_assignment
from rlm_kernel.errors import ConfigError

RESULTS = Path(__file__).resolve().parent / "results"
STRATEGIES = ("search-first", "map-reduce", "verify")


def config_settings(config: str) -> dict[str, Any]:
    if config == "direct":
        return {"mode": "baseline"}
    if config == "rlm":
        return {"mode": "rlm"}
    if config.startswith("rlm+"):
        return {"mode": "rlm", "strategy": config[4:]}
    raise SystemExit(f"unknown configuration {config!r}: direct, rlm or rlm+STRATEGY")


def root_prompt_tokens(records: Iterable[Mapping[str, Any]]) -> int:
    """Prompt tokens of every root call recorded: steps, guarded steps, the forced call."""
    total = 0
    for record in records:
        calls = [record.get("model_call")]
        if record.get("type") == "final" and record.get("forced"):
            calls.append(record["forced"]["model_call"])
        total += sum(int(c["usage"].get("prompt_tokens", 0)) for c in calls if c)
    return total


def run_one(task: tasks.Task, config: str, common: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    result = rlm_kernel.run(task.question, task.context, **{**common, **config_settings(config)})
    wall = time.monotonic() - started
    records = result.trajectory.records
    return {
        "task": task.id,
        "kind": task.kind,
        "size": task.size,
        "chars": task.chars,
        "config": config,
        "key": task.key,
        "answer": result.answer,
        "score": tasks.score(task.kind, result.answer, task.key),
        "reason": result.reason,
        "error": str(result.error) if result.error else None,
        "steps": len(result.trajectory.iterations),
        "root_prompt_tokens": root_prompt_tokens(records),
        "subcalls": sum(len(it["subcalls"]) for it in result.trajectory.iterations),
        "wall_s": round(wall, 1),
        "rlm_kernel": str(Path(rlm_kernel.__file__).resolve().parent.parent),
    }


def load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(paths: list[Path]) -> None:
    rows = [dict(r, label=p.stem.removeprefix("quality-")) for p in paths for r in load(p)]
    if not rows:
        print("no results yet in", ", ".join(str(p) for p in paths))
        return
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["kind"], r["size"], r["config"], r["label"]), []).append(r)
    header = (
        "kind",
        "size",
        "config",
        "label",
        "n",
        "score",
        "final",
        "loop",
        "root tok",
        "sub",
        "wall s",
    )
    lines = [header]
    order = {s: i for i, s in enumerate(("small", "large"))}
    for (kind, size, config, label), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9), kv[0][2], kv[0][3])
    ):
        n = len(rs)
        lines.append(
            (
                kind,
                size,
                config,
                label,
                str(n),
                f"{statistics.mean(r['score'] for r in rs):.2f}",
                f"{sum(r['reason'] == 'final' for r in rs) / n:.0%}",
                f"{sum(r['reason'] == 'loop' for r in rs) / n:.0%}",
                f"{statistics.mean(r['root_prompt_tokens'] for r in rs):,.0f}",
                f"{statistics.mean(r['subcalls'] for r in rs):.1f}",
                f"{statistics.mean(r['wall_s'] for r in rs):.0f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["config"] != "direct":
            by_label.setdefault(r["label"], []).append(r)
    for label, rs in sorted(by_label.items()):
        own = sum(r["reason"] in ("final", "loop") for r in rs)
        print(
            f"{label}: {own}/{len(rs)} rlm runs ended by the model's submission or the loop guard "
            f"({own / len(rs):.0%}); reasons: "
            + ", ".join(f"{k} {v}" for k, v in sorted(Counter(r["reason"] for r in rs).items()))
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="run", help="names the results file quality-LABEL.jsonl")
    parser.add_argument(
        "--configs", default="direct,rlm," + ",".join(f"rlm+{s}" for s in STRATEGIES)
    )
    parser.add_argument("--kinds", default=",".join(tasks.KINDS))
    parser.add_argument("--sizes", default="small,large", help="small, large, or characters")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--depths", default=",".join(str(d) for d in tasks.DEPTHS))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a further setting, as rlm-kernel run --set takes it (repeatable)",
    )
    parser.add_argument("--resume", action="store_true", help="skip runs already in the file")
    parser.add_argument("--report", action="store_true", help="print the table of every label")
    args = parser.parse_args(argv)

    if args.report:
        report(sorted(RESULTS.glob("quality-*.jsonl")))
        return 0
    url = os.environ.get("RLM_TEST_BASE_URL")
    if not url:
        print(
            "RLM_TEST_BASE_URL is not set: serve a model (see docs/testing.md) and point it there"
        )
        return 2
    try:
        extra = dict(parse_assignment(item) for item in args.set)
    except ConfigError as exc:
        print(exc)
        return 2
    model = os.environ.get("RLM_TEST_MODEL", "local")
    common: dict[str, Any] = {
        "base_url": url,
        "model": model,
        "sub_model": model,
        "api_key_env": "RLM_QUALITY_NO_KEY",  # a local endpoint takes no key
        "temperature": 0.0,
        "max_iterations": 8,
        # A small model can fall into generating until its window is full (half an hour on a CPU).
        "max_completion_tokens": 1024,
        "request_timeout": 600.0,
        "trajectory_dir": tempfile.mkdtemp(prefix="rlm-quality-"),
        **extra,
    }
    depths = tuple(float(d) for d in args.depths.split(","))
    todo = [
        (task, config)
        for kind in args.kinds.split(",")
        for size in args.sizes.split(",")
        for seed in (int(s) for s in args.seeds.split(","))
        for task in tasks.build(kind, size, seed, depths)
        for config in args.configs.split(",")
    ]
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"quality-{args.label}.jsonl"
    done = {(r["task"], r["config"]) for r in load(path)} if args.resume else set()
    if not args.resume:
        path.write_text("")
    print(
        f"rlm_kernel from {Path(rlm_kernel.__file__).parent}; {len(todo)} runs -> {path}; "
        f"trajectories in {common['trajectory_dir']}"
    )
    for task, config in todo:
        if (task.id, config) in done:
            continue
        row = run_one(task, config, common)
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"{task.id:28} {config:16} score {row['score']:.2f} {row['reason']:15} "
            f"steps {row['steps']} root tok {row['root_prompt_tokens']:,} sub {row['subcalls']} "
            f"{row['wall_s']:.0f} s  answer {str(row['answer'])[:40]!r}",
            flush=True,
        )
    report([path])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
