"""Soak: many concurrent sessions in one process, with mixed faults, for minutes.

``--sessions`` worker threads (50 by default) each run sessions back to back with ``rlm_kernel.run``
until ``--seconds`` have passed, against one loopback ``ScriptedServer``. Every session gets its own
token in its context; the scripted root model's code prints ``SEEN:`` and the token it reads from
``P``, and the model submits the token it saw. Meanwhile a host thread keeps printing ``HOST-NOISE``.
Each session also meets one fault, by turn:

- ``clean``: print the token, submit it;
- ``server-500``: the first root request of the session is answered 500 (the SDK retries);
- ``model-error``: the first step's code raises; the next step prints the token;
- ``timeout``: the first step sleeps past ``RLM.iteration_timeout`` (off the main thread);
- ``big-print``: the step prints 2 MB before the token;
- ``subcalls``: an ``llm_batch`` of 8 prompts, each answered after 50 ms, whose answers carry the token;
- ``stray-thread``: the step starts a thread that keeps printing ``STRAY`` for a second;
- ``raised-interrupt``: the first step raises ``KeyboardInterrupt`` itself (no signal): an error;
- ``json-replaced``: the first step sets ``json.dumps = None`` (the runtime must put it back).

What must hold, and is printed: every session ends with its own token as the answer, and no run
raises; no observation the model got holds another session's token, ``HOST-NOISE`` or ``STRAY``
(cross-wired output); the host's ``sys.stdout`` and ``json.dumps`` are its own afterwards; and
nothing leaks. Leaks are counted against the state after a warm-up phase, both times once the
threads the runs started have ended (a block abandoned at its time limit still runs the model's
code: the timeout fault's ``time.sleep(4)``; at most 60 s are waited) and with the clients' pools and
the server's idle keep-alive connections closed, so that connections kept for reuse are not counted
as leaked: threads (the sub-call loop's resolver threads, a bounded pool, are counted apart) and
file descriptors. Peak memory is shown. Each worker keeps only counters, so a leak shows as growth,
not as the benchmark's own bookkeeping.

With ``--async`` the same sessions and faults are driven by ``rlm_kernel.arun`` from one event loop
on the main thread (``--sessions`` coroutines running sessions back to back, awaited together), and
the loop's responsiveness is measured meanwhile: how late a 20 ms sleep on it wakes.

Usage: python benchmarks/soak.py [--sessions 50] [--seconds 180] [--async]
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import functools
import gc
import io
import json
import os
import re
import resource
import secrets
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field

from _common import (
    OtherLoad,
    Verdicts,
    banner,
    close_client_pools,
    fence,
    print_table,
    serve,
    settings,
)

import rlm_kernel
from rlm_kernel.testing import ChatRequest, Fault, ScriptedServer

FAULTS = (
    "clean",
    "server-500",
    "model-error",
    "timeout",
    "big-print",
    "subcalls",
    "stray-thread",
    "raised-interrupt",
    "json-replaced",
)
_HOST_DUMPS = (
    json.dumps
)  # the json-replaced fault's sessions rebind it: the runtime must put it back
_SESSION = re.compile(r"soak session (\d+)")
_SEEN = re.compile(r"SEEN:(\S+)")
_TOKEN_SHAPE = re.compile(r"TOK-[0-9a-f]{12}")
_PRINT_TOKEN = 'print("SEEN:" + P.split()[-1])'
_FIRST_STEP = {
    "clean": _PRINT_TOKEN,
    "server-500": _PRINT_TOKEN,
    "model-error": "raise ValueError('the model got this wrong')",
    "timeout": "import time\ntime.sleep(4)",
    "big-print": 'print("x" * 2_000_000)\n' + _PRINT_TOKEN,
    "subcalls": (
        'replies = llm_batch([f"echo {P.split()[-1]} #{i}" for i in range(8)])\n'
        'print("SEEN:" + replies[0].split()[0])'
    ),
    "stray-thread": (
        "import threading, time\n"
        "def noise():\n"
        "    for _ in range(20):\n"
        "        print('STRAY')\n"
        "        time.sleep(0.05)\n"
        "threading.Thread(target=noise, daemon=True).start()\n" + _PRINT_TOKEN
    ),
    "raised-interrupt": "raise KeyboardInterrupt",
    "json-replaced": "import json\njson.dumps = None\n" + _PRINT_TOKEN,
}


@dataclass
class Tally:
    """What the workers saw; one lock guards it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    completed: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    cross_wired: list[str] = field(default_factory=list)
    wrong_detail: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Soak:
    def __init__(self) -> None:
        self.tokens: dict[int, str] = {}  # session number → its token
        self.faults: dict[int, str] = {}
        self.failed_once: set[int] = set()
        self.lock = threading.Lock()
        self.tally = Tally()

    def root(self, request: ChatRequest) -> str | Fault:
        first_user = next(m["content"] for m in request.messages if m["role"] == "user")
        number = int(_SESSION.search(str(first_user)).group(1))  # type: ignore[union-attr]
        token, fault = self.tokens[number], self.faults[number]
        turn = sum(m["role"] == "assistant" for m in request.messages) + 1
        if fault == "server-500" and turn == 1:
            with self.lock:
                if number not in self.failed_once:
                    self.failed_once.add(number)
                    return Fault.status_code(500)
        if turn == 1:
            return fence(_FIRST_STEP[fault])
        observation = request.prompt
        foreign = set(_TOKEN_SHAPE.findall(observation)) - {token}
        for intruder in ("HOST-NOISE", "STRAY", *sorted(foreign)):
            if intruder in observation:
                with self.tally.lock:
                    self.tally.cross_wired.append(f"session {number} ({fault}) saw {intruder}")
        seen = _SEEN.findall(observation)
        if seen:
            return fence(f"FINAL({seen[-1]!r})")
        return fence(_PRINT_TOKEN)

    @staticmethod
    def sub(request: ChatRequest) -> str:
        time.sleep(0.05)
        return request.prompt.split()[1]  # "echo TOK-… #i" → the token

    def worker(self, first: int, stride: int, until: float, base: dict[str, object]) -> None:
        number = first
        while time.monotonic() < until:
            fault, token = self.begin(number)
            try:
                result = rlm_kernel.run(
                    f"soak session {number}: what is the token?", f"the token is {token}", **base
                )
            except Exception as exc:  # any raise out of run() is a failure of the product
                self.end(number, fault, token, exc)
            else:
                self.end(number, fault, token, result)
            number += stride

    async def aworker(self, first: int, stride: int, until: float, base: dict[str, object]) -> None:
        """``worker`` as a coroutine: the same sessions, awaited with ``rlm_kernel.arun``."""
        number = first
        while time.monotonic() < until:
            fault, token = self.begin(number)
            try:
                result = await rlm_kernel.arun(
                    f"soak session {number}: what is the token?", f"the token is {token}", **base
                )
            except Exception as exc:  # any raise out of arun() is a failure of the product
                self.end(number, fault, token, exc)
            else:
                self.end(number, fault, token, result)
            number += stride

    def begin(self, number: int) -> tuple[str, str]:
        """Session ``number``'s fault and a fresh token, known to the scripted model from now on."""
        fault = FAULTS[number % len(FAULTS)]
        token = f"TOK-{secrets.token_hex(6)}"
        with self.lock:
            self.tokens[number], self.faults[number] = token, fault
        return fault, token

    def end(
        self, number: int, fault: str, token: str, outcome: rlm_kernel.Result | Exception
    ) -> None:
        """Count how session ``number`` ended: what it answered, or what it raised."""
        if isinstance(outcome, Exception):
            with self.tally.lock:
                self.tally.errors.append(f"session {number} ({fault}): {outcome!r}")
        else:
            result = outcome
            with self.tally.lock:
                self.tally.completed[fault] += 1
                self.tally.reasons[result.reason] += 1
                if result.answer != token:
                    self.tally.wrong[fault] += 1
                    seen = [str(it["observation"])[-300:] for it in result.trajectory.iterations]
                    self.tally.wrong_detail.append(
                        f"session {number} ({fault}): {result.reason}, answer "
                        f"{result.answer!r}, token {token}; observations {seen}"
                    )
        with self.lock:
            del self.tokens[number], self.faults[number]


