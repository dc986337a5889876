"""Memory and record size against context size: |P| = 10 KB, 1 MB, 10 MB, 100 MB.

For each size the script re-invokes itself (``--size N``) so that peak RSS is measured in a fresh
process. The child imports everything, notes its baseline RSS, builds ``P`` (a str of N characters plus
a needle in the middle), and runs a 5-iteration session against the loopback ``ScriptedServer``: four
iterations of light work on ``P`` (its length, a count, a slice, a find) and a fifth that submits with
``FINAL``. It reports the largest root prompt the server received (characters), the size of the
autosaved JSONL trajectory, and ``ru_maxrss`` (peak RSS) at the end. The parent prints the table.

Usage: python benchmarks/memory.py [--sizes 10000 1000000 ...]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import MB, REFERENCE, Verdicts, banner, fence, make_config, print_table, serve

import rlm_kernel

SIZES = (10_000, 1_000_000, 10_000_000, 100_000_000)
NEEDLE = "NEEDLE-7f3a9c"
TOLERANCE = 0.01  # root prompt and trajectory within 1% of the 10 KB figures
MAX_TRAJECTORY = 1 * MB  # at |P| = 100 MB
RSS_FACTOR, RSS_SLACK = 1.5, 200 * MB  # peak RSS ≤ 1.5 × |P| + 200 MB

ROOT_SCRIPT = [
    fence("print(len(P))"),
    fence(f"print(P.count('abc'), P.count({NEEDLE!r}))"),
    fence("mid = len(P) // 2\nprint(P[mid:mid + 60])"),
    fence(f"where = P.find({NEEDLE!r})\nprint(where, P[where:where + 20])"),
    fence("FINAL(f'the needle is at {where}')"),
]


def rss_now() -> int:
    """Current resident set size in bytes (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_rss() -> int:
    """Peak resident set size in bytes so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build_context(size: int) -> str:
    """``size`` characters of filler with the needle in the middle, in one allocation.

    The pieces are references to one shared chunk of at most 1 MB, so building P costs |P| + 1 MB,
    not 2 × |P| (``s + needle`` would copy the whole string).
    """
    unit = "abcdefghij"
    chunk = unit * (min(size, MB) // len(unit))
    count, rest = divmod(size, len(chunk))
    pieces = [chunk] * count
    pieces.insert(count // 2, NEEDLE)
    pieces.append((unit * (rest // len(unit) + 1))[:rest])
    return "".join(pieces)


def child(size: int) -> dict[str, Any]:
    gc.collect()
    baseline = peak_rss()
    baseline_now = rss_now()
    P = build_context(size)
    built = peak_rss()
    with serve({"root": list(ROOT_SCRIPT)}) as server:
        config = make_config(server, max_iterations=10)
        session = rlm_kernel.Session("Where is the needle?", P, config=config)
        result = session.run()
        prompts = [r.prompt_chars for r in server.requests if r.model == "root"]
    if result.reason != "final" or result.path is None:
        raise RuntimeError(f"the run did not finish with FINAL: {result.reason}: {result.message}")
    return {
        "size": len(P),
        "answer": result.answer,
        "iterations": len(result.trajectory.iterations),
        "root_calls": len(prompts),
        "max_root_prompt": max(prompts),
        "trajectory_bytes": result.path.stat().st_size,
        "baseline_peak": baseline,
        "baseline_rss": baseline_now,
        "after_build_peak": built,
        "peak": peak_rss(),
    }


def run_child(size: int) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--size", str(size)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the child for |P| = {size:,} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def fmt_mb(n: float) -> str:
    return f"{n / MB:,.1f}"


def label(size: int) -> str:
    return f"{size / 1000:,.0f} KB" if size < MB else f"{size / MB:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    args = parser.parse_args()
    if args.size is not None:
        print(json.dumps(child(args.size)))
        return

    banner(
        "memory: root prompt, trajectory and peak RSS against |P|",
        "One fresh process per size; 5 iterations (len, count, slice, find, FINAL) per run.",
    )
    results = {size: run_child(size) for size in args.sizes}
    rows = []
    for size, r in results.items():
        limit = RSS_FACTOR * size + RSS_SLACK
        rows.append(
            [
                label(size),
                r["iterations"],
                f"{r['max_root_prompt']:,}",
                f"{r['trajectory_bytes']:,}",
                fmt_mb(r["baseline_rss"]),
                fmt_mb(r["after_build_peak"]),
                fmt_mb(r["peak"]),
                fmt_mb(r["peak"] - r["after_build_peak"]),
                fmt_mb(limit),
            ]
        )
    print_table(
        [
            "|P|",
            "iterations",
            "max root prompt chars",
            "trajectory bytes",
            "baseline RSS MB",
            "peak after P built MB",
            "peak RSS MB",
            "run added MB",
            "RSS limit MB",
        ],
        rows,
    )
    print(
        "baseline RSS: the child after its imports, before P was built. run added: peak RSS at the end\n"
        "minus peak RSS once P was built (what the session itself cost). MB = 10^6 bytes.\n"
    )
    print("For reference:", REFERENCE["memory"])
    print()

    verdicts = Verdicts()
    sizes = sorted(results)
    small = results[sizes[0]]
    for key, what in (
        ("max_root_prompt", "largest root prompt"),
        ("trajectory_bytes", "trajectory"),
    ):
        worst = max(abs(results[s][key] - small[key]) / small[key] for s in sizes)
        verdicts.check(
            f"{what} independent of |P|",
            worst <= TOLERANCE,
            f"{small[key]:,} at {label(sizes[0])}, at most {worst:.3%} away at larger sizes "
            f"(target ≤ {TOLERANCE:.0%})",
        )
    if 100 * MB in results:
        size = results[100 * MB]["trajectory_bytes"]
        verdicts.check(
            "trajectory at |P| = 100 MB",
            size < MAX_TRAJECTORY,
            f"{size:,} bytes (target < {MAX_TRAJECTORY:,})",
        )
    for size in sizes:
        peak, limit = results[size]["peak"], RSS_FACTOR * size + RSS_SLACK
        verdicts.check(
            f"peak RSS at |P| = {label(size)}",
            peak <= limit,
            f"{fmt_mb(peak)} MB (target ≤ 1.5 × |P| + 200 MB = {fmt_mb(limit)} MB)",
        )
    verdicts.summary()


if __name__ == "__main__":
    main()
