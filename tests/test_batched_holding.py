"""Batched writes keep the holding sink's promises (``crm.batching``, ``crm.holding``).

A batch goes out at ``max_calls`` calls or ``max_wait`` after its first call, in order,
and a full batch slows the link down instead of growing memory.  A batch the database
refuses is tried one call at a time: the first refusal holds that call and every later
one, in order and journaled; one call the store cannot take holds up only the calls
behind it, never those before it; every call is written exactly once when the database
answers again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ami_bridge.facts import CallProgress, CallRecord
from ami_bridge.replay import replay_file
from crm.batching import Batch, Batcher
from crm.holding import HoldingSink
from crm.ingest import Ingest, LiveSnapshot
from crm.policy import LeadPolicy
from crm.store import open_store

from .paths import ASTERISK22
from .test_faults_store import ExclusiveLock, replay_through_link, short_busy_timeout
from .waiting import until

BURST = ASTERISK22 / "11-burst-20-concurrent" / "raw.ami"
POLICY = LeadPolicy(own_numbers=("5551000",))
__all__ = ["short_busy_timeout"]  # the fixture, used by name


class Recorder:
    """A flush function that notes each batch (and can be slowed down)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.live: list[list[str]] = []
        self.delay = delay
        self.at: list[float] = []

    async def __call__(self, batch: Batch[int, tuple[str, int]]) -> None:
        self.at.append(time.monotonic())
        if self.delay:
            await asyncio.sleep(self.delay)
        self.batches.append(list(batch.calls))
        self.live.append([f"{k}:{v}" for k, v in batch.live])


async def test_a_batch_goes_out_when_full_and_the_order_is_kept() -> None:
    rec = Recorder(delay=0.02)
    batcher: Batcher[int, tuple[str, int]] = Batcher(rec, max_calls=10, max_wait=5.0)
    for n in range(35):
        await batcher.add_call(n)
    await batcher.drain()
    assert [x for b in rec.batches for x in b] == list(range(35))
    assert all(len(b) <= 10 for b in rec.batches)
    assert [len(b) for b in rec.batches[:3]] == [10, 10, 10]  # never waited 5 s for these
    await batcher.close()


async def test_a_lone_call_is_written_within_max_wait() -> None:
    rec = Recorder()
    batcher: Batcher[int, tuple[str, int]] = Batcher(rec, max_calls=100, max_wait=0.05)
    t0 = time.monotonic()
    await batcher.add_call(1)
    await until(lambda: rec.batches, 2.0, "the lone call's batch")
    waited = rec.at[0] - t0
    assert 0.03 <= waited < 0.5, waited  # it lingered for company, briefly
    # with max_wait 0 a quiet link's call goes at once
    quick = Recorder()
    now: Batcher[int, tuple[str, int]] = Batcher(quick, max_calls=100, max_wait=0.0)
    t0 = time.monotonic()
    await now.add_call(2)
    await until(lambda: quick.batches, 2.0, "the immediate batch")
    assert quick.at[0] - t0 < 0.05
    await batcher.close()
    await now.close()


async def test_a_full_batch_makes_the_link_wait_instead_of_growing() -> None:
    gate = asyncio.Event()
    batches: list[list[int]] = []

    async def slow(batch: Batch[int, tuple[str, int]]) -> None:
        await gate.wait()
        batches.append(list(batch.calls))

    batcher: Batcher[int, tuple[str, int]] = Batcher(slow, max_calls=5, max_wait=0.0)
    for n in range(5):
        await batcher.add_call(n)
    await until(lambda: batcher.pending == 0, 2.0, "the first batch taken")
    for n in range(5, 10):
        await batcher.add_call(n)  # the next batch fills while the first is written
    blocked = asyncio.create_task(batcher.add_call(10))
    await asyncio.sleep(0.05)
    assert not blocked.done() and batcher.pending == 5  # no sixth call in memory
    gate.set()
    await asyncio.wait_for(blocked, 2.0)
    await batcher.drain()
    assert [x for b in batches for x in b] == list(range(11))
    await batcher.close()