def run_phase(
    soak: Soak,
    server: ScriptedServer,
    sessions: int,
    first: int,
    seconds: float,
    base: dict[str, object],
) -> None:
    """``sessions`` worker threads running sessions back to back for ``seconds``; every 30 s a line
    on stderr says how far it is (sessions done, in flight, threads), and the server forgets the
    requests it recorded (the soak reads none, and they would count as the process's memory)."""
    started = time.monotonic()
    until = started + seconds
    workers = [
        threading.Thread(target=soak.worker, args=(first + i, sessions, until, base))
        for i in range(sessions)
    ]
    for w in workers:
        w.start()
    for w in workers:
        while w.is_alive():
            w.join(30.0)
            server.reset()
            if w.is_alive():
                with soak.lock:
                    in_flight = sorted(soak.faults.items())[:8]
                done = sum(soak.tally.completed.values()) + len(soak.tally.errors)
                print(
                    f"[{time.monotonic() - started:.0f} s] {done} done, in flight {len(soak.faults)} "
                    f"{in_flight}, threads {threading.active_count()}",
                    file=sys.__stderr__,
                    flush=True,
                )


@dataclass
class LoopLag:
    """How late a 20 ms sleep on the event loop woke, in ms, while ``arun`` drove the sessions."""

    samples: list[float] = field(default_factory=list)

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        ordered = sorted(self.samples)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (
            f"{len(ordered)} samples, median {ordered[len(ordered) // 2]:.1f} ms, "
            f"p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms"
        )


