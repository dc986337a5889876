"""Framework overhead per iteration: (wall − model latency) / iterations.

A root model scripted on the loopback ``ScriptedServer`` runs 20 trivial iterations (each prints
something different) and submits with ``FINAL`` in a 21st. The server waits ``latency`` before every
answer, so ``Session.run()`` wall − root calls × latency is what rlm_kernel, the openai SDK, HTTP and
the server cost together. Each root call's time inside the model client (the SDK call, HTTP and the
server, as rlm_kernel records it in ``model_call.latency``) is subtracted from the wall to give the cost
of rlm_kernel alone, measured within the same run. As a cross-check, the exact requests the session sent
are replayed with a bare ``openai.OpenAI`` client against a fresh server with the same script and
latency. Session construction (building the clients) is timed separately: it is paid once per run.

The server answers each request ``latency`` after it has arrived in full, and records when it actually
answered (``ScriptedServer.timings``); the per-iteration figure is also shown with that measured latency
subtracted instead of the configured one, which leaves out how late the server's timer fired.

Runs with ``RLM.lean_http`` set the other way from its default (off by default: the SDK's HTTP
transport; on: rlm_kernel's lean one under the SDK) take turns with the default runs, to show what
the lean transport saves in the same minutes. The targets are judged on the default runs.

Usage: python benchmarks/overhead.py [--reps 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import openai
from _common import (
    REFERENCE,
    ChatRequest,
    OtherLoad,
    ScriptedServer,
    Verdicts,
    banner,
    fence,
    make_config,
    median,
    print_table,
    root_requests,
    serve,
)

import rlm_kernel
from rlm_kernel import RLM
from rlm_kernel.models._transport import lean_transport
from rlm_kernel.models.openai import _http_library

STEPS = 20  # trivial iterations, then one more that submits
LATENCY = 0.05
TARGET_MS = 3.0
CONTEXT = "The quick brown fox jumps over the lazy dog. " * 250  # 11 KB; never sent to the model
PLACEHOLDER_KEY = "not-needed"
DEFAULT_LEAN: bool = RLM().lean_http
OTHER_LEAN = f"lean_http {'off' if DEFAULT_LEAN else 'on'}"  # the runs with the setting flipped


def root_script() -> list[str]:
    steps = [fence(f"x{i} = {i} * {i}\nprint('step', {i}, x{i})") for i in range(STEPS)]
    return [*steps, fence("FINAL(f'{len(P)} chars, {x19} at the last step')")]


@dataclass
class Rep:
    latency: float
    setup: float  # Session(...) construction, paid once per run
    loop: float  # Session.run() wall
    calls: int  # root calls the server received
    iterations: int
    in_client: float  # sum of the root calls' time inside the model client (SDK + HTTP + server)
    applied: float  # sum of the latencies the server actually applied (arrival to answer written)
    replay: float  # wall of a bare openai client sending the same requests
    replay_raw: float  # the same through client.post(), which skips the SDK's parameter transform

    @property
    def model_latency(self) -> float:
        return self.calls * self.latency

    @property
    def per_iteration(self) -> float:
        """rlm_kernel + SDK + HTTP + server, per iteration."""
        return (self.loop - self.model_latency) / self.iterations

    @property
    def per_iteration_measured(self) -> float:
        """As ``per_iteration``, with the latency the server measured instead of the configured one."""
        return (self.loop - self.applied) / self.iterations

    @property
    def late_per_call(self) -> float:
        """How much longer than configured the server took per answer (its timer firing late)."""
        return (self.applied - self.model_latency) / self.calls

    @property
    def client_per_call(self) -> float:
        """SDK + HTTP + server per root call, as measured inside the run."""
        return (self.in_client - self.model_latency) / self.calls

    @property
    def framework(self) -> float:
        """rlm_kernel alone, per iteration: the run's wall minus its time inside the model client."""
        return (self.loop - self.in_client) / self.iterations

    @property
    def replay_per_call(self) -> float:
        return (self.replay - self.model_latency) / self.calls

    @property
    def replay_raw_per_call(self) -> float:
        return (self.replay_raw - self.model_latency) / self.calls

    @property
    def end_to_end(self) -> float:
        """Per iteration with Session construction amortised over the run."""
        return (self.setup + self.loop - self.model_latency) / self.iterations


