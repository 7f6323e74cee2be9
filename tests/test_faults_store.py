"""Faults on the CRM side: the process SIGKILLed mid-burst, the database locked or gone.

* A CRM killed while it writes calls into SQLite (WAL) loses nothing it committed: the
  file passes ``PRAGMA integrity_check``, every call it reported written is there intact,
  and catching up (ingesting the whole burst again) gives exactly one row per call.
* A locked or unreachable database: today the link's sink is ``Ingest.handle`` itself
  (web/runtime.py), the link logs its exception and the call is gone.  The first store
  test shows that; the others show ``crm.holding.HoldingSink`` holding the calls, telling
  the admin, and writing each exactly once when the database returns.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import crm.store.sqlite as sqlite_engine
from ami_bridge.facts import CallProgress, CallRecord, Fact
from ami_bridge.link import AmiLink, LinkSettings
from ami_bridge.profile import PbxProfile
from ami_bridge.replay import replay_file
from ami_bridge.replay_pbx import ReplayPbx
from ami_bridge.tracker import CallTracker
from crm.holding import HoldingSink, HoldingStatus
from crm.ingest import Ingest
from crm.policy import LeadPolicy
from crm.store import open_store

from .paths import ASTERISK22, ROOT

BURST = ASTERISK22 / "11-burst-20-concurrent" / "raw.ami"
INBOUND = ASTERISK22 / "01-inbound-answered" / "raw.ami"
POLICY = LeadPolicy(own_numbers=("5551000",))

# The child: ingest the burst's calls one by one, saying which are committed.
CHILD = r"""
import asyncio, sys
from ami_bridge.replay import replay_file
from crm.ingest import Ingest
from crm.policy import LeadPolicy
from crm.store import open_store