def run_phase_async(
    soak: Soak,
    server: ScriptedServer,
    sessions: int,
    first: int,
    seconds: float,
    base: dict[str, object],
    lag: LoopLag | None = None,
) -> None:
    """``run_phase`` with ``sessions`` coroutines awaiting ``arun`` in one event loop on this thread
    instead of threads; ``lag`` collects how late the loop wakes meanwhile."""

    async def phase() -> None:
        started = time.monotonic()
        until = started + seconds
        workers = asyncio.gather(
            *(soak.aworker(first + i, sessions, until, base) for i in range(sessions))
        )
        last_report = started
        while not workers.done():
            asked = time.perf_counter()
            await asyncio.sleep(0.02)
            if lag is not None:
                lag.samples.append((time.perf_counter() - asked - 0.02) * 1000)
            if time.monotonic() - last_report >= 30.0:
                last_report = time.monotonic()
                server.reset()
                done = sum(soak.tally.completed.values()) + len(soak.tally.errors)
                print(
                    f"[{last_report - started:.0f} s] {done} done, in flight {len(soak.faults)}, "
                    f"threads {threading.active_count()}",
                    file=sys.__stderr__,
                    flush=True,
                )
        await workers

    asyncio.run(phase())


# Threads that pools keep for reuse, counted apart: the scripted server's (one per open connection,
# closed by _quiesce) and the sub-call loop's default executor (asyncio's, which resolves host names
# for new connections: at most min(32, cores + 4) threads, kept for the process).
_POOLED = ("scripted-server", "asyncio_")
_EXECUTOR_MOST = min(32, (os.cpu_count() or 1) + 4)


def _pooled(prefix: str) -> int:
    return sum(t.name.startswith(prefix) for t in threading.enumerate())


def _own_threads() -> set[threading.Thread]:
    """This process's threads other than the scripted server's (which follow the open connections).
    Thread objects, not idents: a new thread may get the ident of one that has ended."""
    return {t for t in threading.enumerate() if not t.name.startswith(_POOLED)}