async def test_calls_wait_for_their_batch_up_to_max_pending_then_the_link_waits() -> None:
    gate = asyncio.Event()
    batches: list[list[int]] = []

    async def slow(batch: Batch[int, tuple[str, int]]) -> None:
        await gate.wait()
        batches.append(list(batch.calls))

    batcher: Batcher[int, tuple[str, int]] = Batcher(slow, max_calls=5, max_wait=0.0,
                                                     max_pending=15)  # fmt: skip
    for n in range(5):
        await batcher.add_call(n)
    await until(lambda: batcher.pending == 0, 2.0, "the first batch taken")
    for n in range(5, 20):
        await batcher.add_call(n)  # three batches wait while the first is written
    blocked = asyncio.create_task(batcher.add_call(20))
    await asyncio.sleep(0.05)
    assert not blocked.done() and batcher.pending == 15
    gate.set()
    await asyncio.wait_for(blocked, 2.0)
    await batcher.drain()
    assert batches[0] == [0, 1, 2, 3, 4] and all(len(b) <= 5 for b in batches)
    assert [x for b in batches for x in b] == list(range(21))
    await batcher.close()


async def test_a_burst_of_finished_calls_does_not_hold_up_the_link_while_a_batch_is_written(
    tmp_path: Path,
) -> None:
    """The link's one consumer hands every fact to the sink in turn: a finished call that
    waited for the store's write held up every fact behind it, the screen pops of new
    calls too (issue 17: 200 calls ending at once at 10x).  The holding sink takes a
    burst's calls while a batch is written; they are all written, in order."""
    store = await open_store(f"sqlite:///{tmp_path / 'crm.db'}")
    ingest = Ingest(store, POLICY)
    gate = asyncio.Event()

    async def slow_write(recs: list[CallRecord], live: list[LiveSnapshot]) -> None:
        await gate.wait()
        await ingest.record_many(recs, live)

    sink = HoldingSink(ingest.handle, write_many=slow_write, batch_calls=5, batch_wait=0.0)
    recs = replay_file(BURST)
    try:
        async with asyncio.timeout(5):
            for rec in recs:
                await sink(rec)  # none waits for the first batch's write
        assert await store.count_calls() == 0
        gate.set()
        await sink.drain()
        assert await store.count_calls() == len(recs) == 20
    finally:
        gate.set()
        await sink.close()
        await store.close()


async def test_live_snapshots_keep_only_the_latest_per_call() -> None:
    rec = Recorder()
    batcher: Batcher[int, tuple[str, int]] = Batcher(
        rec, max_calls=100, max_wait=0.05, live_key=lambda item: item[0]
    )
    for version in range(3):
        batcher.add_live(("a", version))
        batcher.add_live(("b", version))
    await batcher.add_call(1)
    await batcher.drain()
    assert rec.batches == [[1]] and sorted(rec.live[0]) == ["a:2", "b:2"]
    batcher.add_live(("c", 0))  # snapshots alone are written too
    await batcher.drain()
    assert rec.live[-1] == ["c:0"]
    await batcher.close()


