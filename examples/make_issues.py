"""Generate issue-tracker records: a collection far too large to read, for search, then reading,
then counting: the corpus of ``benchmarks/retrieval.py`` and the PostgreSQL index tests, made
to be searched by an RLM in a corpus question-answering example.

Each record is a GitHub-like issue: ``{"id": "kestrel-db#1234", "title", "body", "repo", "labels",
"state", "created"}`` (``created`` an ISO date). Bodies are a few sentences of a bug report, drawn
from a vocabulary with a long tail (as in real trackers, a few words are in most issues and most
words in few), with versions, error codes and function names.

Planted in every collection of at least ``MIN_RECORDS`` (``planted(n, seed)`` says what, exactly):

- one repository (``PLANTED["repo"]``) holds the most *open* issues about a memory leak in the
  exporter, and every one of them mentions the same version (``PLANTED["version"]``);
- a decoy repository (``PLANTED["decoy"]``) holds *more* such issues in all, but nearly all closed,
  naming another version: counting without reading the state gives the wrong answer;
- a few other repositories have one now and then (the background).

The question "which repository has the most open issues about a memory leak in the exporter, and
what version do they mention?" therefore needs a search (the words vary: "leaks memory", "RSS
keeps growing", "OOM"), reading the hits (state and version are in the record, not the title) and
a count. ``truth(records)`` computes the answer from records, which the tests hold equal to
``planted``.

Everything comes from ``random.Random(seed)`` (``random()``, ``choices`` with cumulative weights
and ``randrange``, all built on ``random()``), so a seed and a size give the same bytes on every
run; records are generated one at a time (memory does not grow with ``n``) at over 100,000 a
second on one core.

    python examples/make_issues.py 100000 issues.jsonl      # write 10^5 records
    python examples/make_issues.py 1e6 - --seed 7 | head    # to standard output
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from itertools import accumulate
from pathlib import Path
from typing import IO, Any

SEED = 1717
MIN_RECORDS = 2_000
START = date(2019, 1, 1)
DAYS = 2_500

REPOS = [
    f"{a}-{b}"
    for a in ("kestrel", "lumen", "orbit", "quartz", "sable", "tundra", "vesper", "zephyr")
    for b in ("db", "exporter", "gateway", "agent", "ui")
]
PLANTED = {
    "repo": "orbit-agent",
    "version": "v2.14.3",
    "decoy": "quartz-gateway",
    "decoy_version": "v1.9.0",
}
# Every PLANT_EVERY-th record is a planted open leak in PLANTED["repo"]; every DECOY_EVERY-th (offset
# so they never coincide) one in the decoy, closed but for every DECOY_OPEN-th of those.
PLANT_EVERY, DECOY_EVERY, DECOY_OPEN = 97, 53, 8
_VERSION = re.compile(r"\bv\d+\.\d+\.\d+\b")
BACKGROUND = 0.002  # chance that an ordinary record is a leak report of some repository

COMPONENTS = [
    "exporter",
    "scheduler",
    "parser",
    "cache",
    "auth",
    "cli",
    "storage",
    "metrics",
    "api",
    "sync",
]
PROBLEMS = [
    "crashes on start",
    "hangs when the network drops",
    "returns stale data",
    "times out under load",
    "logs the wrong level",
    "ignores the config file",
    "fails with a unicode path",
    "is slow on large inputs",
    "drops the last batch",
    "raises KeyError on empty input",
]
LEAK_TITLES = [
    "Memory leak in the exporter",
    "Exporter leaks memory after reconnect",
    "exporter: RSS keeps growing until OOM",
    "Memory usage of the exporter grows without bound",
    "OOM kill: exporter leaking buffers",
]
LEAK_BODIES = [
    "Since upgrading to {v} the exporter's memory grows by about {n} MB an hour until the pod is "
    "OOM-killed.",
    "On {v} the exporter keeps every batch it sent: heap profiles show {n} thousand retained buffers.",
    "After {v}, RSS of the exporter climbs steadily; restarting it frees the memory. Leak suspected "
    "in the retry queue.",
]
LABELS = ["bug", "enhancement", "question", "docs", "performance", "regression", "good first issue"]
FUNCTIONS = [
    "flush_batch",
    "parse_header",
    "open_stream",
    "retry_later",
    "load_config",
    "merge_rows",
]


def _vocabulary(rng: random.Random, size: int = 20_000) -> tuple[list[str], list[float]]:
    """Pronounceable made-up words with Zipf weights (word k about as common as 1/k)."""
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        syllables = 1 + int(rng.random() * 3)
        word = "".join(
            consonants[int(rng.random() * 16)] + vowels[int(rng.random() * 5)]
            for _ in range(syllables)
        )
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words, list(accumulate(1.0 / (k + 1) for k in range(size)))


def _version(rng: random.Random) -> str:
    return f"v{int(rng.random() * 4)}.{int(rng.random() * 20)}.{int(rng.random() * 10)}"


def issues(n: int, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """``n`` issue records, one at a time, the same for the same ``n`` and ``seed``."""
    rng = random.Random(seed)
    words, cum = _vocabulary(rng)
    # Bodies are made of three-word phrases drawn from a pool: one draw a phrase instead of one
    # weighted draw a word (choices with cum_weights took 60 % of the time); the words' long tail stays.
    pool = [" ".join(rng.choices(words, cum_weights=cum, k=3)) for _ in range(1 << 16)]
    days = [(START + timedelta(days=d)).isoformat() for d in range(DAYS)]
    numbers = Counter[str]()
    rand = rng.random
    for i in range(n):
        kind = _kind(i, n, rand())
        if kind == "planted":
            repo, state, version = PLANTED["repo"], "open", PLANTED["version"]
        elif kind == "decoy":
            repo, version = PLANTED["decoy"], PLANTED["decoy_version"]
            state = "open" if (i // DECOY_EVERY) % DECOY_OPEN == 0 else "closed"
        else:
            repo = REPOS[int(rand() * len(REPOS))]
            state = "open" if rand() < 0.35 else "closed"
            version = _version(rng)
        numbers[repo] += 1
        filler = " ".join([pool[int(rand() * 65536)] for _ in range(4 + int(rand() * 10))])
        if kind == "ordinary":
            component = COMPONENTS[int(rand() * len(COMPONENTS))]
            title = f"{component} {PROBLEMS[int(rand() * len(PROBLEMS))]}"
            body = (
                f"Seen on {version}: {title} when calling {FUNCTIONS[int(rand() * 6)]}(). {filler}. "
                f"Error E{int(rand() * 9000) + 1000}."
            )
            labels = [LABELS[int(rand() * len(LABELS))]]
        else:
            title = LEAK_TITLES[int(rand() * len(LEAK_TITLES))]
            template = LEAK_BODIES[int(rand() * len(LEAK_BODIES))]
            body = template.format(v=version, n=int(rand() * 90) + 10) + f" {filler}."
            labels = ["bug", "memory", "exporter"]
        yield {
            "id": f"{repo}#{numbers[repo]}",
            "title": title,
            "body": body,
            "repo": repo,
            "labels": labels,
            "state": state,
            "created": days[i * DAYS // max(n, 1)],
        }


def _kind(i: int, n: int, draw: float) -> str:
    if n >= MIN_RECORDS and i % PLANT_EVERY == 7:
        return "planted"
    if n >= MIN_RECORDS and i % DECOY_EVERY == 11:
        return "decoy"
    return "background" if draw < BACKGROUND else "ordinary"


def is_leak(record: dict[str, Any]) -> bool:
    """Whether a record is about a memory leak in the exporter (by its labels, as generated)."""
    return "memory" in record["labels"] and "exporter" in record["labels"]


def truth(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The planted question's answer computed from the records: the repository with the most open
    exporter-leak issues, the version they mention most, and the counts."""
    open_by_repo: Counter[str] = Counter()
    all_by_repo: Counter[str] = Counter()
    versions: dict[str, Counter[str]] = {}
    for r in records:
        if is_leak(r):
            all_by_repo[r["repo"]] += 1
            if r["state"] == "open":
                open_by_repo[r["repo"]] += 1
                found = _VERSION.search(r["body"])
                versions.setdefault(r["repo"], Counter()).update([found.group()] if found else [])
    if not open_by_repo:
        return {"repo": None, "version": None, "open": 0, "most_in_all": None}
    repo, count = open_by_repo.most_common(1)[0]
    return {
        "repo": repo,
        "version": versions[repo].most_common(1)[0][0],
        "open": count,
        "most_in_all": all_by_repo.most_common(1)[0][0],
    }


