"""``llm_batch`` throughput: 64 prompts at 200 ms sub-model latency.

The scripted root model runs one iteration whose code times the ``llm_batch`` call itself
(``time.perf_counter()`` around it, printed), then submits with ``FINAL``. The sub-model answers every
prompt after 200 ms, so with ``subcall_concurrency`` = c the ideal is ceil(64 / c) × 200 ms. The timing
printed by the model's code is read back from the trajectory; the span of the sub-call records (first
start to last finish) is shown as a cross-check.

Usage: python benchmarks/batch.py [--reps 3]
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from typing import Any

from _common import (
    REFERENCE,
    ChatRequest,
    Verdicts,
    banner,
    fence,
    make_config,
    median,
    print_table,
    serve,
)

import rlm_kernel

PROMPTS = 64
SUB_LATENCY = 0.2
TARGET_RATIO = 1.15
CONCURRENCIES = (16, 64)  # 16 is the default RLM.subcall_concurrency
CONTEXT = "\n".join(f"record {i}: value {i * 7 % 100}" for i in range(2_000))

BATCH_CODE = f"""\
import time
prompts = [f"What is the value in this record? {{line}}" for line in P.splitlines()[:{PROMPTS}]]
t0 = time.perf_counter()
replies = llm_batch(prompts)
elapsed = time.perf_counter() - t0
print(f"BATCH {{elapsed:.6f}} {{len(replies)}} {{sum(r.startswith('Error') for r in replies)}}")"""
_BATCH_LINE = re.compile(r"BATCH (\S+) (\d+) (\d+)")


def sub_model(request: ChatRequest) -> str:
    return "value " + request.prompt.rsplit(" ", 1)[-1]


@dataclass
class Rep:
    elapsed: float  # the llm_batch call, timed by the model's own code
    span: float  # first sub-call start to last sub-call finish, from the records
    replies: int
    errors: int


def one_rep(concurrency: int) -> Rep:
    script: dict[str, Any] = {
        "root": [fence(BATCH_CODE), fence("FINAL(replies[0])")],
        "sub": sub_model,
    }
    with serve(script, {"sub": SUB_LATENCY, "*": 0.0}) as server:
        config = make_config(server, subcall_concurrency=concurrency)
        result = rlm_kernel.Session("Read every record.", CONTEXT, config=config).run()
    if result.reason != "final":
        raise RuntimeError(f"the run did not finish with FINAL: {result.reason}: {result.message}")
    first = result.trajectory.iterations[0]
    match = _BATCH_LINE.search(first["output"])
    if match is None:
        raise RuntimeError(f"the batch timing is missing from the output: {first['output']!r}")
    calls = first["subcalls"]
    span = max(c["started"] + c["latency"] for c in calls) - min(c["started"] for c in calls)
    return Rep(float(match[1]), span, int(match[2]), int(match[3]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per concurrency (median)")
    args = parser.parse_args()
    banner(
        "batch: llm_batch of 64 prompts at 200 ms latency",
        f"Wall time of the llm_batch call itself, timed inside the model's code; median of {args.reps}.",
    )

    one_rep(CONCURRENCIES[0])  # warm-up: the sub-call loop, async client imports; not counted
    rows = []
    ratios: dict[int, float] = {}
    for concurrency in CONCURRENCIES:
        reps = [one_rep(concurrency) for _ in range(args.reps)]
        ideal = math.ceil(PROMPTS / concurrency) * SUB_LATENCY
        elapsed = median([r.elapsed for r in reps])
        ratios[concurrency] = elapsed / ideal
        bad = sum(r.errors + (PROMPTS - r.replies) for r in reps)
        rows.append(
            [
                concurrency,
                f"{ideal * 1000:.0f}",
                f"{elapsed * 1000:.1f}",
                f"{median([r.span for r in reps]) * 1000:.1f}",
                f"{ratios[concurrency]:.3f}×",
                " ".join(f"{r.elapsed * 1000:.0f}" for r in reps),
                bad,
            ]
        )
    print_table(
        [
            "concurrency",
            "ideal ms",
            "llm_batch ms",
            "sub-call span ms",
            "vs ideal",
            "each run ms",
            "failed replies",
        ],
        rows,
    )
    print("For reference:", REFERENCE["batch"])
    print()

    verdicts = Verdicts()
    for concurrency in CONCURRENCIES:
        ideal_ms = math.ceil(PROMPTS / concurrency) * SUB_LATENCY * 1000
        verdicts.check(
            f"64-prompt llm_batch, subcall_concurrency {concurrency}",
            ratios[concurrency] <= TARGET_RATIO,
            f"{ratios[concurrency]:.3f}× ideal {ideal_ms:.0f} ms (target ≤ {TARGET_RATIO}×)",
        )
    verdicts.summary()


if __name__ == "__main__":
    main()