def _sink(ingest: Ingest, **kwargs: object) -> HoldingSink:
    return HoldingSink(
        ingest.handle,
        write_many=ingest.record_many,
        retry_initial=0.05,
        retry_max=0.2,
        batch_calls=8,
        batch_wait=0.01,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_batched_calls_are_held_journaled_and_written_once_when_unlocked(
    tmp_path: Path, short_busy_timeout: None
) -> None:
    db = tmp_path / "crm.db"
    journal = tmp_path / "held-calls-default.jsonl"
    store = await open_store(f"sqlite:///{db}")
    ingest = Ingest(store, POLICY)
    sink = _sink(ingest, journal=journal)
    lock = ExclusiveLock(db)
    seen: list[CallRecord] = []
    try:
        await replay_through_link(BURST, sink, seen)
        await sink.drain()
        assert sink.status.held == 20 and "locked" in (sink.status.last_error or "")
        lines = journal.read_text().splitlines()
        assert len(lines) == 20  # every held call on disk before the sink returned
        assert lock.conn is not None
        assert lock.conn.execute("SELECT count(*) FROM calls").fetchone() == (0,)
        lock.release()
        await until(lambda: sink.status.held == 0, 10.0, "the held calls written")
        assert await store.count_calls() == 20
        for rec in seen:
            call = await store.get_call_by_linkedid(rec.linkedid)
            assert call is not None and call.outcome == rec.outcome
        assert sink.status.written_late == 20 and sink.status.lost == 0
        assert journal.read_text() == ""
    finally:
        lock.release()
        await sink.close()
        await store.close()


async def test_a_journal_replayed_through_a_batched_sink_writes_each_call_once(
    tmp_path: Path,
) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'crm.db'}")
    journal = tmp_path / "held.jsonl"
    recs = replay_file(BURST)
    from crm.holding import Journal

    j = Journal(journal)
    for rec in recs + recs[:5]:  # a crash between writing and truncating: some twice
        await j.append(rec)
    try:
        sink = _sink(Ingest(store, POLICY), journal=journal)
        assert await sink.replay_journal() == 20
        assert await store.count_calls() == 20  # written before replay_journal returned
        assert journal.read_text() == ""
        await sink.close()
    finally:
        await store.close()


async def test_a_call_the_store_rejects_holds_up_only_the_calls_behind_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'crm.db'}")
    ingest = Ingest(store, POLICY)
    recs = replay_file(BURST)
    bad = recs[5].linkedid
    broken = [True]
    real = ingest._prepare  # where every write of a call starts, batched or not

    async def prepare(tx, rec, *args):  # type: ignore[no-untyped-def]
        if rec.linkedid == bad and broken[0]:
            raise ValueError("a call this version cannot write")
        return await real(tx, rec, *args)

    monkeypatch.setattr(ingest, "_prepare", prepare)
    sink = _sink(ingest)
    try:
        for rec in recs:
            await sink(rec)
        await sink.drain()
        # the five before it are written; it and those behind it wait, in order
        written = {r.linkedid for r in recs if await store.get_call_by_linkedid(r.linkedid)}
        assert written == {r.linkedid for r in recs[:5]}
        assert sink.status.held == 15 and "cannot write" in (sink.status.last_error or "")
        broken[0] = False  # fixed (an upgrade); the retry loop writes the rest
        await until(lambda: sink.status.held == 0, 10.0, "the held calls written")
        assert await store.count_calls() == 20
    finally:
        await sink.close()
        await store.close()


async def test_the_link_managers_ingest_defers_live_snapshots_to_the_batch(
    tmp_path: Path,
) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'crm.db'}")
    link = await store.ensure_pbx_link("office")
    ingest = Ingest(store, POLICY, pbx_link_id=link.id, keep_live=True)
    sink = _sink(ingest)
    ingest.defer_live = sink.defer_live
    seen: list[CallRecord] = []
    try:
        await replay_through_link(BURST, sink, seen)
        await sink.drain()
        assert await store.count_calls() == 20
        assert await store.live_calls_for_link(link.id) == []  # all finished: none kept
        assert sink.batcher is not None and sink.batcher.batches < 20  # shared commits
        # a call still up is kept through the batch (what a taker-over finishes)
        progress = CallProgress("9.9", "ringing", "inbound", "+15550100", None, None, None,
                                ("101",), None, 5.0)  # fmt: skip
        await sink(progress)
        await sink.drain()
        assert [r.linkedid for r in await store.live_calls_for_link(link.id)] == ["9.9"]
    finally:
        await sink.close()
        await store.close()


def test_snapshot_keys_are_per_link(tmp_path: Path) -> None:
    from crm.holding import _live_key

    a = LiveSnapshot("1.1", 1, {}, 0.0)
    b = LiveSnapshot("1.1", 2, {}, 0.0)
    assert _live_key(a) != _live_key(b)
