"""Per-iteration overhead of the monty sandbox against the namespace executor, with a 5 MB ``P``.

The same scripted session runs once per executor: 20 small iterations that each touch ``P`` (a slice,
a count, a variable kept for later), then one that submits with ``FINAL``. The root model answers after
``latency`` on the loopback ``ScriptedServer``. Per iteration, rlm_kernel's own cost is the run's wall
minus the time spent inside the model client (as in ``overhead.py``); the sandbox's one-off start
(a worker checkout and binding the 5 MB ``P``) happens in the first iteration, so it is shown apart and
the steady state is measured from the end of iteration 1 to the end of the run.

The monty executor dumps the sandbox's state after every block on a background thread; that overlaps the
next root-model call. At 0 ms model latency there is nothing to overlap, so that row shows the dump's
full cost; the target is judged at 50 ms, still far below a real model's latency.

Usage: python benchmarks/executor_overhead.py [--reps 3]
"""

from __future__ import annotations

import argparse
import random
import string
import time
from dataclasses import dataclass
from typing import Any

from _common import Verdicts, banner, fence, make_config, median, print_table, serve

import rlm_kernel
from rlm_kernel._events import Event, IterationFinished

STEPS = 20
LATENCY = 0.05
TARGET_MS = 10.0
EXECUTORS = ("namespace", "monty")


def context(size: int = 5_000_000) -> str:
    rng = random.Random(5)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(800)]
    text = " ".join(rng.choices(words, k=size // 5))
    return text[:size]


def root_script() -> list[str]:
    steps = [
        fence(f"part{i} = P[{i * 100_000}:{i * 100_000 + 1000}]\nprint({i}, part{i}.count('a'))")
        for i in range(STEPS)
    ]
    return [*steps, fence("FINAL(f'{len(P)} chars, {part19[:10]!r}')")]


@dataclass
class Rep:
    executor: str
    latency: float
    setup: float  # Session(...) construction
    loop: float  # Session.run() wall
    iterations: int
    in_client: list[float]  # per iteration: time inside the model client
    finished: list[float]  # per iteration: perf_counter when it was recorded
    started: float  # perf_counter when run() began

    @property
    def first(self) -> float:
        """Iteration 1 without its model call: includes the sandbox's start."""
        return self.finished[0] - self.started - self.in_client[0]

    @property
    def steady(self) -> float:
        """rlm_kernel per iteration after the first, model-client time excluded."""
        span = self.finished[-1] - self.finished[0]
        return (span - sum(self.in_client[1:])) / (self.iterations - 1)

    @property
    def all_in(self) -> float:
        """rlm_kernel per iteration over the whole run, start included."""
        return (self.loop - sum(self.in_client)) / self.iterations


def one_rep(executor: str, latency: float, P: str) -> Rep:
    with serve({"root": root_script()}, latency) as server:
        t0 = time.perf_counter()
        session = rlm_kernel.Session(
            "What is in part 19?",
            P,
            config=make_config(server, executor=executor, max_iterations=STEPS + 10),
        )
        built = time.perf_counter()
        finished: list[float] = []

        def on_event(event: Event) -> None:
            if isinstance(event, IterationFinished):
                finished.append(time.perf_counter())

        session.subscribe(on_event)
        result = session.run()
        done = time.perf_counter()
    if result.reason != "final":
        raise RuntimeError(f"{executor}: the run did not finish with FINAL: {result.message}")
    iterations = result.trajectory.iterations
    return Rep(
        executor=executor,
        latency=latency,
        setup=built - t0,
        loop=done - built,
        iterations=len(iterations),
        in_client=[it["model_call"]["latency"] for it in iterations],
        finished=finished,
        started=built,
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def executor_only(P: str, reps: int = 20) -> dict[str, Any]:
    """``executor.run`` alone on a warm sandbox, and what the background dump costs by itself."""
    from pydantic_monty import Monty

    from rlm_kernel._config import RLM
    from rlm_kernel.executors import make_executor

    runs: dict[str, list[float]] = {e: [] for e in EXECUTORS}
    for name in EXECUTORS:
        executor = make_executor(RLM().with_overrides({"executor": name}))
        executor.namespace["P"] = P
        executor.run("x = len(P)", label="warm", timeout=None)
        for i in range(reps):
            time.sleep(LATENCY)  # where the model call would be: the previous dump finishes
            t = time.perf_counter()
            executor.run(f"y{i} = P[{i}:{i + 1000}].count('a')", label="b", timeout=None)
            runs[name].append(time.perf_counter() - t)
    dumps = []
    with Monty(max_processes=1) as pool, pool.checkout() as sandbox:
        sandbox.feed_run("n = len(P)", inputs={"P": P})
        for _ in range(5):
            t = time.perf_counter()
            sandbox.dump()
            dumps.append(time.perf_counter() - t)
    return {"run": {k: median(v) for k, v in runs.items()}, "dump": median(dumps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per cell (median)")
    args = parser.parse_args()
    banner(
        "executor_overhead: monty sandbox vs namespace executor, 5 MB P",
        f"{STEPS} small iterations + 1 FINAL iteration per run; median of {args.reps} runs per cell.",
    )
    P = context()
    for executor in EXECUTORS:
        one_rep(executor, 0.0, P)  # warm-up: imports, the monty pool's first worker
    cells = {
        (e, lat): [one_rep(e, lat, P) for _ in range(args.reps)]
        for lat in (LATENCY, 0.0)
        for e in EXECUTORS
    }

    def col(runs: list[Rep], metric: str) -> str:
        return ms(median([getattr(r, metric) for r in runs]))

    print_table(
        [
            "executor",
            "latency",
            "Session()",
            "iteration 1 (incl. sandbox start)",
            "per iter, steady",
            "per iter, all-in",
        ],
        [
            [
                e,
                f"{lat * 1000:.0f} ms",
                col(r, "setup"),
                col(r, "first"),
                col(r, "steady"),
                col(r, "all_in"),
            ]
            for (e, lat), r in cells.items()
        ],
    )
    direct = executor_only(P)
    print_table(
        ["executor", f"executor.run() alone, warm, {LATENCY * 1000:.0f} ms apart"],
        [[e, ms(v)] for e, v in direct["run"].items()],
    )
    print(
        f"monty: session.dump() with the 5 MB P bound, median {ms(direct['dump'])} ms "
        "(on a background thread, overlapping the next model call)\n"
        "All figures in ms, medians. 'per iter' = rlm_kernel's cost per iteration, model-client time "
        "excluded.\n"
    )

    verdicts = Verdicts()
    for lat in (LATENCY, 0.0):
        extra = median([r.steady for r in cells[("monty", lat)]]) - median(
            [r.steady for r in cells[("namespace", lat)]]
        )
        label = f"monty overhead per iteration above namespace, 5 MB P, {lat * 1000:.0f} ms latency"
        if lat == LATENCY:
            verdicts.check(
                label, extra <= TARGET_MS / 1000, f"{ms(extra)} ms (target ≤ {TARGET_MS:g} ms)"
            )
        else:
            print(f"info  {label}: {ms(extra)} ms (nothing to overlap the dump with)")
    verdicts.summary()


if __name__ == "__main__":
    main()
