"""CRM store figures on both engines: caller lookup latency with a large contact book,
and ingest throughput (finished calls per second through ``crm.ingest``).

    .venv/bin/python -m benchmarks.bench_crm [--contacts 1000000] [--engines sqlite,postgres]
        [--lookups 5000] [--calls 2000] [--pg-url postgresql://postgres@127.0.0.1:5432/test]

The contacts are bulk-loaded (COPY on PostgreSQL, executemany in one transaction on
SQLite).  Lookup = ``Store.contact_ids_by_e164`` (the screen-pop / matching hot path) for
random numbers, nine in ten known.  Ingest = ``Ingest.handle(CallRecord)`` sequentially,
half the calls from known numbers, a quarter from new numbers (leads), a quarter missed
(callback tasks).  Each engine gets a throwaway database (a temp file / a schema that is
dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from ami_bridge.facts import CallRecord
from crm.ingest import Ingest
from crm.models import Contact, PhoneNumber
from crm.policy import LeadPolicy
from crm.store import Store, open_store

T0 = 1_795_341_294.0
BATCH = 50_000


def number(n: int) -> str:
    """Distinct valid-looking NANP numbers: +1 (2xx) 5xx-xxxx."""
    area, rest = divmod(n, 10_000_000)
    return f"+1{212 + area % 700}{5_000_000 + rest % 5_000_000:07d}"[:12]


def contacts(first: int, count: int) -> list[Contact]:
    return [
        Contact(
            id=None,
            name=f"Contact {n}",
            company=f"Company {n % 5000}",
            email=f"c{n}@example.com",
            phones=[PhoneNumber(number(n), number(n))],
            created_at=T0,
            updated_at=T0,
            last_contact_at=T0 - (n % 10_000),
        )
        for n in range(first, first + count)
    ]


async def load(store: Store, total: int) -> float:
    t0 = time.perf_counter()
    for first in range(0, total, BATCH):
        await store.bulk_load_contacts(contacts(first, min(BATCH, total - first)))
    return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def lookups(store: Store, total: int, n: int, rng: random.Random) -> list[float]:
    out: list[float] = []
    for i in range(n):
        known = i % 10 != 0
        e164 = number(rng.randrange(total)) if known else f"+1999{rng.randrange(10**7):07d}"
        t0 = time.perf_counter()
        ids = await store.contact_ids_by_e164(e164)
        out.append(time.perf_counter() - t0)
        assert bool(ids) == known or total == 0, e164
    return out


def call(i: int, caller: str, answered: bool) -> CallRecord:
    at = T0 + 3600 + i * 7.0
    return CallRecord(
        linkedid=f"bench.{i}", direction="inbound", caller=caller, caller_raw=caller,
        caller_name=None, callee="5551000", callee_e164=None, did="5551000",
        rang=("101", "102"), answered=answered, answered_by="101" if answered else None,
        final_agent="101" if answered else None, transfers=(),
        outcome="answered" if answered else "missed",
        hangup_by="caller" if answered else "pbx", started_at=at,
        answered_at=at + 4 if answered else None, ended_at=at + 30,
        ring_seconds=4.0, talk_seconds=26.0 if answered else 0.0,
        recordings=(f"in_{i}.wav",) if answered else (), originate_id=None,
    )  # fmt: skip


async def ingest_rate(store: Store, total: int, n: int, rng: random.Random) -> float:
    ing = Ingest(store, LeadPolicy(own_numbers=("5551000",)), clock=lambda: T0)
    records = []
    for i in range(n):
        kind = i % 4
        known = kind in (0, 1) and total
        caller = number(rng.randrange(total)) if known else f"+1888{i:07d}"
        records.append(call(i, caller, answered=kind != 3))
    t0 = time.perf_counter()
    for rec in records:
        await ing.handle(rec)
    return n / (time.perf_counter() - t0)


async def run_engine(engine: str, args: argparse.Namespace) -> None:
    tmp: str | None = None
    schema: str | None = None
    if engine == "sqlite":
        tmp = tempfile.mkdtemp(prefix="bench-crm-")
        url = f"sqlite:///{Path(tmp) / 'crm.db'}"
    else:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        url = f"{args.pg_url}?schema={schema}"
    store = await open_store(url)
    rng = random.Random(7)
    try:
        secs = await load(store, args.contacts)
        if engine == "postgres":
            conn = await asyncpg.connect(args.pg_url, server_settings={"search_path": schema})
            await conn.execute("ANALYZE")
            await conn.close()
        print(f"[{engine}] loaded {args.contacts:,} contacts in {secs:.1f} s "
              f"({args.contacts / max(secs, 1e-9):,.0f}/s)")  # fmt: skip
        await lookups(store, args.contacts, 200, rng)  # warm the cache
        lat = await lookups(store, args.contacts, args.lookups, rng)
        print(
            f"[{engine}] caller lookup over {args.lookups} numbers: "
            f"p50 {statistics.median(lat) * 1e3:.3f} ms, p99 {pct(lat, 0.99) * 1e3:.3f} ms, "
            f"max {max(lat) * 1e3:.3f} ms"
        )
        rate = await ingest_rate(store, args.contacts, args.calls, rng)
        print(f"[{engine}] ingest: {rate:,.0f} calls/s over {args.calls} calls")
    finally:
        await store.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        if schema:
            conn = await asyncpg.connect(args.pg_url)
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()


async def main_async(args: argparse.Namespace) -> None:
    for engine in args.engines.split(","):
        await run_engine(engine.strip(), args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contacts", type=int, default=1_000_000)
    ap.add_argument("--engines", default="sqlite,postgres")
    ap.add_argument("--lookups", type=int, default=5000)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
