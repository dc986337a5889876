"""What the async API costs over the sync one (issue 16, item 4: "the measured overhead").

``AsyncSession`` and ``arun`` are thin wrappers: each awaited call runs the sync ``Session`` method on a
thread of its own and hands the result back to the loop. Two measurements:

1. **Per iteration, in process.** The same scripted session (``rlm_kernel.testing.scripted_session``:
   models answering from a script in this process, no HTTP, autosave off) runs ``STEPS`` trivial
   iterations and submits, driven by ``s.run()`` and by a loop of ``s.step()``, each on the main
   thread and on a thread of its own, and by ``await AsyncSession(s).run()`` and a loop of ``await
   a.step()``. The wrapper's own cost is the async figure minus the sync one on a thread (the async
   calls run there too: off the main thread every block runs on a worker under a watchdog, which costs
   by itself, whatever drives the session). The runs take turns, medians of ``--reps``.
2. **Concurrency, over HTTP.** ``--sessions`` sessions of ``TURNS`` root turns each against the loopback
   ``ScriptedServer`` at ``LATENCY`` per answer: in threads with ``rlm_kernel.run``, awaited together
   with ``rlm_kernel.arun``, and, for comparison, with ``asyncio.to_thread(rlm_kernel.run, ...)`` (the
   loop's default executor, ``min(32, cores + 4)`` workers), which is what ``arun`` does not use.
   Ideal wall time is ``TURNS × LATENCY``.

Usage: python benchmarks/async_overhead.py [--reps 9] [--sessions 20]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Callable

from _common import OtherLoad, Verdicts, banner, fence, median, print_table, serve, settings

import rlm_kernel
from rlm_kernel import AsyncSession, Session
from rlm_kernel._async import settled, start
from rlm_kernel.testing import ChatRequest, scripted_session

STEPS = 40
TURNS = 4
LATENCY = 0.05
TARGET_MS = 0.5  # the wrapper's cost per awaited call


def _script() -> list[str]:
    steps = [fence(f"x{i} = {i} * {i}\nprint('step', {i}, x{i})") for i in range(STEPS)]
    return [*steps, fence("FINAL(x1)")]


def _session() -> Session:
    return scripted_session(_script(), max_iterations=STEPS + 5, loop_guard=0)


def _timed(drive: Callable[[Session], None]) -> float:
    session = _session()
    started = time.perf_counter()
    drive(session)
    elapsed = time.perf_counter() - started
    assert session.answer == "1", session.message
    return elapsed


def _sync_run(session: Session) -> None:
    session.run()


def _on_a_thread(drive: Callable[[Session], None]) -> Callable[[Session], None]:
    """``drive`` on a thread of its own: where the async wrapper runs the session too. Off the main
    thread each block runs on a worker under a watchdog (``_timeout.run_limited``), which costs by
    itself; comparing with this isolates the wrapper's own cost."""

    def threaded(session: Session) -> None:
        worker = threading.Thread(target=drive, args=(session,))
        worker.start()
        worker.join()

    return threaded


def _async_run(session: Session) -> None:
    asyncio.run(AsyncSession(session).run())


def _sync_steps(session: Session) -> None:
    while session.state not in ("done", "failed"):
        session.step()


def _async_steps(session: Session) -> None:
    async def steps() -> None:
        wrapped = AsyncSession(session)
        while wrapped.state not in ("done", "failed"):
            await wrapped.step()

    asyncio.run(steps())


def per_iteration(reps: int) -> dict[str, float]:
    """Milliseconds per iteration for each way of driving the session, medians of ``reps``."""
    ways = {
        "s.run(), main thread": _sync_run,
        "s.run(), a thread": _on_a_thread(_sync_run),
        "await AsyncSession(s).run()": _async_run,
        "s.step() loop, main thread": _sync_steps,
        "s.step() loop, a thread": _on_a_thread(_sync_steps),
        "await a.step() loop": _async_steps,
    }
    for drive in ways.values():  # warm-up
        _timed(drive)
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(reps):
        for name, drive in ways.items():
            times[name].append(_timed(drive))
    return {name: median(values) * 1000 / (STEPS + 1) for name, values in times.items()}


