"""Finished calls written a batch per transaction (``Ingest.record_many``): the same rows,
leads, callbacks and events as one call at a time, all or nothing, on both engines."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ami_bridge.facts import CallRecord
from ami_bridge.replay import replay_file
from crm.events import EventBus
from crm.ingest import Ingest, LiveSnapshot
from crm.models import CallFilter
from crm.policy import LeadPolicy
from crm.store import Store, open_store
from crm.store.sqlite import Suspended

from ..paths import ASTERISK22

BURST = ASTERISK22 / "11-burst-20-concurrent" / "raw.ami"


def burst() -> list[CallRecord]:
    return replay_file(BURST)


async def _state(store: Store) -> dict[str, object]:
    """What a user would compare: every call as listed, contacts/leads, callback tasks."""
    calls = await store.list_calls(CallFilter(), limit=1000)
    contacts = await store.list_contacts(limit=1000)
    tasks = await store.list_callbacks(status=None, limit=1000)
    return {
        "calls": sorted(
            (c.linkedid, c.outcome, c.contact_id is not None, c.match_reason, c.user_id)
            for c in calls
        ),
        "contacts": sorted((c.name, c.lead.status if c.lead else None) for c in contacts),
        "tasks": sorted((t.number_e164, t.status, t.missed_count) for t in tasks),
    }


@contextlib.asynccontextmanager
async def _one_and_many(
    store_url: str, tmp_path: Path, tag: str
) -> AsyncIterator[tuple[Store, Store]]:
    """Two empty stores of the engine under test: one written call by call, one by
    batches (``tag`` names the second PostgreSQL schema)."""
    one = await open_store(store_url)
    other_url = (
        f"sqlite:///{tmp_path / f'other-{tag}.db'}"
        if store_url.startswith("sqlite")
        else store_url.replace("?schema=", f"?schema={tag}")
    )
    many = await open_store(other_url)
    try:
        yield one, many
    finally:
        await one.close()
        await many.close()


async def test_a_batch_writes_what_the_calls_one_by_one_write(
    store_url: str, tmp_path: Path, policy: LeadPolicy
) -> None:
    recs = burst()
    async with _one_and_many(store_url, tmp_path, "b") as (one, many):
        bus_one, bus_many = EventBus(), EventBus()
        sub_one, sub_many = bus_one.subscribe(maxsize=1000), bus_many.subscribe(maxsize=1000)
        for rec in recs:
            await Ingest(one, policy, bus_one).record(rec)
        results = await Ingest(many, policy, bus_many).record_many(recs)
        assert [r.call.linkedid for r in results] == [r.linkedid for r in recs]
        assert await many.count_calls() == len(recs) == 20
        assert await _state(many) == await _state(one)
        kinds_one = [sub_one.get_nowait().kind for _ in range(sub_one.pending())]
        kinds_many = [sub_many.get_nowait().kind for _ in range(sub_many.pending())]
        assert kinds_many == kinds_one and kinds_many.count("call_recorded") == 20


async def test_a_batch_twice_is_still_one_row_per_call(store: Store, ingest: Ingest) -> None:
    recs = burst()
    await ingest.record_many(recs[:12])
    again = await ingest.record_many(recs)  # a retry after a refusal that did commit
    assert [r.created for r in again] == [False] * 12 + [True] * 8
    assert await store.count_calls() == 20


async def test_a_failing_call_rolls_the_whole_batch_back_and_publishes_nothing(
    store: Store, policy: LeadPolicy, bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    recs = burst()
    ingest = Ingest(store, policy, bus)
    sub = bus.subscribe(maxsize=1000)
    real = store.__class__.upsert_call
    bad = recs[7].linkedid

    async def upsert(self: Store, call, at, **kw):  # type: ignore[no-untyped-def]
        if call.linkedid == bad:
            raise RuntimeError("this call cannot be written")
        return await real(self, call, at, **kw)

    real_many = store.__class__.insert_calls

    async def insert(self: Store, calls, at):  # type: ignore[no-untyped-def]
        written = await real_many(self, calls, at)  # the rows are in, then it fails
        if any(call.linkedid == bad for call in calls):
            raise RuntimeError("this call cannot be written")
        return written

    monkeypatch.setattr(store.__class__, "upsert_call", upsert)
    monkeypatch.setattr(store.__class__, "insert_calls", insert)
    with pytest.raises(RuntimeError, match="cannot be written"):
        await ingest.record_many(recs)
    assert await store.count_calls() == 0
    assert await store.count_contacts() == 0
    assert sub.pending() == 0


async def test_live_snapshots_ride_along_and_a_finished_call_keeps_none(store: Store) -> None:
    link = await store.ensure_pbx_link("office")
    ingest = Ingest(store, LeadPolicy(own_numbers=("5551000",)), pbx_link_id=link.id,
                    keep_live=True)  # fmt: skip
    recs = burst()
    snap = {"progress": {}, "started_at": 1.0, "rung": [], "answered_at": None}
    live = [LiveSnapshot(r.linkedid, link.id, snap, 1.0) for r in recs[:3]]
    live.append(LiveSnapshot("still-up.1", link.id, snap, 1.0))
    await ingest.record_many(recs[:2], live)
    kept = {row.linkedid for row in await store.live_calls_for_link(link.id)}
    # the two finished calls are gone from live_calls; the others are kept
    assert kept == {recs[2].linkedid, "still-up.1"}
    # a late snapshot of a finished call never brings it back
    await ingest.record_many([], [LiveSnapshot(recs[0].linkedid, link.id, snap, 2.0)])
    kept = {row.linkedid for row in await store.live_calls_for_link(link.id)}
    assert recs[0].linkedid not in kept


@pytest.mark.parametrize("wait", ["sleep0", "timer"])
async def test_sqlite_refuses_a_transaction_that_waits_for_something_else(
    tmp_path: Path, wait: str
) -> None:
    """``in_transaction`` runs the work in the database's thread: work that awaits anything
    but the store would stall it, so it is refused and rolled back, never half-written."""
    store = await open_store(f"sqlite:///{tmp_path / 'crm.db'}")
    ingest = Ingest(store, LeadPolicy())
    rec = burst()[0]

    async def sneaky(tx: Store) -> None:
        await ingest._record(tx, rec, lambda _r: None)
        await asyncio.sleep(0 if wait == "sleep0" else 0.001)

    try:
        with pytest.raises(Suspended):
            await store.in_transaction(sneaky)
        assert await store.count_calls() == 0
        # the store is still usable afterwards, in and out of the thread
        await ingest.record_many([rec])
        await ingest.record(dataclasses.replace(rec, complete=False))
        assert await store.count_calls() == 1
    finally:
        await store.close()


async def test_a_read_only_transaction_reads_in_one_trip(store: Store, ingest: Ingest) -> None:
    rec = burst()[0]
    await ingest.record(rec)

    async def read(tx: Store) -> tuple[int, object]:
        call = await tx.get_call_by_linkedid(rec.linkedid)
        return await tx.count_calls(), call.outcome if call else None

    assert await store.in_transaction(read, read_only=True) == (1, rec.outcome)


async def test_a_batch_of_misses_and_callbacks_ends_as_one_by_one(
    store_url: str, tmp_path: Path, policy: LeadPolicy
) -> None:
    """The callbacks of a batch's calls see the calls before them and not those after
    them: a miss answered later in the batch opens its task, the answer closes it; an
    answer written before an earlier miss makes that miss's task born closed."""
    from .factories import T0, inbound, outbound

    a, b, c = "+14155550111", "+14155550122", "+14155550133"
    before = inbound(c, answered_by=None, at=T0 - 600)  # c's task open before the batch
    recs = [
        outbound("4155550133", c, at=T0 + 30),  # closes c's task
        inbound(a, answered_by=None, at=T0),  # missed: opens a's task
        inbound(a, answered_by=None, at=T0 + 60),  # joins it
        outbound("4155550111", a, at=T0 + 120),  # calls back: closes it
        outbound("4155550122", b, at=T0 + 300),  # b answered first in the batch ...
        inbound(b, answered_by=None, at=T0 + 200),  # ... then b's earlier miss: born closed
        inbound(a, answered_by=None, at=T0 + 400),  # a new miss of a: a new task
    ]
    async with _one_and_many(store_url, tmp_path, "c") as (one, many):
        bus_one, bus_many = EventBus(), EventBus()
        sub_one, sub_many = bus_one.subscribe(maxsize=100), bus_many.subscribe(maxsize=100)
        await Ingest(one, policy).record(before)
        await Ingest(many, policy).record(before)
        for rec in recs:
            await Ingest(one, policy, bus_one).record(rec)
        await Ingest(many, policy, bus_many).record_many(recs)

        async def tasks(store: Store) -> list[tuple[object, ...]]:
            out = []
            for t in await store.list_callbacks(status=None, limit=100):
                closer = await store.get_call(t.closed_by_call) if t.closed_by_call else None
                out.append((t.number_e164, t.status, t.missed_count, t.opened_at,
                            closer.linkedid if closer else None))  # fmt: skip
            return sorted(out, key=repr)

        assert await tasks(many) == await tasks(one)
        assert [t[1] for t in await tasks(one)] == ["closed", "open", "closed", "closed"]
        assert await _state(many) == await _state(one)
        kinds_one = [sub_one.get_nowait().kind for _ in range(sub_one.pending())]
        kinds_many = [sub_many.get_nowait().kind for _ in range(sub_many.pending())]
        assert kinds_many == kinds_one
        assert "callback_opened" in kinds_one and "callback_closed" in kinds_one


async def test_two_processes_writing_batches_on_the_same_numbers_make_one_lead_each(
    store_url: str, policy: LeadPolicy
) -> None:
    """Each batch locks its numbers up front, in one order: two writers whose batches
    share callers (in opposite orders) neither deadlock nor make twin leads."""
    from .factories import T0, inbound

    numbers = [f"+1415555{n:04d}" for n in range(30)]
    first = [inbound(n, answered_by=None, at=T0 + i) for i, n in enumerate(numbers)]
    second = [inbound(n, answered_by=None, at=T0 + 100 + i) for i, n in enumerate(numbers)]
    second.reverse()
    one, other = await open_store(store_url), await open_store(store_url)
    try:
        await asyncio.wait_for(
            asyncio.gather(
                Ingest(one, policy).record_many(first),
                Ingest(other, policy).record_many(second),
            ),
            30,
        )
        assert await one.count_calls() == 60
        contacts = await one.list_contacts(limit=100)
        assert sorted(p.e164 for c in contacts for p in c.phones) == sorted(numbers)
        tasks = await one.list_callbacks(status=None, limit=100)
        assert sorted(t.missed_count for t in tasks) == [2] * 30
    finally:
        await one.close()
        await other.close()