async def main(db, burst):
    store = await open_store("sqlite:///" + db)
    ingest = Ingest(store, LeadPolicy(own_numbers=("5551000",)))
    print("ready", flush=True)
    while True:  # idempotent: passes after the first rewrite the same rows
        for rec in replay_file(burst):
            await ingest.handle(rec)
            print(rec.linkedid, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def burst_records() -> list[CallRecord]:
    return replay_file(BURST)


def kill_mid_burst(db: Path, after: int) -> list[str]:
    """Run the child until it reported ``after`` commits, SIGKILL it; what it reported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(BURST)],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    reported: list[str] = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        while len(reported) < after:
            line = proc.stdout.readline()
            assert line, "the child died on its own"
            reported.append(line.strip())
        proc.send_signal(signal.SIGKILL)  # mid-way through the next call's transaction
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    return reported


def check_row(call: object, rec: CallRecord) -> None:
    for name in ("linkedid", "direction", "caller", "callee", "outcome", "answered",
                 "answered_by", "final_agent", "rang", "started_at", "ended_at",
                 "talk_seconds", "ring_seconds"):  # fmt: skip
        assert getattr(call, name) == pytest.approx(getattr(rec, name)), name


async def test_sigkill_mid_burst_keeps_every_committed_call_and_catches_up(
    tmp_path: Path,
) -> None:
    db = tmp_path / "crm.db"
    by_id = {r.linkedid: r for r in burst_records()}
    rng = random.Random(6)
    reported: set[str] = set()
    for _ in range(3):  # killed three times, restarted each time
        reported |= set(kill_mid_burst(db, rng.randint(3, 30)))
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            rows = conn.execute("SELECT linkedid FROM calls").fetchall()
        assert reported <= {r for (r,) in rows}
        store = await open_store(f"sqlite:///{db}")
        try:
            for linkedid in reported:
                call = await store.get_call_by_linkedid(linkedid)
                assert call is not None
                check_row(call, by_id[linkedid])
        finally:
            await store.close()
    # Catching up: the whole burst again (what a resync or a CDR backfill feeds) gives
    # exactly one row per call, and the rows from before keep their ids.
    store = await open_store(f"sqlite:///{db}")
    try:
        before = {lid: (await store.get_call_by_linkedid(lid)).id for lid in reported}  # type: ignore[union-attr]
        ingest = Ingest(store, POLICY)
        for _ in range(2):
            for rec in burst_records():
                await ingest.handle(rec)
        assert await store.count_calls() == 20
        for linkedid, rec in by_id.items():
            call = await store.get_call_by_linkedid(linkedid)
            assert call is not None
            check_row(call, rec)
            if linkedid in before:
                assert call.id == before[linkedid]
    finally:
        await store.close()


# --------------------------------------------------------------------------- locked


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A locked database fails in 0.1 s instead of the production 10 s."""
    monkeypatch.setattr(sqlite_engine, "BUSY_TIMEOUT_MS", 100)


class ExclusiveLock:
    """Another process's connection holding SQLite's write lock."""

    def __init__(self, db: Path) -> None:
        self.conn: sqlite3.Connection | None = sqlite3.connect(db, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        if self.conn is None:
            return
        self.conn.execute("ROLLBACK")
        self.conn.close()
        self.conn = None


def link_settings(pbx: ReplayPbx) -> LinkSettings:
    return LinkSettings(host=pbx.host, port=pbx.port, username="crm", secret="crmsecret",
                        tick_interval=0.02, ping_interval=5.0)  # fmt: skip


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


async def replay_through_link(
    capture: Path, sink: Callable[[Fact], object], seen: list[CallRecord]
) -> None:
    """Replay a capture through the live link into ``sink`` until its calls are out."""

    async def wrapped(fact: Fact) -> None:
        if isinstance(fact, CallRecord):
            seen.append(fact)
        result = sink(fact)
        if asyncio.iscoroutine(result):
            await result

    expected = len(replay_file(capture))
    tracker = CallTracker(PbxProfile(finish_grace=0.05))
    async with ReplayPbx(capture, speed=0, paused=True) as pbx:
        link = AmiLink(link_settings(pbx), tracker, wrapped)
        async with link:
            await link.wait_state("connected")
            pbx.resume()
            await pbx.wait_done(5)
            await until(lambda: len(seen) >= expected)


async def test_the_runtime_link_sink_holds_a_call_while_the_database_is_locked(
    tmp_path: Path, short_busy_timeout: None
) -> None:
    """The product's wiring (web/runtime.py gives every link the runtime's holding sink):
    the call that ends while the database is locked is written once the lock is gone."""
    from tests.web.conftest import web_settings
    from web.runtime import holding_sink, open_runtime

    rt = await open_runtime(web_settings(tmp_path), with_link=False)
    db = tmp_path / "crm.db"
    lock = ExclusiveLock(db)
    seen: list[CallRecord] = []
    try:
        sink = holding_sink(rt)
        await replay_through_link(INBOUND, sink, seen)
        assert [r.linkedid for r in seen] == ["1795341294.0"]
        assert sink.status.held == 1 and "locked" in (sink.status.last_error or "")
        lock.release()
        sink.retry_now()
        await until(lambda: sink.status.held == 0)
        call = await rt.store.get_call_by_linkedid("1795341294.0")
        assert call is not None and call.outcome == "answered"
        assert await rt.store.count_calls() == 1
    finally:
        lock.release()
        await rt.close()


async def test_holding_sink_keeps_calls_while_locked_and_writes_each_once(
    tmp_path: Path, short_busy_timeout: None
) -> None:
    db = tmp_path / "crm.db"
    store = await open_store(f"sqlite:///{db}")
    statuses: list[HoldingStatus] = []
    sink = HoldingSink(Ingest(store, POLICY).handle, retry_initial=0.05, retry_max=0.2,
                       on_change=statuses.append)  # fmt: skip
    lock = ExclusiveLock(db)
    seen: list[CallRecord] = []
    try:
        await replay_through_link(BURST, sink, seen)
        # Locked all along: all 20 calls wait, and the admin is told why.
        assert sink.status.held == 20
        assert lock.conn is not None
        assert lock.conn.execute("SELECT count(*) FROM calls").fetchone() == (0,)
        assert "locked" in (sink.status.last_error or "")
        assert statuses and statuses[-1].held == 20 and not statuses[-1].healthy
        lock.release()
        await until(lambda: sink.status.held == 0)
        assert await store.count_calls() == 20
        assert {r.linkedid for r in seen} == {r.linkedid for r in burst_records()}
        for rec in seen:
            call = await store.get_call_by_linkedid(rec.linkedid)
            assert call is not None and call.outcome == rec.outcome
        assert statuses[-1].healthy and statuses[-1].written_late == 20
        assert sink.status.lost == 0
    finally:
        await sink.close()
        await store.close()


class FlakyStore:
    """An ``Ingest.handle`` whose database is unreachable for a while (PostgreSQL down):
    connection errors until ``up`` is set, then the real ingest."""

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest
        self.up = False
        self.attempts = 0

    async def handle(self, fact: Fact) -> object:
        self.attempts += 1
        if not self.up:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        return await self.ingest.handle(fact)


async def test_holding_sink_rides_out_an_unreachable_database_in_order(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'crm.db'}")
    flaky = FlakyStore(Ingest(store, POLICY))
    sink = HoldingSink(flaky.handle, retry_initial=0.02, retry_max=0.1)
    records = burst_records()
    try:
        for rec in records[:12]:
            await sink(rec)
        # A live update while down is tried once and dropped (stale later), never held.
        await sink(CallProgress("x", "ringing", "inbound", None, None, None, None, (), None, 1.0))
        # The same call again (a resync's version) replaces the held one, not a second row.
        await sink(dataclasses.replace(records[0], complete=False))
        await asyncio.sleep(0.3)
        status = sink.status
        assert status.held == 12 and status.live_dropped == 1
        assert "Connect call failed" in (status.last_error or "")
        attempts_while_down = flaky.attempts
        assert attempts_while_down < 12 + 1 + 10  # retries back off, one call at a time
        flaky.up = True
        for rec in records[12:]:
            await sink(rec)
        await until(lambda: sink.status.held == 0)
        assert await store.count_calls() == 20
        first_call = await store.get_call_by_linkedid(records[0].linkedid)
        assert first_call is not None and first_call.complete is False
        ids = [(await store.get_call_by_linkedid(r.linkedid)).id for r in records]  # type: ignore[union-attr]
        assert ids == sorted(ids)  # written in the order the calls ended
    finally:
        await sink.close()
        await store.close()