def planted(n: int) -> dict[str, Any]:
    """What ``issues(n)`` plants (any seed): the answer's repository and version, how many open
    issues hold it, and the decoy that has the most such issues in all."""
    if n < MIN_RECORDS:
        raise ValueError(f"nothing is planted below {MIN_RECORDS} records")
    return {
        "repo": PLANTED["repo"],
        "version": PLANTED["version"],
        "open_at_least": sum(1 for i in range(n) if i % PLANT_EVERY == 7),
        "most_in_all": PLANTED["decoy"],
    }


def write_jsonl(n: int, out: IO[str], seed: int = SEED) -> int:
    """Write ``issues(n, seed)`` to ``out`` as JSON Lines; returns how many."""
    dumps, write = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode, out.write
    count = 0
    for record in issues(n, seed):
        write(dumps(record) + "\n")
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    """``make_issues.py N PATH|- [--seed S]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=lambda s: int(float(s)), help="how many records (1e6 is fine)")
    parser.add_argument("path", help="the JSONL file to write, or - for standard output")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if args.path == "-":
        try:
            write_jsonl(args.n, sys.stdout, args.seed)
        except BrokenPipeError:  # `| head` stopped reading: the records it wanted are out
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    else:
        with Path(args.path).open("w", encoding="utf-8") as f:
            write_jsonl(args.n, f, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
