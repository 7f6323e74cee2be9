"""Managers' figures on both engines: missed summary, per day, per rep, busiest hours,
and a contact's timeline."""

from __future__ import annotations

import asyncio

import pytest

from crm.ingest import Ingest
from crm.models import User
from crm.services import CrmService, InvalidInput
from crm.store import Store

from .conftest import Clock
from .factories import T0, inbound, outbound

DAY = 86_400.0
# T0 is 2026-11-22 09:54:54 UTC


async def _reps(store: Store) -> tuple[User, User]:
    a = await store.add_user(User(None, "alice", "Alice Adams", "rep", ["101"]), T0)
    b = await store.add_user(User(None, "bob", "Bob Brown", "rep", ["102"]), T0)
    return a, b


async def _traffic(ingest: Ingest) -> None:
    """Day 1: 5 inbound on two lines (3 missed), 1 outbound callback by bob 10 min after
    the first miss; day 2: 1 inbound answered.  SLA is 30 minutes (conftest policy)."""
    await ingest.handle(inbound("+14155550201", answered_by="101", at=T0))
    await ingest.handle(inbound("+14155550202", answered_by=None, at=T0 + 100))  # ends +115
    await ingest.handle(inbound("+14155550203", answered_by=None, outcome="abandoned",
                                at=T0 + 200, did="5552000"))  # fmt: skip
    await ingest.handle(inbound("+14155550204", answered_by=None, outcome="busy", at=T0 + 300,
                                rang=("101",)))  # fmt: skip
    await ingest.handle(inbound("+14155550205", answered_by="102", at=T0 + 400, did="5552000"))
    # bob rings the first missed caller back after 10 minutes -> closes that task
    await ingest.handle(outbound("4155550202", "+14155550202", caller="102", at=T0 + 715))
    # the abandoned caller is called back after two hours -> outside the SLA
    await ingest.handle(outbound("4155550203", "+14155550203", caller="101", at=T0 + 215 + 7200))
    await ingest.handle(inbound("+14155550206", answered_by="101", at=T0 + DAY))


async def test_missed_summary(store: Store, service: CrmService, ingest: Ingest) -> None:
    await _reps(store)
    await _traffic(ingest)
    s = await service.missed_summary(T0 - 60, T0 + DAY - 60)
    assert (s.total_inbound, s.missed) == (5, 3)
    assert s.missed_rate == pytest.approx(0.6)
    assert (s.callbacks, s.returned) == (3, 2)
    # callbacks after 600 s and 7200 s -> median of the two
    assert s.median_time_to_callback == pytest.approx((600 + 7200) / 2)
    assert s.returned_within_sla == pytest.approx(1 / 3)
    lines = {r.did: (r.inbound, r.missed) for r in s.by_line}
    assert lines == {"5551000": (3, 2), "5552000": (2, 1)}
    reps = {r.name: r for r in s.by_rep}
    assert reps["Alice Adams"].rung_missed == 3  # 101 rang on all three missed calls
    assert reps["Bob Brown"].rung_missed == 2  # not on the busy one (rang 101 only)
    assert (reps["Alice Adams"].answered, reps["Bob Brown"].answered) == (1, 1)
    assert reps["Bob Brown"].callbacks_closed == 1
    assert reps["Bob Brown"].avg_time_to_callback == pytest.approx(600)
    assert reps["Alice Adams"].callbacks_closed == 1


async def test_missed_summary_scoped_and_empty(
    store: Store, service: CrmService, ingest: Ingest
) -> None:
    _, bob = await _reps(store)
    await _traffic(ingest)
    rep = await service.scope_for(bob)
    s = await service.missed_summary(T0 - 60, T0 + DAY - 60, rep)
    # bob answered one inbound; of the missed calls' tasks (nobody's contacts) the rung
    # reps got one each in turn: 202 alice, 203 bob, 204 (rang 101 only) alice
    assert (s.total_inbound, s.missed) == (2, 1)
    assert [r.name for r in s.by_rep] == ["Bob Brown"]
    empty = await service.missed_summary(T0 - 10 * DAY, T0 - 9 * DAY)
    assert (empty.total_inbound, empty.missed, empty.missed_rate) == (0, 0, 0.0)
    assert empty.median_time_to_callback is None and empty.returned_within_sla is None
    with pytest.raises(InvalidInput):
        await service.missed_summary(T0, T0)


