"""Loading a directory context: peak RSS against the text loaded, for a ~500 MB project tree.

The parent writes a tree under a temporary directory: ``--mb`` MB of text in 250 KB source files
(nested packages), and what the rules skip unread: a virtual environment under a name no list holds
(found by its ``pyvenv.cfg``), ``build/`` output, gitignored ``*.dat`` data and binary files. For each
case a child process (a fresh one, so ``ru_maxrss`` is its own) notes its peak RSS after its imports,
loads the tree with ``rlm_kernel.load_context`` and describes it (``describe_context``, as a session
does), and reports its peak RSS again. "Added" is the difference: what loading cost in memory. The
text is ASCII, so a character is a byte and the loaded text is its own size in memory.

Cases: ``tree`` (the project), ``one file`` (a directory holding one ``--big-mb`` MB file: a file costs
its bytes while it is decoded, on top of its text: CPython cannot build a str in place, and decoding
in chunks would hold the chunks and the joined text at once) and, for that file, the reading
rlm_kernel did before ``_files.read_text`` (the first 8 KiB, ``head + f.read()``, decode), for
comparison. Measured on 2 cores (2026-12): the 500 MB tree added 501.5 MB (1.00 × its text, 1.7 s);
the 200 MB file 400 MB (2.00 ×), as before.

Usage: python benchmarks/loading.py [--mb 500] [--big-mb 200]
"""

from __future__ import annotations

import argparse
import atexit
import codecs
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import MB, Verdicts, banner, print_table

import rlm_kernel

FILE_BYTES = 250_000
# Loading may add the text itself, plus one file's bytes while it is decoded and the bookkeeping
# (paths, the dict): at most 1.1 × the text + 64 MB, i.e. no second copy of the tree.
ADDED_FACTOR, ADDED_SLACK = 1.1, 64 * MB