def replay(requests: list[ChatRequest], latency: float, *, raw: bool = False) -> float:
    """Wall time of sending ``requests`` again with a bare openai client (same script and latency).

    ``raw`` sends them as rlm_kernel does, with ``client.post`` and ``cast_to=object`` (the decoded
    JSON, no response model) instead of ``chat.completions.create``: the same HTTP request without the
    SDK's per-message parameter transform and without building a ChatCompletion.
    """
    with serve({"root": root_script()}, latency) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=PLACEHOLDER_KEY, max_retries=0)
        started = time.perf_counter()
        for request in requests:
            if raw:
                body = {"model": request.model, "messages": request.messages}
                client.post("/chat/completions", body=body, cast_to=object)
            else:
                client.chat.completions.create(model=request.model, messages=request.messages)  # type: ignore[arg-type]
        wall = time.perf_counter() - started
        client.close()
    return wall


def one_rep(latency: float, *, lean_http: bool = DEFAULT_LEAN) -> Rep:
    with serve({"root": root_script()}, latency) as server:
        started = time.perf_counter()
        session = rlm_kernel.Session(
            "What is the last step's value?",
            CONTEXT,
            config=make_config(server, max_iterations=STEPS + 10, lean_http=lean_http),
        )
        built = time.perf_counter()
        result = session.run()
        done = time.perf_counter()
        if result.reason != "final":
            raise RuntimeError(
                f"the run did not finish with FINAL: {result.reason}: {result.message}"
            )
        requests = root_requests(server)
        applied = sum(t.applied for t in server.timings if t.model == "root")
    iterations = result.trajectory.iterations
    return Rep(
        latency=latency,
        setup=built - started,
        loop=done - built,
        calls=len(requests),
        iterations=len(iterations),
        in_client=sum(it["model_call"]["latency"] for it in iterations),
        applied=applied,
        replay=replay(requests, latency),
        replay_raw=replay(requests, latency, raw=True),
    )