async def test_calls_per_day_and_busiest_hours(
    store: Store, service: CrmService, ingest: Ingest
) -> None:
    await _reps(store)
    await _traffic(ingest)
    days = await service.calls_per_day(T0 - 3600, T0 + 2 * DAY)
    assert days == [
        ("2026-11-22", "abandoned", 1),
        ("2026-11-22", "answered", 4),
        ("2026-11-22", "busy", 1),
        ("2026-11-22", "missed", 1),
        ("2026-11-23", "answered", 1),
    ]
    # ten hours west of UTC, 09:54-09:59 are still the day before; 10:01 is not
    shifted = await service.calls_per_day(T0 - 3600, T0 + 2 * DAY, utc_offset=-10 * 3600)
    per_day: dict[str, int] = {}
    for day, _, n in shifted:
        per_day[day] = per_day.get(day, 0) + n
    assert per_day == {"2026-11-21": 4, "2026-11-22": 4}
    hours = await service.busiest_hours(T0 - 3600, T0 + 2 * DAY)
    assert len(hours) == 24 and [h for h, _ in hours] == list(range(24))
    # 09:54-09:59 on both days, 10:01 and 10:06, 11:58
    assert {h: n for h, n in hours if n} == {9: 5, 10: 2, 11: 1}


async def test_per_rep(store: Store, service: CrmService, ingest: Ingest) -> None:
    _, bob = await _reps(store)
    await _traffic(ingest)
    rows = await service.per_rep(T0 - 60, T0 + 2 * DAY)
    assert [(r.name, r.answered, r.missed, r.talk_seconds) for r in rows] == [
        ("Alice Adams", 3, 3, 8.0 + 5.0 + 8.0),
        ("Bob Brown", 2, 2, 8.0 + 5.0),
    ]
    only_bob = await service.per_rep(T0 - 60, T0 + 2 * DAY, await service.scope_for(bob))
    assert [r.user_id for r in only_bob] == [bob.id]


async def test_contact_timeline(
    store: Store, service: CrmService, ingest: Ingest, clock: Clock
) -> None:
    alice, _ = await _reps(store)
    missed = await ingest.handle(inbound("+14155550301", answered_by=None, at=T0))
    lead_id = missed.lead_created.id
    answered = await ingest.handle(inbound("+14155550301", answered_by="101", at=T0 + 600))
    clock.now = T0 + 700
    note = await service.add_note(answered.call.id, alice.id, "pricing", "interested", "call Fri")
    items = await service.contact_timeline(lead_id)
    assert [i.kind for i in items] == ["note", "call", "callback", "call"]
    assert items[0].item == note
    assert items[1].item.id == answered.call.id and items[3].item.id == missed.call.id
    assert items[2].item.status == "closed" and items[2].item.time_to_callback == 585.0
    assert [i.at for i in items] == sorted((i.at for i in items), reverse=True)


async def test_managers_figures_do_not_wait_behind_a_write_transaction(
    store: Store, service: CrmService, ingest: Ingest
) -> None:
    """Several managers opening the audit and the reports while a batch of calls is
    being written get the last commit's figures at once, side by side (SQLite: a pool
    of read connections apart from the writer's; PostgreSQL: the pool's)."""
    await _reps(store)
    await _traffic(ingest)
    since, until = T0 - 60, T0 + DAY - 60
    async with store.transaction() as tx:
        await tx.add_user(User(None, "cara", "Cara Cole", "rep", ["104"]), T0)
        reads = asyncio.gather(
            *(service.missed_summary(since, until) for _ in range(6)),
            store.per_rep(since, until),
            store.calls_per_day(since, until),
        )
        *summaries, reps, days = await asyncio.wait_for(reads, 10)
    assert {(s.total_inbound, s.missed, s.callbacks, s.returned) for s in summaries} == {
        (5, 3, 3, 2)
    }
    assert "Cara Cole" not in {r.name for r in reps}, "the open transaction is not seen yet"
    assert sum(n for _, _, n in days) == 7