def _stacks(threads: list[threading.Thread], limit: int = 3) -> list[str]:
    """The ``limit`` commonest stacks among ``threads`` (their innermost frames), with counts."""
    gc.disable()  # python/cpython#106883: a collection inside _current_frames() can deadlock
    try:
        frames = sys._current_frames()
    finally:
        gc.enable()
    shapes: Counter[str] = Counter()
    for t in threads:
        frame = frames.get(t.ident) if t.ident is not None else None
        if frame is None:
            continue
        where = traceback.extract_stack(frame)[-6:]
        shapes[
            " < ".join(
                f"{os.path.basename(f.filename).split(' step')[0]}:{f.lineno} {f.name}"
                for f in reversed(where)
            )
        ] += 1
    return [f"{n} × {shape}" for shape, n in shapes.most_common(limit)]


def _settle(before: set[threading.Thread], most: float) -> float:
    """Wait, ``most`` seconds at most, until the threads started since ``before`` have ended: the
    runs' blocks abandoned at their time limit still run the model's code (``time.sleep(4)``), and
    stray threads print for a second. Returns the seconds waited; what is alive then is a leak."""
    started = time.monotonic()
    while time.monotonic() - started < most:
        if not [
            t for t in threading.enumerate() if t not in before and not t.name.startswith(_POOLED)
        ]:
            break
        time.sleep(0.1)
    return time.monotonic() - started


