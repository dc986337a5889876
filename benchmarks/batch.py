"""``llm_batch`` throughput: 64 prompts at 200 ms sub-model latency.

The scripted root model runs one iteration whose code times the ``llm_batch`` call itself
(``time.perf_counter()`` around it, printed), then submits with ``FINAL``. The sub-model answers every
prompt after 200 ms, so with ``subcall_concurrency`` = c the ideal is ceil(64 / c) × 200 ms. The timing
printed by the model's code is read back from the trajectory; the span of the sub-call records (first
start to last finish) is shown as a cross-check. The same 64 requests sent by a bare
``openai.AsyncOpenAI`` client under an ``asyncio.Semaphore`` of the same size show what the SDK and the
in-process server cost on their own, both the way rlm_kernel sends them (``client.post``, the answer
decoded as plain JSON) and through ``chat.completions.create``. Every run uses a new server, so each
batch opens its connections afresh. The server records when it actually answered each request
(``ScriptedServer.timings``); how late its timer fired is shown too.

Finished sessions are kept referenced until the script ends: when a finished session's unclosed
``AsyncOpenAI`` client is garbage-collected on rlm_kernel's sub-call loop while a later batch is in flight,
the SDK's delayed ``aclose()`` unregisters file descriptors that new connections have reused, and those
requests hang until ``request_timeout``. ``--drop-sessions`` lets them go to show it (intermittent; the
request timeout is then lowered to 10 s). See benchmarks/README.md.

Usage: python benchmarks/batch.py [--reps 3] [--drop-sessions]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import openai
from _common import (
    REFERENCE,
    ChatRequest,
    OtherLoad,
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


# Finished sessions, kept alive on purpose (see the module docstring).
_FINISHED: list[rlm_kernel.Session] = []


def sub_model(request: ChatRequest) -> str:
    return "value " + request.prompt.rsplit(" ", 1)[-1]


@dataclass
class Rep:
    elapsed: float  # the llm_batch call, timed by the model's own code
    span: float  # first sub-call start to last sub-call finish, from the records
    replies: int
    errors: int
    late: list[float]  # per sub-call: latency the server applied − the configured 200 ms


def prompts() -> list[str]:
    return [f"What is the value in this record? {line}" for line in CONTEXT.splitlines()[:PROMPTS]]


def one_rep(concurrency: int, *, keep: bool = True) -> Rep:
    script: dict[str, Any] = {
        "root": [fence(BATCH_CODE), fence("FINAL(replies[0])")],
        "sub": sub_model,
    }
    extra = {} if keep else {"request_timeout": 10.0}
    with serve(script, {"sub": SUB_LATENCY, "*": 0.0}) as server:
        config = make_config(server, subcall_concurrency=concurrency, **extra)
        session = rlm_kernel.Session("Read every record.", CONTEXT, config=config)
        result = session.run()
        late = [t.applied - SUB_LATENCY for t in server.timings if t.model == "sub"]
    if keep:
        _FINISHED.append(session)
    if result.reason != "final":
        raise RuntimeError(f"the run did not finish with FINAL: {result.reason}: {result.message}")
    first = result.trajectory.iterations[0]
    match = _BATCH_LINE.search(first["output"])
    if match is None:
        raise RuntimeError(f"the batch timing is missing from the output: {first['output']!r}")
    calls = first["subcalls"]
    span = max(c["started"] + c["latency"] for c in calls) - min(c["started"] for c in calls)
    return Rep(float(match[1]), span, int(match[2]), int(match[3]), late)


async def _bare_batch(base_url: str, concurrency: int, how: str) -> float:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=0)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> str:
        messages = [{"role": "user", "content": prompt}]
        async with semaphore:
            if how == "post":  # as rlm_kernel sends it
                data: Any = await client.post(
                    "/chat/completions", body={"model": "sub", "messages": messages}, cast_to=object
                )
                return str(data["choices"][0]["message"]["content"])
            reply = await client.chat.completions.create(model="sub", messages=messages)  # type: ignore[arg-type]
        return reply.choices[0].message.content or ""

    started = time.perf_counter()
    await asyncio.gather(*(one(p) for p in prompts()))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def bare_rep(concurrency: int, how: str) -> float:
    """The same 64 requests from a bare AsyncOpenAI client, ``concurrency`` at a time."""
    with serve({"sub": sub_model}, SUB_LATENCY) as server:
        return asyncio.run(_bare_batch(server.base_url, concurrency, how))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per concurrency (median)")
    parser.add_argument(
        "--drop-sessions",
        action="store_true",
        help="do not keep finished sessions alive (shows the unclosed-client hang)",
    )
    args = parser.parse_args()
    keep = not args.drop_sessions
    banner(
        "batch: llm_batch of 64 prompts at 200 ms latency",
        f"Wall time of the llm_batch call itself, timed inside the model's code; median of {args.reps}."
        + ("" if keep else " Finished sessions are dropped (--drop-sessions)."),
    )

    other = OtherLoad()
    one_rep(
        CONCURRENCIES[0], keep=keep
    )  # warm-up: sub-call loop, async client imports; not counted
    bare_rep(CONCURRENCIES[0], "post")
    bare_rep(CONCURRENCIES[0], "create")
    rows, bare_rows = [], []
    ratios: dict[int, float] = {}
    for concurrency in CONCURRENCIES:
        reps = [one_rep(concurrency, keep=keep) for _ in range(args.reps)]
        bare = median([bare_rep(concurrency, "post") for _ in range(args.reps)])
        bare_create = median([bare_rep(concurrency, "create") for _ in range(args.reps)])
        ideal = math.ceil(PROMPTS / concurrency) * SUB_LATENCY
        elapsed = median([r.elapsed for r in reps])
        ratios[concurrency] = elapsed / ideal
        failed = sum(r.errors + (PROMPTS - r.replies) for r in reps)
        late = [x for r in reps for x in r.late]
        rows.append(
            [
                concurrency,
                f"{ideal * 1000:.0f}",
                f"{elapsed * 1000:.1f}",
                f"{ratios[concurrency]:.3f}×",
                f"{median([r.span for r in reps]) * 1000:.1f}",
                " ".join(f"{r.elapsed * 1000:.0f}" for r in reps),
                f"{median(late) * 1000:.2f} / {max(late) * 1000:.2f}",
                failed,
            ]
        )
        bare_rows.append(
            [
                concurrency,
                f"{bare * 1000:.1f}",
                f"{bare / ideal:.3f}×",
                f"{(elapsed - bare) * 1000:+.1f}",
                f"{bare_create * 1000:.1f}",
                f"{bare_create / ideal:.3f}×",
            ]
        )
    print_table(
        [
            "concurrency",
            "ideal ms",
            "llm_batch ms",
            "vs ideal",
            "sub-call span ms",
            "each run ms",
            "server late ms, median / max",
            "failed replies",
        ],
        rows,
    )
    print_table(
        [
            "concurrency",
            "bare SDK post ms",
            "vs ideal",
            "rlm_kernel extra ms",
            "bare SDK create ms",
            "vs ideal",
        ],
        bare_rows,
    )
    print(
        "llm_batch ms: median wall of the llm_batch call, timed by the model's code.\n"
        "sub-call span: first sub-call start to last sub-call end, from the trajectory's records.\n"
        "server late: per sub-call, the latency the server applied (arrival to answer written) − 200 ms.\n"
        "bare SDK: the same 64 requests from a bare AsyncOpenAI client under asyncio.Semaphore(concurrency),\n"
        "  sent as rlm_kernel sends them (client.post, cast_to=object) or with chat.completions.create;\n"
        "  rlm_kernel extra = llm_batch − bare SDK post.\n"
        "The server runs in the same process and shares its GIL and 2 cores with the client.\n"
    )
    print("For reference:", REFERENCE["batch"])
    other.report()
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
