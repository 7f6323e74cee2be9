"""The takeover gap, closed by the PBX's CDR: two ``run.py serve`` processes on one
PostgreSQL, one PBX link.  The process consuming it is SIGKILLed and, before the other
takes the link over, the PBX carries three whole calls (a missed inbound call, an
outbound and an internal one) that no process sees.  The process that takes over reads
them from the PBX's Master.csv, from the watermark the dead one left: every call is
stored exactly once, the gap's calls marked as coming from the CDR.

Without the backfill those three calls are lost: nobody was listening, and the dead
process kept no trace of calls that had not begun.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import asyncpg

from ami_bridge.replay_pbx import ReplayPbx
from crm.store.postgres import split_url
from tests.waiting import until

from .cluster import EAST, Cluster, link_holder

_until = partial(until, step=0.02)  # this test polls finely


CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-22"


async def _fetch(pg_url: str, sql: str) -> list[asyncpg.Record]:
    dsn, schema = split_url(pg_url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or "public"})
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def test_calls_in_a_takeover_gap_come_from_the_cdr(pg_url: str, tmp_path: Path) -> None:
    master = tmp_path / "cdr-csv" / "Master.csv"
    master.parent.mkdir()
    pbx = ReplayPbx(None, speed=0, cdr_csv=master)
    await pbx.start()
    cluster = Cluster(tmp_path, pg_url, [(EAST, pbx.port)])
    with cluster.config.open("a") as f:  # the file ends with the link's [[pbx_links]] entry
        f.write(f'cdr_csv_path = "{master}"\n[cdr]\nalive_interval_seconds = 0.2\n')
    try:
        cluster.migrate()
        procs = [cluster.spawn() for _ in range(2)]
        for proc in procs:
            await cluster.wait_healthy(proc)
        await _until(lambda: pbx.clients == 1, 30, "the link up")

        async def watermark() -> bool:
            rows = await _fetch(pg_url, "SELECT alive_at, last_run_at FROM cdr_backfill")
            return bool(rows) and rows[0]["alive_at"] is not None and bool(rows[0]["last_run_at"])

        await _until(watermark, 30, "the first backfill and a watermark", step=0.1)

        await pbx.play(CAPTURES / "01-inbound-answered" / "events.jsonl")

        async def calls(n: int) -> bool:
            return len(await _fetch(pg_url, "SELECT id FROM calls")) >= n

        await _until(lambda: calls(1), 30, "the live call", step=0.1)
        await asyncio.sleep(0.5)  # the watermark moves past it

        holder = await link_holder(pg_url, "east")
        victim = next(p for p in procs if p.pid == holder)
        logins = pbx.logins_ok
        # The PBX refuses connections for a moment (as a network cut would), so the
        # takeover cannot begin before the gap's calls are over, however fast it is.
        cut = asyncio.create_task(pbx.restart(down_for=1.5))
        cluster.kill(victim)
        for name in ("02-inbound-missed", "05-outbound-answered", "09-internal-call"):
            await pbx.play(CAPTURES / name / "events.jsonl")
        assert pbx.logins_ok == logins  # nobody held the link while they played
        await cut

        await _until(lambda: pbx.logins_ok > logins and pbx.clients == 1, 40, "taken over")
        await _until(lambda: calls(4), 30, "the gap's calls", step=0.1)
        await asyncio.sleep(1.0)  # anything doubled would show by now
        rows = await _fetch(pg_url, "SELECT linkedid, source, direction, outcome FROM calls")
        assert len(rows) == 4 and len({r["linkedid"] for r in rows}) == 4
        by_source = sorted((r["source"], r["direction"], r["outcome"]) for r in rows)
        assert by_source == [
            ("ami", "inbound", "answered"),
            ("cdr", "inbound", "missed"),
            ("cdr", "internal", "answered"),
            ("cdr", "outbound", "answered"),
        ]
        (state,) = await _fetch(pg_url, "SELECT total_count, last_error FROM cdr_backfill")
        assert (state["total_count"], state["last_error"]) == (3, None)
    finally:
        cluster.stop_all()
        await pbx.close()