def hand_over(calls: int, reps: int) -> float:
    """Microseconds per awaited call of a function that does nothing, through the wrapper's own
    machinery (``_async.start``: a thread of its own, the result handed to the loop; ``settled``),
    medians of ``reps`` rounds of ``calls`` calls."""

    async def round_() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            await settled(start(lambda: None, "bench"), lambda: None)
        return time.perf_counter() - started

    rounds = [asyncio.run(round_()) for _ in range(reps + 1)][1:]  # the first one warms up
    return median(rounds) * 1e6 / calls


def _root(request: ChatRequest) -> str:
    turn = sum(m["role"] == "assistant" for m in request.messages) + 1
    return fence(f"print({turn})") if turn < TURNS else fence("FINAL('ok')")


def concurrency(sessions: int, reps: int) -> dict[str, float]:
    """Seconds of wall time for ``sessions`` concurrent runs, three ways, medians of ``reps``."""
    with serve({"root": _root}, latency=LATENCY) as server:
        base = settings(server, autosave=False)

        def threads() -> None:
            answers: list[str | None] = []
            workers = [
                threading.Thread(
                    target=lambda: answers.append(rlm_kernel.run("Go", "x" * 40, **base).answer)
                )
                for _ in range(sessions)
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            assert answers == ["ok"] * sessions

        async def aruns() -> None:
            results = await asyncio.gather(
                *(rlm_kernel.arun("Go", "x" * 40, **base) for _ in range(sessions))
            )
            assert [r.answer for r in results] == ["ok"] * sessions

        async def default_executor() -> None:
            results = await asyncio.gather(
                *(
                    asyncio.to_thread(rlm_kernel.run, "Go", "x" * 40, **base)
                    for _ in range(sessions)
                )
            )
            assert [r.answer for r in results] == ["ok"] * sessions

        ways: dict[str, Callable[[], None]] = {
            "threads + run": threads,
            "gather(arun)": lambda: asyncio.run(aruns()),
            "gather(to_thread(run))": lambda: asyncio.run(default_executor()),
        }
        for way in ways.values():  # warm-up
            way()
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(reps):
            for name, way in ways.items():
                started = time.perf_counter()
                way()
                times[name].append(time.perf_counter() - started)
    return {name: median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--sessions", type=int, default=20)
    args = parser.parse_args()
    banner(
        "async overhead",
        f"{STEPS + 1} iterations in process, 6 ways; {args.sessions} concurrent runs of {TURNS} "
        f"turns at {LATENCY * 1000:.0f} ms over loopback HTTP, 3 ways; medians of {args.reps}",
    )
    load = OtherLoad()
    per_call = hand_over(1000, args.reps)
    print(f"one awaited call of a no-op (thread start, hand-over to the loop): {per_call:.0f} µs")
    print()
    per_iter = per_iteration(args.reps)
    print_table(["driven by", "ms per iteration"], [[k, f"{v:.3f}"] for k, v in per_iter.items()])
    run_cost = per_iter["await AsyncSession(s).run()"] - per_iter["s.run(), a thread"]
    step_cost = per_iter["await a.step() loop"] - per_iter["s.step() loop, a thread"]
    off_main = per_iter["s.run(), a thread"] - per_iter["s.run(), main thread"]
    print(f"async wrapper per iteration: run() {run_cost:+.3f} ms, step() {step_cost:+.3f} ms")
    print(f"off the main thread at all (blocks on a worker under a watchdog): {off_main:+.3f} ms")
    print()
    walls = concurrency(args.sessions, max(3, args.reps // 2))
    ideal = TURNS * LATENCY
    print_table(
        ["driven by", "wall (s)", "× ideal"],
        [[k, f"{v:.2f}", f"{v / ideal:.1f}"] for k, v in walls.items()],
    )
    load.report()
    print()
    verdicts = Verdicts()
    verdicts.check(
        f"an awaited call costs ≤ {TARGET_MS} ms over the call itself",
        per_call / 1000 <= TARGET_MS,
        f"{per_call / 1000:.3f} ms",
    )
    verdicts.check(
        "gather(arun) is as concurrent as threads (within 1.5×)",
        walls["gather(arun)"] <= 1.5 * walls["threads + run"],
        f"{walls['gather(arun)']:.2f} s against {walls['threads + run']:.2f} s",
    )
    verdicts.summary()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
