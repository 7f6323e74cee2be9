"""The queue report and the board's today's figures at a call centre's volume.

    .venv/bin/python -m benchmarks.bench_queues [--calls 100000] [--engine sqlite|postgres|both]

A month of synthetic history on a fresh store: ``--calls`` queue calls over 10 queues and
50 reps (80 % answered, waits 0-3 min, talk 0-10 min, each call ringing 1-3 reps) plus as
many calls outside the queues, and 6 agent events per rep and day (registration, a
pause, its end, a second pause in two queues at once).  Prints the time of
``CrmService.queue_report`` for the whole month (admin: everything; a manager of 10 reps)
and for today (the board), median of 5 runs after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from typing import Any

from crm.access import Scope
from crm.models import User
from crm.policy import LeadPolicy
from crm.services import CrmService
from crm.store import Store, open_store

DAY = 86_400.0
QUEUES = [f"queue-{i}" for i in range(10)]
REPS = 50
CALL_COLS = ("linkedid, direction, caller, rang, answered, answered_by, final_agent, outcome, "
             "hangup_by, started_at, answered_at, ended_at, ring_seconds, talk_seconds, queue, "
             "user_id, match_reason, ingested_at, updated_at")  # fmt: skip


async def load(store: Store, calls: int, now: float) -> list[int]:
    """The month's history; returns the reps' user ids."""
    ids = []
    for i in range(REPS):
        u = await store.add_user(User(None, f"rep{i}", f"Rep {i:02d}", "rep", [f"{200 + i}"]), 0)
        assert u.id is not None
        ids.append(u.id)
    rng = random.Random(16)
    start = now - 30 * DAY
    rows: list[tuple[Any, ...]] = []
    rang_rows: list[tuple[Any, ...]] = []
    for n in range(2 * calls):
        at = start + rng.random() * 30 * DAY
        queued = n % 2 == 0
        reps = rng.sample(range(REPS), rng.randint(1, 3))
        exts = [f"{200 + r}" for r in reps]
        answered = rng.random() < 0.8
        wait = rng.random() * 180
        talk = rng.random() * 600 if answered else 0.0
        who = exts[-1] if answered else None
        rows.append((
            f"bench.{n}", "inbound", f"+1415{n:07d}", json.dumps(exts), answered, who, who,
            "answered" if answered else "abandoned", "caller", at,
            at + wait if answered else None, at + wait + talk, wait, talk,
            QUEUES[n % len(QUEUES)] if queued else None,
            ids[reps[-1]] if answered else None, "none", at, at,
        ))  # fmt: skip
        rang_rows += [(n + 1, e, at, not answered) for e in exts]
    ph = ", ".join(f"${i}" for i in range(1, 20))
    events: list[tuple[Any, ...]] = []
    for day in range(31):
        base = start - start % DAY + day * DAY
        for r in range(REPS):
            ext = f"{200 + r}"
            events += [
                (base + 8 * 3600, "registered", None, ext, None),
                (base + 12 * 3600, "paused", QUEUES[r % 10], ext, "lunch"),
                (base + 13 * 3600, "unpaused", QUEUES[r % 10], ext, None),
                (base + 15 * 3600, "paused", QUEUES[r % 10], ext, "coaching"),
                (base + 15.2 * 3600, "paused", QUEUES[(r + 1) % 10], ext, "coaching"),
                (base + 15.5 * 3600, "unpaused", QUEUES[r % 10], ext, None),
                (base + 15.6 * 3600, "unpaused", QUEUES[(r + 1) % 10], ext, None),
                (base + 18 * 3600, "unregistered", None, ext, None),
            ]
    async with store._use() as c:  # type: ignore[attr-defined]
        for i in range(0, len(rows), 5000):
            await c.executemany(
                f"INSERT INTO calls ({CALL_COLS}) VALUES ({ph})", rows[i : i + 5000]
            )
        for i in range(0, len(rang_rows), 5000):
            await c.executemany(
                "INSERT INTO call_rang (call_id, extension, started_at, missed) "
                "VALUES ($1, $2, $3, $4)",
                rang_rows[i : i + 5000],
            )
        await c.executemany(
            "INSERT INTO agent_events (ts, kind, queue, extension, reason) "
            "VALUES ($1, $2, $3, $4, $5)",
            [e for e in events if e[0] < now],
        )
        await c.execute("ANALYZE")
    return ids


async def timed(fn: Any, runs: int = 5) -> float:
    await fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


async def bench(url: str, calls: int) -> None:
    now = time.time()
    store = await open_store(url)
    try:
        t = time.perf_counter()
        ids = await load(store, calls, now)
        loaded = time.perf_counter() - t
        service = CrmService(store, LeadPolicy(), lambda: now)
        team = Scope(frozenset(ids[:10]))
        month = (now - 30 * DAY, now)
        today = (now - now % DAY, now)
        print(f"  {store.dialect}: {2 * calls} calls ({calls} in queues) loaded in {loaded:.1f} s")
        for label, (since, until), scope in (
            ("month, admin", month, None),
            ("month, manager of 10 reps", month, team),
            ("today (board), admin", today, None),
        ):
            ms = await timed(lambda s=since, u=until, sc=scope: service.queue_report(s, u, sc))
            print(f"    queue report, {label}: {ms:.0f} ms")
    finally:
        await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="both")
    args = ap.parse_args()
    print(f"queue report benchmark: {args.calls} queue calls, {len(QUEUES)} queues, {REPS} reps")
    if args.engine in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(bench(f"sqlite:///{tmp}/bench.db", args.calls))
    if args.engine in ("postgres", "both"):
        from tests.crm.pg import session_database

        with session_database() as base:
            asyncio.run(bench(f"{base}?schema=bench_{uuid.uuid4().hex[:8]}", args.calls))


if __name__ == "__main__":
    main()
