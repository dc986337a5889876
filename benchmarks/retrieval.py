"""Indexing throughput, query latency, peak memory and index size: the embedded SQLite FTS5 index and
the PostgreSQL full-text backend side by side, on 10^4, 10^5 and 10^6 generated issues.

The collection is ``examples/make_issues.py``'s (a seed, JSON Lines). For each size and backend a
fresh interpreter builds the index with ``rlm_kernel.index``'s builder (``build_index``, progress
off) and then runs a fixed set of queries (each once to warm up, then ``--reps`` times, k=10),
so each child's peak RSS (``ru_maxrss``) is the build's own and comparable across sizes. The
PostgreSQL server is a throwaway cluster started here (``tests/_postgres.py``) with its durability
on (fsync, full-page writes), on the same machine: its memory is the server's, bounded by its
configuration, and is not in the client's RSS. Index size: the SQLite file; for PostgreSQL the
table, its TOAST and its indexes (``pg_total_relation_size``).

    python benchmarks/retrieval.py                       # 1e4, 1e5, 1e6: ~15 min on 2 cores
    python benchmarks/retrieval.py --sizes 1e4,1e5       # a minute or two
    python benchmarks/retrieval.py --backends sqlite     # no PostgreSQL
    python benchmarks/retrieval.py --out benchmarks/results/retrieval-today.txt

Targets (issue 17): query latency at 10^6 documents below 100 ms median for the embedded index;
peak memory while indexing independent of the collection size (here: the largest size's peak RSS
within 25 % of the smallest's). Like the other benchmarks it reports and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "examples"), str(ROOT / "tests")]

QUERIES = [
    "memory leak exporter",
    "exporter leaks memory after reconnect",
    "crashes on start",
    "times out under load",
    "unicode path",
    "KeyError empty input",
    "flush_batch",
    "E4569",
    '"connection pool"',
    "stale data cache",
    "scheduler hangs when the network drops",
    "parser slow large inputs",
    "OOM killed",
    "wrong log level",
    "config file ignored",
    "retry queue",
    "fucini",  # the vocabulary's most common word: in most documents
    "lohu kosi",  # two common ones
    "zazebu",  # a rarer one
    "vefe hogure tivemi",  # rarer still, together
    "which issues mention a memory leak in the exporter",
    "v2.14.3",
    "auth -closed",
    "metrics or sync",
]


def child(args: argparse.Namespace) -> None:
    """Build ``args.source`` into ``args.target``, then time the queries; one JSON line out."""
    from rlm_kernel.retrieval import build_index, open_retriever

    began = time.perf_counter()
    report = build_index(args.source, args.target, progress=False)
    seconds = time.perf_counter() - began
    peak_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    retriever = open_retriever(args.target)
    latencies: list[float] = []
    for query in QUERIES:
        retriever.search(query, k=10)  # warm: the first touch of a page reads it from disk
        for _ in range(args.reps):
            t = time.perf_counter()
            retriever.search(query, k=10)
            latencies.append(time.perf_counter() - t)
    size = _size(args.target)
    close = getattr(retriever, "close", None)
    if callable(close):
        close()
    latencies.sort()
    print(
        json.dumps(
            {
                "documents": report.documents,
                "seconds": seconds,
                "peak_rss": peak_build,
                "median_ms": statistics.median(latencies) * 1000,
                "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
                "max_ms": latencies[-1] * 1000,
                "size": size,
            }
        )
    )


def _size(target: str) -> int:
    if target.startswith("postgresql://"):
        from rlm_kernel.retrieval.postgres import PostgresWriter

        writer = PostgresWriter.from_spec(target)
        try:
            return writer.size()
        finally:
            writer.close()
    return Path(target).stat().st_size


def run(backend: str, n: int, source: Path, target: str, reps: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", "--source", str(source), "--target", target]
    done = subprocess.run(
        [*command, "--reps", str(reps)], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"{backend} at {n:,} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e4,1e5,1e6", help="comma-separated, e.g. 1e4,1e5")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--reps", type=int, default=5, help="timed runs of each query")
    parser.add_argument("--out", help="also write the report to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    out = io.StringIO()
    with contextlib.redirect_stdout(Tee(sys.stdout, out)):
        report(sizes, backends, args.reps)
    if args.out:
        Path(args.out).write_text(out.getvalue())
    return 0


class Tee(io.TextIOBase):
    """Print to the terminal and keep a copy for --out."""

    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)


def report(sizes: list[int], backends: list[str], reps: int) -> None:
    import importlib
    import platform

    import rlm_kernel

    # examples/ and tests/ are put on the path above; they are not packages mypy can follow.
    make_issues = importlib.import_module("make_issues")
    start_server = importlib.import_module("_postgres").start_server

    print("== retrieval: build and search, embedded SQLite FTS5 and PostgreSQL side by side ==")
    print(
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"rlm_kernel {rlm_kernel.__version__}, {platform.platform()}"
    )
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} (other work inflates it)")
    print(f"{len(QUERIES)} queries, k=10, each warmed once then timed {reps}×\n")
    work = Path(tempfile.mkdtemp(prefix="rlm-retrieval-bench-"))
    server = None
    try:
        if "postgres" in backends:
            server = start_server(durable=True)
            if isinstance(server, str):
                print(f"PostgreSQL left out: {server}\n")
                backends = [b for b in backends if b != "postgres"]
                server = None
            else:
                version = subprocess.run(
                    [str(server.bindir / "postgres"), "--version"], capture_output=True, text=True
                ).stdout.strip()
                print(f"PostgreSQL: {version}, a fresh cluster with fsync on, default settings\n")
        rows: list[list[object]] = []
        results: dict[tuple[str, int], dict[str, Any]] = {}
        for n in sizes:
            source = work / f"issues-{n}.jsonl"
            began = time.perf_counter()
            with source.open("w", encoding="utf-8") as f:
                make_issues.write_jsonl(n, f)
            made = time.perf_counter() - began
            print(
                f"{n:,} issues generated in {made:.1f} s ({n / made:,.0f}/s), "
                f"{source.stat().st_size / 1e6:,.0f} MB of JSON Lines"
            )
            for backend in backends:
                if backend == "sqlite":
                    target = str(work / f"issues-{n}.sqlite")
                else:
                    assert server is not None
                    target = f"{server.dsn}?table=issues_{n}"
                r = run(backend, n, source, target, reps)
                results[(backend, n)] = r
                rows.append(
                    [
                        f"{backend} {n:,}",
                        f"{r['documents']:,}",
                        f"{r['seconds']:.1f}",
                        f"{r['documents'] / r['seconds']:,.0f}",
                        f"{r['median_ms']:.1f}",
                        f"{r['p95_ms']:.1f}",
                        f"{r['max_ms']:.0f}",
                        f"{r['peak_rss'] / 1e6:.0f}",
                        f"{r['size'] / 1e6:,.0f}",
                    ]
                )
                print(
                    f"  {backend}: {r['documents'] / r['seconds']:,.0f} docs/s, {r['median_ms']:.1f} ms median"
                )
                if backend == "sqlite":
                    Path(target).unlink()
            source.unlink()
        print()
        print_table(
            ["backend, docs", "indexed", "build s", "docs/s", "median ms", "p95 ms", "max ms",
             "peak RSS MB", "index MB"],
            rows,
        )  # fmt: skip
        print()
        verdicts(results, sizes, backends)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for k, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if k == 0:
            print("  ".join("-" * w for w in widths))


def verdicts(
    results: dict[tuple[str, int], dict[str, Any]], sizes: list[int], backends: list[str]
) -> None:
    largest, smallest = max(sizes), min(sizes)
    if "sqlite" in backends:
        r = results[("sqlite", largest)]
        judged = largest >= 1_000_000
        note = "" if judged else " (not judged: the largest size run is below 10^6)"
        verdict = ("PASS" if r["median_ms"] < 100 else "FAIL") if judged else "SKIP"
        print(
            f"{verdict}  embedded query latency at 10^6 below 100 ms median: "
            f"{r['median_ms']:.1f} ms at {largest:,}{note}"
        )
    for backend in backends:
        if largest == smallest:
            break
        lo, hi = results[(backend, smallest)]["peak_rss"], results[(backend, largest)]["peak_rss"]
        ok = hi <= 1.25 * lo
        print(
            f"{'PASS' if ok else 'FAIL'}  {backend} peak RSS while indexing flat: {lo / 1e6:.0f} MB at "
            f"{smallest:,}, {hi / 1e6:.0f} MB at {largest:,} ({hi / lo:.2f}×)"
        )


if __name__ == "__main__":
    sys.exit(main())
