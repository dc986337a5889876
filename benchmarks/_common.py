"""Helpers shared by the benchmark scripts.

Importing this module isolates the process before rlm_kernel is imported: trajectories are autosaved
under a fresh temporary ``XDG_DATA_HOME`` (removed at exit), and no API key, endpoint or model name from
the environment is used. Every benchmark points rlm_kernel at a loopback ``ScriptedServer`` through
``base_url``, so the SDK gets a placeholder key and nothing leaves the machine.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if (
    str(ROOT) not in sys.path
):  # `python benchmarks/x.py` puts benchmarks/, not the repo, on the path
    sys.path.insert(0, str(ROOT))

for _name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RLM_MODEL", "RLM_SUB_MODEL"):
    os.environ.pop(_name, None)
DATA_DIR = Path(tempfile.mkdtemp(prefix="rlm-bench-"))
os.environ["XDG_DATA_HOME"] = str(DATA_DIR)
atexit.register(shutil.rmtree, DATA_DIR, True)

import openai  # noqa: E402

import rlm_kernel  # noqa: E402
from rlm_kernel import testing  # noqa: E402
from rlm_kernel.testing import ChatRequest, ScriptedServer, fence  # noqa: E402
from rlm_kernel.testing._server import Script  # noqa: E402

__all__ = [
    "DATA_DIR",
    "MB",
    "REFERENCE",
    "ChatRequest",
    "OtherLoad",
    "ScriptedServer",
    "Verdicts",
    "banner",
    "close_client_pools",
    "fence",
    "make_config",
    "median",
    "print_table",
    "root_requests",
    "serve",
    "settings",
]

MB = 1_000_000
# An environment variable that is never set: the client then uses its keyless placeholder.
_NO_KEY_ENV = "RLM_BENCHMARK_UNSET_API_KEY"

# The paper authors' implementation (`rlms` 0.1.3), measured on a machine of this size.
REFERENCE = {
    "overhead": "rlms 0.1.3: 21–30 ms framework overhead per iteration",
    "batch": "rlms 0.1.3: a 64-prompt batch at 200 ms latency took 1.49× ideal",
    "memory": "rlms 0.1.3: at |P| = 100 MB its log reached 1,016 MB for 5 iterations; peak RSS 446 MB",
}


def settings(server: ScriptedServer, **overrides: Any) -> dict[str, Any]:
    """The test suite's settings for ``server`` (root model 'root', sub model 'sub', no retries), with
    no key and the benchmark's own data directory."""
    return testing.settings(
        server,
        **{"api_key_env": _NO_KEY_ENV, "trajectory_dir": str(DATA_DIR / "sessions"), **overrides},
    )


def make_config(server: ScriptedServer, **overrides: Any) -> rlm_kernel.RLM:
    return rlm_kernel.RLM().with_overrides(settings(server, **overrides))


def close_client_pools() -> None:
    """Close the SDK clients rlm_kernel keeps for the process, and forget them (the next call builds
    new ones): their pools hold idle keep-alive connections, so a count of file descriptors taken
    with them open depends on how many calls happened to overlap last, not on what leaked. A
    connection outside the pools stays open and is counted."""
    from rlm_kernel import _aio
    from rlm_kernel.models import openai as sdk_clients

    with sdk_clients._LOCK:
        sync, asynchronous = list(sdk_clients._SYNC.values()), list(sdk_clients._ASYNC.values())
        sdk_clients._SYNC.clear()
        sdk_clients._ASYNC.clear()
    for client in sync:
        client.close()
    for aclient in asynchronous:
        _aio.run_sync(aclient.close())


@contextlib.contextmanager
def serve(script: Script, latency: float | Mapping[str, float] = 0.0) -> Iterator[ScriptedServer]:
    server = ScriptedServer(script, latency=latency).start()
    try:
        yield server
    finally:
        server.stop()


def root_requests(server: ScriptedServer, model: str = "root") -> list[ChatRequest]:
    return [r for r in server.requests if r.model == model]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def banner(title: str, what: str) -> None:
    print(f"== {title} ==")
    print(what)
    print(
        f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"openai {openai.__version__}, rlm_kernel {rlm_kernel.__version__}, {platform.platform()}"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load} (other work on the machine inflates every figure)")
    print()


def _busy_jiffies() -> int:
    """CPU time used by every process on the machine since boot, in clock ticks (Linux /proc/stat)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, f.readline().split()[1:9]
        )
    return user + nice + system + irq + softirq + steal


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OtherLoad:
    """How busy the rest of the machine was while this process measured: the CPU time all processes
    used (``/proc/stat``) minus this process's own and its finished children's, per second of wall time.
    Figures measured while other processes used the cores are inflated; this says by how much."""

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._start = (_busy_jiffies(), _own_seconds(), time.monotonic())

    def cores(self) -> float:
        """Average number of cores other processes kept busy since this object was made."""
        jiffies, own, started = self._start
        other = (_busy_jiffies() - jiffies) / self._tick - (_own_seconds() - own)
        return max(0.0, other / max(time.monotonic() - started, 1e-9))

    def report(self) -> None:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"Other processes kept {self.cores():.2f} of {os.cpu_count()} cores busy on average while "
            f"this ran; load average now {load}."
        )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain-text table, numbers right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    print()


class Verdicts:
    """PASS/FAIL lines against the targets; a benchmark reports them and still exits 0."""

    def __init__(self) -> None:
        self.results: list[tuple[str, bool]] = []

    def check(self, label: str, ok: bool, detail: str) -> bool:
        self.results.append((label, ok))
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {detail}")
        return ok

    def summary(self) -> None:
        passed = sum(ok for _, ok in self.results)
        print(f"\n{passed}/{len(self.results)} targets met")