def peak_rss() -> int:
    """Peak resident set size of this process image in bytes (Linux: VmHWM). Not ru_maxrss: Linux
    keeps that across fork and exec, so a child would report its parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def text_of(n: int, seed: int) -> str:
    line = f"def function_{seed}(x):  # {'abcdefghij' * 5}\n    return x + {seed}\n"
    return (line * (n // len(line) + 1))[:n]


def write_text(path: Path, n: int, seed: int) -> None:
    """``n`` bytes of text written 1 MB at a time: the parent stays small."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = text_of(MB, seed)
    with path.open("w") as f:
        for _ in range(n // MB):
            f.write(chunk)
        f.write(chunk[: n % MB])


def write_tree(root: Path, text_mb: int) -> dict[str, int]:
    """The project; returns what it holds by kind, in bytes."""
    sizes = {"text": 0, "skipped": 0}
    n_files = max(1, text_mb * MB // FILE_BYTES)
    for i in range(n_files):
        path = root / "src" / f"pkg{i // 100:03d}" / f"sub{i // 10 % 10}" / f"mod{i:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text_of(FILE_BYTES, i))
        sizes["text"] += FILE_BYTES
    (root / ".gitignore").write_text("*.dat\n")
    sizes["text"] += len("*.dat\n")
    skipped = {
        "tools/lib/python3.11/site-packages/big_dep.py": 60 * MB,  # a venv under any name
        "build/lib/copy.py": 40 * MB,
        "data/measurements.dat": 40 * MB,
    }
    (root / "tools").mkdir()
    (root / "tools" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for rel, size in skipped.items():
        write_text(root / rel, size, 0)
        sizes["skipped"] += size
    for i in range(20):
        (root / "assets" / f"image{i}.png").parent.mkdir(parents=True, exist_ok=True)
        (root / "assets" / f"image{i}.png").write_bytes(b"\x89PNG\0" + bytes(MB))
        sizes["skipped"] += MB + 5
    return sizes


def old_read(path: Path) -> str:
    """How rlm_kernel read a file before _files.read_text: a probe, the rest, joined, decoded."""
    with path.open("rb") as f:
        head = f.read(8192)
        data = head + f.read()
    return codecs.decode(data, "utf-8")


def child(case: str, path: str) -> dict[str, Any]:
    baseline = peak_rss()
    started = time.perf_counter()
    if case == "old read":
        [file] = Path(path).iterdir()
        text = old_read(file)
        loaded, docs_n, skipped = len(text), 1, 0
    else:
        docs = rlm_kernel.load_context(path, max_mb=None)
        assert isinstance(docs, rlm_kernel.Documents)
        rlm_kernel.describe_context(docs)
        loaded, docs_n, skipped = sum(map(len, docs.values())), len(docs), len(docs.skipped)
    return {
        "seconds": time.perf_counter() - started,
        "loaded": loaded,
        "docs": docs_n,
        "skipped": skipped,
        "baseline": baseline,
        "peak": peak_rss(),
    }


def run_child(case: str, path: Path) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", case, str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the child for {case!r} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--mb", type=int, default=500, help="MB of text in the tree")
    parser.add_argument("--big-mb", type=int, default=200, help="MB of the one big file")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    banner(
        "loading: peak RSS of loading a directory context against the text loaded",
        f"A {args.mb} MB project tree (plus what the rules skip) and a directory of one "
        f"{args.big_mb} MB file; one fresh process per case.",
    )
    work = Path(tempfile.mkdtemp(prefix="rlm-loading-"))
    atexit.register(shutil.rmtree, work, True)
    began = time.perf_counter()
    sizes = write_tree(work / "tree", args.mb)
    (work / "one").mkdir()
    write_text(work / "one" / "big.txt", args.big_mb * MB, 1)
    print(f"wrote the trees in {time.perf_counter() - began:.1f} s\n")

    cases = {"tree": work / "tree", "one file": work / "one", "old read": work / "one"}
    results = {case: run_child(case, path) for case, path in cases.items()}
    rows = []
    for case, r in results.items():
        added = r["peak"] - r["baseline"]
        rows.append(
            [
                case,
                f"{r['docs']:,}",
                f"{r['skipped']:,}",
                f"{r['loaded'] / MB:,.1f}",
                f"{r['baseline'] / MB:,.1f}",
                f"{r['peak'] / MB:,.1f}",
                f"{added / MB:,.1f}",
                f"{added / r['loaded']:.2f}",
                f"{r['seconds']:.2f}",
            ]
        )
    print_table(
        [
            "case",
            "documents",
            "skipped",
            "text loaded MB",
            "baseline RSS MB",
            "peak RSS MB",
            "added MB",
            "added / text",
            "seconds",
        ],
        rows,
    )
    print(
        f"The tree also held {sizes['skipped'] / MB:,.0f} MB the rules skip (a venv found by its\n"
        "pyvenv.cfg, build/, gitignored *.dat, binaries): never read, or read no further than 8 KiB.\n"
        "baseline: peak RSS after the imports; added: peak RSS after loading minus that. MB = 10^6.\n"
    )
    verdicts = Verdicts()
    tree = results["tree"]
    limit = ADDED_FACTOR * tree["loaded"] + ADDED_SLACK
    added = tree["peak"] - tree["baseline"]
    verdicts.check(
        "the tree loads without a second copy",
        added <= limit,
        f"added {added / MB:,.0f} MB for {tree['loaded'] / MB:,.0f} MB of text "
        f"(target ≤ {ADDED_FACTOR} × text + {ADDED_SLACK / MB:.0f} MB = {limit / MB:,.0f} MB)",
    )
    verdicts.check(
        "only the text loads",
        tree["loaded"] == sizes["text"],
        f"{tree['loaded']:,} characters loaded, {sizes['text']:,} bytes of text written",
    )
    one, old = results["one file"], results["old read"]
    one_added = one["peak"] - one["baseline"]
    verdicts.check(
        "one big file costs its text and, while it is decoded, its bytes",
        one_added <= 2 * one["loaded"] + ADDED_SLACK,
        f"added {one_added / MB:,.0f} MB for {one['loaded'] / MB:,.0f} MB "
        f"(the reading before: {(old['peak'] - old['baseline']) / MB:,.0f} MB; "
        f"target ≤ 2 × text + {ADDED_SLACK / MB:.0f} MB)",
    )
    verdicts.summary()


if __name__ == "__main__":
    main()
