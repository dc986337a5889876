"""Generate ``ops-log.txt``: a year of operations logs, the context of the quickstart and the demo.

A year (2025-11-01 to 2026-10-31) of a small platform team's log: deployments, scaling, backups,
drills, change records, on-call handovers, and an ordinary incident every week or two. One of those
incidents, #4417 on 2026-06-17, was a customer-facing outage of checkout-web; its lines are the only
ones that mention ``#4417`` (or the word "outage"), so plain search finds them, and reading them
tells the root cause and the fix (``GROUND_TRUTH`` below).

The file is reproducible: everything comes from ``random.Random(SEED).random()`` — the one output
the standard library promises to keep across Python versions — so every run writes the same bytes.

    python examples/make_ops_log.py            # write examples/ops-log.txt, print its sha256
    python examples/make_ops_log.py --check    # exit 1 unless the file on disk is what it writes
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

SEED = 20260617
START = date(2025, 11, 1)
DAYS = 365
TARGET_DAY = date(2026, 6, 17)
TARGET_ID = 4417
OUT = Path(__file__).resolve().parent / "ops-log.txt"

GROUND_TRUTH = {
    "incident": f"#{TARGET_ID}",
    "service": "checkout-web",
    "root_cause": "change CHG-2291 (deployed 13:55) set checkout-web's ledger-db connection pool "
    "max_pool_size to 50 instead of 500, so checkout-web ran out of database connections at the "
    "afternoon peak and returned HTTP 502s",
    "fix": "CHG-2291 was rolled back, restoring the pool size to 500, and the checkout-web pods were "
    "restarted; follow-up: a config check that rejects pool sizes below 200",
}

# The outage, minute by minute (every line names the incident).
TARGET_LINES = [
    (
        "14:02",
        "incident #4417 opened: checkout-web returning HTTP 502 for 38% of requests; "
        "customer-facing outage declared, on-call Priya paged.",
    ),
    (
        "14:06",
        "incident #4417: checkout-web logs show 'connection pool exhausted (50/50)' on every call "
        "to ledger-db; ledger-db itself healthy at 22% CPU.",
    ),
    ("14:11", "incident #4417: status page updated; customers cannot complete orders."),
    (
        "14:15",
        "incident #4417: change CHG-2291, deployed at 13:55, touched checkout-web's ledger-db "
        "client settings.",
    ),
    (
        "14:19",
        "incident #4417 root cause: CHG-2291 set max_pool_size=50 instead of 500 (a typo), so "
        "checkout-web ran out of database connections under the afternoon peak.",
    ),
    (
        "14:24",
        "incident #4417 fix: CHG-2291 rolled back, max_pool_size restored to 500; checkout-web "
        "pods restarted.",
    ),
    ("14:31", "incident #4417: 502 rate back to 0.1%; orders completing normally."),
    (
        "14:58",
        "incident #4417 resolved after 56 minutes of outage; follow-up: a config check that "
        "rejects pool sizes below 200.",
    ),
]

SERVICES = [
    "auth-gateway",
    "billing-api",
    "cdn-edge",
    "checkout-web",
    "image-resizer",
    "inventory-sync",
    "ledger-db",
    "notification-worker",
    "payments-api",
    "report-builder",
    "search-indexer",
    "session-cache",
]
PEOPLE = ["Amara", "Bilal", "Chen", "Dmitri", "Fatima", "Jonas", "Keiko", "Lucía", "Priya", "Tomás"]
REGIONS = ["eu-west", "eu-central", "us-east", "us-west", "ap-south"]
JOBS = ["invoice-rollup", "search-reindex", "stale-session-purge", "report-export", "sitemap-build"]
POOLS = ["general", "batch", "memory-optimised"]
VENDORS = ["the DNS provider", "the payment processor", "the SMS gateway", "the object store"]
NOTES = [
    "minor dependency bumps",
    "a logging format change",
    "two bug fixes",
    "a translation update",
    "a faster JSON encoder",
    "retry jitter for outbound calls",
]
CHANGES = [
    "raise the request timeout of {s} from 5 s to 8 s",
    "enable HTTP/2 between cdn-edge and {s}",
    "move {s} to the new base image",
    "add a read replica for {s}",
    "lower the log level of {s} to info",
    "shorten the health check interval of {s} to 10 s",
]
TICKETS = [
    "stale DNS record removed",
    "dashboard panel fixed",
    "runbook for {s} updated",
    "alert description clarified",
    "unused IAM role deleted",
    "old snapshots of {s} pruned",
]
SYMPTOMS = [
    (
        "p99 latency of {s} above 900 ms",
        "a slow query after an index was dropped",
        "index recreated",
    ),
    ("error rate of {s} at 4%", "a bad build", "previous build redeployed"),
    ("queue backlog on {s} growing", "a stuck consumer", "consumer restarted"),
    (
        "{s} pods restarting",
        "memory limit too low after a traffic increase",
        "limit raised to 2 GiB",
    ),
    (
        "elevated 429s from {s}",
        "a rate limit copied from staging",
        "limit reset to the production value",
    ),
    (
        "{s} certificate warnings in synthetic checks",
        "an intermediate certificate missing",
        "chain redeployed",
    ),
    ("disk on {s} nodes at 93%", "debug logging left on", "log level reset and logs compacted"),
]

T = TypeVar("T")


class Rand:
    """Choices made from ``random.Random.random()`` alone, which is stable across Python versions."""

    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)

    def below(self, n: int) -> int:
        return min(int(self._r.random() * n), n - 1)

    def between(self, lo: int, hi: int) -> int:
        return lo + self.below(hi - lo + 1)

    def pick(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def chance(self, p: float) -> bool:
        return self._r.random() < p


def routine(r: Rand, day: date) -> str:
    s = r.pick(SERVICES)
    p, q = r.pick(PEOPLE), r.pick(PEOPLE)
    kind = r.below(24)
    if kind == 0:
        return f"Deployed {s} build {r.between(100, 999)}.{r.between(0, 30)}; release notes list {r.pick(NOTES)}."
    if kind == 1:
        return f"{p} upgraded the base image of {s}; canary healthy for {r.pick([15, 20, 30, 45])} minutes, then promoted."
    if kind == 2:
        return f"Dashboards for {s} showed p99 latency at {r.between(40, 320)} ms, within the objective."
    if kind == 3:
        return f"Error budget for {s} is at {r.between(35, 97)}% remaining for the quarter."
    if kind == 4:
        return f"Rotated TLS certificates on {s}; no customer impact."
    if kind == 5:
        return f"Disk usage on {s} nodes reached {r.between(35, 78)}%; old logs were compacted."
    if kind == 6:
        return f"Quarterly failover drill for {s} completed in {r.between(5, 25)} minutes."
    if kind == 7:
        a = r.between(3, 8)
        return f"Scaled {s} from {a} to {a + r.between(2, 6)} replicas ahead of the weekly traffic peak."
    if kind == 8:
        return f"{p} reviewed alert routing for {s}; {r.between(1, 4)} stale pager rules removed."
    if kind == 9:
        return f"A flaky health check on {s} paged the on-call twice; threshold raised from 2 to 3 failures."
    if kind == 10:
        return f"Replication lag of the ledger-db read replica peaked at {r.between(1, 40) / 10} s, within the objective."
    if kind == 11:
        return f"Cron job {r.pick(JOBS)} finished in {r.between(20, 900)} s; {r.between(1000, 90000):,} records processed."
    if kind == 12:
        change = r.pick(CHANGES).format(s=s)
        return f"Change CHG-{r.between(1000, 2999)} approved by {p}: {change}."
    if kind == 13:
        change = r.pick(CHANGES).format(s=s)
        return f"Applied change CHG-{r.between(1000, 2999)} ({change}); no errors after {r.pick([10, 15, 30])} minutes."
    if kind == 14:
        return f"{p} paired with {q} on the {s} runbook; {r.between(1, 5)} steps rewritten."
    if kind == 15:
        return f"Security scan of {s} images: {r.between(0, 9)} low-severity findings, none actionable."
    if kind == 16:
        return f"Cache hit ratio on session-cache at {r.between(86, 99)}.{r.below(10)}%."
    if kind == 17:
        return f"Queue depth on notification-worker peaked at {r.between(200, 9000):,} messages, drained in {r.between(2, 40)} minutes."
    if kind == 18:
        return f"Autoscaler added {r.between(2, 9)} nodes to the {r.pick(POOLS)} pool during the evening peak; removed them by {r.between(21, 23)}:00."
    if kind == 19:
        ticket = r.pick(TICKETS).format(s=s)
        return f"{p} closed ticket OPS-{r.between(1000, 9999)}: {ticket}."
    if kind == 20:
        return f"Synthetic checks from {r.pick(REGIONS)} all green; median time to first byte {r.between(60, 240)} ms."
    if kind == 21:
        return f"Capacity review: {s} CPU averaged {r.between(12, 71)}% last week, memory {r.between(30, 80)}%."
    if kind == 22:
        later = day + timedelta(days=r.between(3, 20))
        return f"Vendor maintenance window announced for {r.pick(VENDORS)} on {later.isoformat()}; no action needed."
    return f"Load test on {s} staging reached {r.between(800, 9000):,} req/s before p99 exceeded {r.between(250, 600)} ms."


def incident(r: Rand, number: int) -> list[str]:
    s = r.pick(SERVICES)
    symptom, cause, fix = (part.format(s=s) for part in r.pick(SYMPTOMS))
    who = r.pick(PEOPLE)
    lines = [f"incident #{number} opened: {symptom}; on-call {who} paged."]
    if r.chance(0.6):
        lines.append(f"incident #{number}: {who} is looking at recent changes to {s}.")
    lines.append(
        f"incident #{number} resolved after {r.between(9, 48)} minutes: {cause}; {fix}. "
        "No customer impact."
    )
    return lines


def clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def day_entries(r: Rand, day: date, incident_number: int | None) -> list[tuple[str, str]]:
    minutes = sorted({r.between(0, 24 * 60 - 1) for _ in range(r.between(31, 39))})
    entries = [
        (
            clock(r.between(130, 160)),
            f"Nightly backup of ledger-db finished in {r.between(18, 47)} minutes "
            f"({r.between(310, 480)} GB, checksum verified).",
        )
    ]
    if day.weekday() == 0:
        p, q = r.pick(PEOPLE), r.pick(PEOPLE)
        while q == p:
            q = r.pick(PEOPLE)
        entries.append(
            ("09:00", f"On-call handover: {p} to {q}; {r.between(0, 6)} open tickets, none urgent.")
        )
    for m in minutes:
        line = routine(r, day)
        while str(TARGET_ID) in line or "CHG-2291" in line:  # only the outage names these
            line = routine(r, day)
        entries.append((clock(m), line))
    if incident_number is not None:
        start = r.between(60, 20 * 60)
        for k, line in enumerate(incident(r, incident_number)):
            entries.append((clock(start + 7 * k + r.between(0, 5)), line))
    if day == TARGET_DAY:
        # The afternoon of the outage is for the outage: drop routine lines between 13:30 and 15:30.
        entries = [e for e in entries if not "13:30" <= e[0] <= "15:30"]
        entries.append(
            ("13:55", "Applied change CHG-2291 to checkout-web; no errors reported by the deploy.")
        )
        entries += TARGET_LINES
    return sorted(entries)


def generate() -> str:
    r = Rand(SEED)
    days = [START + timedelta(days=n) for n in range(DAYS)]
    incident_days = {d for d in days if d != TARGET_DAY and r.chance(0.11)}
    before = sum(1 for d in incident_days if d < TARGET_DAY)
    number = TARGET_ID - before
    out = []
    for day in days:
        n = None
        if day in incident_days or day == TARGET_DAY:
            n = number if day != TARGET_DAY else None
            number += 1
        out.append(f"Operations log, {day.isoformat()} ({day.strftime('%A')})\n\n")
        out.extend(f"{t}  {line}\n" for t, line in day_entries(r, day, n))
        out.append("\n")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default: {OUT})")
    parser.add_argument(
        "--check", action="store_true", help="compare with --out instead of writing"
    )
    args = parser.parse_args(argv)
    text = generate()
    data = text.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    if args.check:
        same = args.out.is_file() and args.out.read_bytes() == data
        print(
            f"{args.out}: {'up to date' if same else 'differs from the generator'} (sha256 {digest})"
        )
        return 0 if same else 1
    args.out.write_bytes(data)
    print(f"wrote {args.out}: {len(text):,} characters, {len(data):,} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