def _quiesce(server: ScriptedServer) -> None:
    """Close the clients' pools and the server's idle keep-alive connections (their handler threads
    end), so that descriptors and threads are counted without connections merely kept for reuse."""
    close_client_pools()
    # A connection the server accepts after close_idle() took its list is closed by the client, and
    # its handler ends on that: wait for it rather than count it.
    for _ in range(50):
        server.close_idle(30.0)
        if not _pooled("scripted-server-conn"):
            break
        time.sleep(0.1)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=50, help="concurrent sessions (threads)")
    parser.add_argument(
        "--seconds", type=float, default=180.0, help="how long to keep starting runs"
    )
    parser.add_argument(
        "--async",
        dest="use_async",
        action="store_true",
        help="drive the sessions with rlm_kernel.arun from one event loop instead of threads",
    )
    args = parser.parse_args()
    lag = LoopLag()
    phase = functools.partial(run_phase_async, lag=lag) if args.use_async else run_phase
    how = "coroutines awaiting arun in one event loop" if args.use_async else "threads"
    # `kill -USR1 <pid>` prints every thread's stack to stderr: for a run that does not end.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    banner(
        "soak",
        f"{args.sessions} concurrent sessions ({how}) for {args.seconds:g} s, faults by turn: "
        + ", ".join(FAULTS),
    )
    soak = Soak()
    with serve({"root": soak.root, "sub": soak.sub}) as server:
        base = settings(
            server,
            max_retries=2,
            iteration_timeout=1.0,
            max_iterations=6,
            autosave=True,
        )
        # A warm-up phase starts what lives for the process (the sub-call loop, the module caches):
        # what is left over is then measured against it, once its own blocks and stray threads
        # have ended and, as at the end, with no connection kept open for reuse.
        warm = _own_threads()
        phase(soak, server, args.sessions, 10**7, min(10.0, args.seconds / 6), base)
        soak.tally = Tally()
        _settle(warm | {t for t in threading.enumerate() if t.name == "rlm-kernel-subcalls"}, 60.0)
        _quiesce(server)
        server.reset()
        threads_before = _own_threads()
        server_threads_before = _pooled("scripted-server")
        executor_before = _pooled("asyncio_")
        fds_before, rss_before = _fds(), _rss_mb()
        stop_noise = threading.Event()

        # The host application's own output goes to its own sys.stdout: a sink here, so that it is
        # counted rather than shown, and so that whether it is put back can be checked.
        host_out = io.StringIO()
        sys.stdout = host_out
        noise_lines = 0

        def host_noise() -> None:
            nonlocal noise_lines
            while not stop_noise.wait(0.02):
                print("HOST-NOISE")
                noise_lines += 1

        noise = threading.Thread(target=host_noise, name="host-noise")
        load = OtherLoad()
        started = time.monotonic()
        noise.start()
        lag.samples.clear()  # the warm-up's are not counted
        phase(soak, server, args.sessions, 0, args.seconds, base)
        stop_noise.set()
        noise.join()
        elapsed = time.monotonic() - started
        settled = _settle(threads_before, 60.0)
        _quiesce(server)
        server.reset()
        put_back = sys.stdout is host_out
        json_intact = json.dumps is _HOST_DUMPS
        sys.stdout = sys.__stdout__
        landed = host_out.getvalue().count("HOST-NOISE")
        left = [
            t
            for t in threading.enumerate()
            if t not in threads_before and not t.name.startswith(_POOLED)
        ]
        leaked = sorted(t.name for t in left)
        stacks = _stacks(left)
        server_threads = _pooled("scripted-server")
        executor_after = _pooled("asyncio_")
        fds_after, rss_after = _fds(), _rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tally = soak.tally
    done = sum(tally.completed.values())
    print()
    print_table(
        ["fault", "completed", "wrong answer"],
        [[f, tally.completed[f], tally.wrong[f]] for f in FAULTS],
    )
    print("reasons:", dict(tally.reasons))
    print(f"{done} sessions completed in {elapsed:.0f} s ({done / elapsed:.1f}/s)")
    print(f"runs that raised: {len(tally.errors)}")
    for line in tally.errors[:5]:
        print("  ", line)
    for line in tally.wrong_detail[:5]:
        print("   wrong:", line)
    print(f"cross-wired observations: {len(tally.cross_wired)}")
    for line in tally.cross_wired[:5]:
        print("  ", line)
    print(
        f"settled in {settled:.1f} s (the threads the runs started had ended, or 60 s passed); "
        "then the client pools and the server's idle connections were closed, as before the runs"
    )
    print(f"threads left: {len(leaked)} {leaked[:5]}; file descriptors {fds_before} → {fds_after}")
    for line in stacks:
        print("  ", line)
    print(
        "server connection threads (one per open connection), after closing the idle ones: "
        f"{server_threads_before} → {server_threads}"
    )
    print(
        f"the sub-call loop's resolver threads (asyncio's default executor, at most "
        f"{_EXECUTOR_MOST}, kept for reuse): {executor_before} → {executor_after}"
    )
    print(f"RSS {rss_before:.0f} MB → {rss_after:.0f} MB; peak {peak:.0f} MB")
    print(f"the host's sys.stdout is its own again afterwards: {put_back}")
    print(f"the host's json.dumps is its own afterwards: {json_intact}")
    print(f"the host's own lines: {noise_lines} printed, {landed} reached its sys.stdout")
    if args.use_async:
        print(f"the event loop's lateness waking from a 20 ms sleep: {lag.summary()}")
    load.report()
    print()
    verdicts = Verdicts()
    wrong = sum(tally.wrong.values())
    verdicts.check("every run returned", not tally.errors, f"{len(tally.errors)} raised")
    verdicts.check("no wrong answers", wrong == 0, f"{wrong} of {done}")
    verdicts.check("no cross-wired output", not tally.cross_wired, f"{len(tally.cross_wired)}")
    verdicts.check(
        "the host's output stayed its own",
        put_back and landed == noise_lines,
        f"{landed} of {noise_lines} lines, sys.stdout put back: {put_back}",
    )
    verdicts.check(
        "the host's standard library stayed its own", json_intact, f"json.dumps {json.dumps!r}"
    )
    verdicts.check(
        "no leaked threads",
        not leaked and server_threads <= server_threads_before and executor_after <= _EXECUTOR_MOST,
        f"{len(leaked)}; server {server_threads_before} → {server_threads}; "
        f"executor {executor_after} of {_EXECUTOR_MOST}",
    )
    verdicts.check("no leaked descriptors", fds_after <= fds_before, f"{fds_before} → {fds_after}")
    verdicts.summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