def bare_round_trip(server: ScriptedServer, n: int, how: str) -> float:
    """Median seconds of a one-message request: the SDK's ``create``, its ``post`` (with the SDK's
    default transport, or with rlm_kernel's lean one, as rlm_kernel sends it with RLM.lean_http), or
    the standard library's ``http.client`` (the floor for any Python HTTP client)."""
    body = {"model": "echo", "messages": [{"role": "user", "content": "ping"}]}
    http_client = None
    if how == "post, lean":
        library = _http_library()
        assert library is not None, "cannot tell which HTTP library the openai SDK is built on"
        transport = lean_transport(library, library.HTTPTransport())
        http_client = openai.DefaultHttpxClient(transport=transport)
    client = openai.OpenAI(
        base_url=server.base_url,
        api_key=PLACEHOLDER_KEY,
        max_retries=0,
        http_client=http_client,
    )
    url = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port)
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}

    def once() -> None:
        if how == "create":
            client.chat.completions.create(**body)  # type: ignore[call-overload]
        elif how.startswith("post"):
            client.post("/chat/completions", body=body, cast_to=object)
        else:
            conn.request("POST", f"{url.path}/chat/completions", data, headers)
            json.loads(conn.getresponse().read())

    once()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        once()
        times.append(time.perf_counter() - started)
    client.close()
    conn.close()
    return median(times)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions per latency (median)")
    args = parser.parse_args()
    banner(
        "overhead: framework cost per iteration",
        f"{STEPS} trivial iterations + 1 FINAL iteration per run; median of {args.reps} runs per latency.",
    )
    other = OtherLoad()

    one_rep(0.0)  # warm-up: lazy imports, first connections; not counted
    one_rep(0.0, lean_http=not DEFAULT_LEAN)
    # The three kinds of run take turns, so that a busier minute on the host falls on all of them.
    kinds = {
        f"{LATENCY * 1000:.0f} ms": (LATENCY, DEFAULT_LEAN),
        f"{LATENCY * 1000:.0f} ms, {OTHER_LEAN}": (LATENCY, not DEFAULT_LEAN),
        "0 ms": (0.0, DEFAULT_LEAN),
    }
    reps: dict[str, list[Rep]] = {label: [] for label in kinds}
    for _ in range(args.reps):
        for label, (lat, lean) in kinds.items():
            reps[label].append(one_rep(lat, lean_http=lean))

    def col(runs: list[Rep], metric: str) -> str:
        return ms(median([getattr(r, metric) for r in runs]))

    print_table(
        [
            "latency",
            "root calls",
            "iterations",
            "run() wall",
            "model latency",
            "per iter, all",
            "rlm_kernel per iter",
            "client per call",
            "Session()",
            "per iter incl. Session()",
        ],
        [
            [
                label,
                runs[0].calls,
                runs[0].iterations,
                col(runs, "loop"),
                ms(runs[0].model_latency),
                col(runs, "per_iteration"),
                col(runs, "framework"),
                col(runs, "client_per_call"),
                col(runs, "setup"),
                col(runs, "end_to_end"),
            ]
            for label, runs in reps.items()
        ],
    )
    print_table(
        [
            "latency",
            "server late per call",
            "per iter, all (measured latency)",
            "in-run client per call",
            "bare SDK replay per call",
            "replay via client.post per call",
        ],
        [
            [
                label,
                col(runs, "late_per_call"),
                col(runs, "per_iteration_measured"),
                col(runs, "client_per_call"),
                col(runs, "replay_per_call"),
                col(runs, "replay_raw_per_call"),
            ]
            for label, runs in reps.items()
        ],
    )
    print(
        "All figures in ms, medians.\n"
        "per iter, all        = (run() wall − root calls × latency) / iterations: rlm_kernel + SDK + HTTP + server\n"
        "rlm_kernel per iter  = (run() wall − time inside the model client) / iterations: rlm_kernel alone\n"
        "client per call      = (time inside the model client − calls × latency) / calls: SDK + HTTP + server\n"
        "server late per call = (latency the server applied, arrival to answer written − configured) / calls\n"
        "per iter, all (measured latency) = (run() wall − latency the server applied) / iterations\n"
        "bare SDK replay      = the same requests from a bare openai client (chat.completions.create)\n"
        "replay via post      = the same requests as rlm_kernel sends them: client.post(), cast_to=object\n"
        "per iter incl. Session() adds the one-off Session construction, amortised over the run\n"
        f"{OTHER_LEAN}        = RLM.lean_http flipped from its default ({DEFAULT_LEAN}); off: the SDK's "
        "HTTP transport, on: rlm_kernel's lean one\n"
    )

    trips = {}
    with serve(lambda request: "pong") as fast, serve(lambda request: "pong", LATENCY) as slow:
        for how in ("create", "post", "post, lean", "http.client"):
            trips[how] = (bare_round_trip(fast, 50, how), bare_round_trip(slow, 20, how) - LATENCY)
    print("One-message round trips against the same server, beyond the latency (ms, medians):")
    print_table(
        ["client", "0 ms latency", "50 ms latency"],
        [
            ["openai SDK chat.completions.create", ms(trips["create"][0]), ms(trips["create"][1])],
            ["openai SDK client.post", ms(trips["post"][0]), ms(trips["post"][1])],
            [
                "openai SDK client.post, lean transport (RLM.lean_http)",
                ms(trips["post, lean"][0]),
                ms(trips["post, lean"][1]),
            ],
            [
                "http.client (stdlib, no SDK)",
                ms(trips["http.client"][0]),
                ms(trips["http.client"][1]),
            ],
        ],
    )
    print("For reference:", REFERENCE["overhead"])
    other.report()
    print()

    slow_runs = reps[f"{LATENCY * 1000:.0f} ms"]
    framework = median([r.framework for r in slow_runs])
    everything = median([r.per_iteration for r in slow_runs])
    measured = median([r.per_iteration_measured for r in slow_runs])
    verdicts = Verdicts()
    verdicts.check(
        "overhead per iteration, (wall − root calls × 50 ms) / iterations: rlm_kernel + openai SDK + HTTP + server",
        everything <= TARGET_MS / 1000,
        f"{ms(everything)} ms (target ≤ {TARGET_MS:g} ms)",
    )
    verdicts.check(
        "same, with the latency the server measured instead of the configured 50 ms",
        measured <= TARGET_MS / 1000,
        f"{ms(measured)} ms (target ≤ {TARGET_MS:g} ms)",
    )
    verdicts.check(
        "rlm_kernel's own part, time inside the SDK call excluded",
        framework <= TARGET_MS / 1000,
        f"{ms(framework)} ms (target ≤ {TARGET_MS:g} ms)",
    )
    verdicts.summary()


if __name__ == "__main__":
    main()
