"""The managers' figures are computed once per state of the database and never served
older than it: any commit, by this store or by another process's, shows at once
(``crm.figures_memo``, ``Store.data_version``)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Hashable

import pytest

from crm.events import EventBus
from crm.figures_memo import FiguresMemo
from crm.ingest import Ingest
from crm.models import User
from crm.policy import LeadPolicy
from crm.services import CrmService, Scope
from crm.store import Store, open_store

from .conftest import Clock
from .factories import T0, inbound

DAY = 86_400.0


class Versions:
    def __init__(self) -> None:
        self.now: Hashable | None = 1

    async def __call__(self) -> Hashable | None:
        return self.now


class Counting:
    """A computation that counts its runs and can be held open."""

    def __init__(self) -> None:
        self.runs = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self) -> str:
        self.runs += 1
        await self.gate.wait()
        return f"value {self.runs}"


async def test_served_again_while_the_version_holds_and_recomputed_after() -> None:
    versions, compute = Versions(), Counting()
    memo = FiguresMemo(versions)
    assert await memo.get("k", compute) == "value 1"
    assert await memo.get("k", compute) == "value 1"
    assert compute.runs == 1
    versions.now = 2
    assert await memo.get("k", compute) == "value 2"
    assert await memo.get("other", compute) == "value 3"
    assert compute.runs == 3


async def test_without_a_version_every_call_computes() -> None:
    versions, compute = Versions(), Counting()
    versions.now = None
    memo = FiguresMemo(versions)
    await memo.get("k", compute)
    await memo.get("k", compute)
    assert compute.runs == 2


async def test_managers_asking_at_once_share_one_computation() -> None:
    versions, compute = Versions(), Counting()
    compute.gate.clear()
    memo = FiguresMemo(versions)
    asks = [asyncio.create_task(memo.get("k", compute)) for _ in range(16)]
    await asyncio.sleep(0.01)
    assert compute.runs == 1
    compute.gate.set()
    assert await asyncio.gather(*asks) == ["value 1"] * 16


async def test_one_waiter_leaving_does_not_cancel_the_others_answer() -> None:
    versions, compute = Versions(), Counting()
    compute.gate.clear()
    memo = FiguresMemo(versions)
    first = asyncio.create_task(memo.get("k", compute))
    second = asyncio.create_task(memo.get("k", compute))
    await asyncio.sleep(0.01)
    first.cancel()
    compute.gate.set()
    assert await second == "value 1"
    assert first.cancelled()


async def test_a_failure_reaches_every_waiter_and_is_not_kept() -> None:
    versions = Versions()
    runs = 0

    async def failing() -> str:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("database went away")

    memo = FiguresMemo(versions)
    results = await asyncio.gather(
        memo.get("k", failing), memo.get("k", failing), return_exceptions=True
    )
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    assert runs == 1
    with pytest.raises(RuntimeError):
        await memo.get("k", failing)
    assert runs == 2


async def test_the_oldest_figures_are_dropped_beyond_the_size() -> None:
    versions, compute = Versions(), Counting()
    memo = FiguresMemo(versions, size=2)
    for key in ("a", "b", "c"):
        await memo.get(key, compute)
    await memo.get("c", compute)
    await memo.get("b", compute)
    assert compute.runs == 3
    await memo.get("a", compute)
    assert compute.runs == 4


# -- on both engines ---------------------------------------------------------------------
async def test_the_data_version_moves_on_every_commit_and_only_then(
    store: Store, store_url: str
) -> None:
    first = await store.data_version()
    assert first is not None
    assert await store.data_version() == first
    await store.add_user(User(None, "alice", "Alice Adams", "rep", ["101"]), T0)
    second = await store.data_version()
    assert second != first
    # another process's store on the same database
    other = await open_store(store_url)
    try:
        await other.add_user(User(None, "bob", "Bob Brown", "rep", ["102"]), T0)
    finally:
        await other.close()
    assert await store.data_version() not in (first, second)


async def test_a_new_missed_call_shows_at_once(
    store: Store, service: CrmService, ingest: Ingest
) -> None:
    await store.add_user(User(None, "alice", "Alice Adams", "rep", ["101"]), T0)
    await ingest.handle(inbound("+14155550202", answered_by=None, at=T0))
    memo = service.figures_memo
    before = memo.computed
    first = await service.missed_summary(T0 - 60, T0 + DAY)
    again = await service.missed_summary(T0 - 60, T0 + DAY)
    assert (first.missed, again.missed) == (1, 1)
    assert memo.computed == before + 1  # the second manager was served the first's
    await ingest.handle(inbound("+14155550203", answered_by=None, at=T0 + 60))
    after = await service.missed_summary(T0 - 60, T0 + DAY)
    assert (after.total_inbound, after.missed) == (2, 2)
    # a narrower scope is its own figures
    alice = (await store.list_users(include_inactive=False))[0]
    mine = await service.missed_summary(T0 - 60, T0 + DAY, Scope(frozenset({alice.id})))
    assert mine.missed == 2


async def test_another_process_writing_a_call_shows_at_once(
    store: Store, store_url: str, service: CrmService, policy: LeadPolicy, clock: Clock
) -> None:
    """The cluster: the link's process writes the calls, a manager reads on another."""
    await store.add_user(User(None, "alice", "Alice Adams", "rep", ["101"]), T0)
    per_day = await service.calls_per_day(T0 - 60, T0 + DAY)
    hours = await service.busiest_hours(T0 - 60, T0 + DAY)
    assert per_day == [] and sum(n for _, n in hours) == 0
    other = await open_store(store_url)
    try:
        await Ingest(other, policy, EventBus(), clock).handle(inbound(answered_by="101", at=T0))
    finally:
        await other.close()
    assert [n for _, _, n in await service.calls_per_day(T0 - 60, T0 + DAY)] == [1]
    assert sum(n for _, n in await service.busiest_hours(T0 - 60, T0 + DAY)) == 1
    assert [r.answered for r in await service.per_rep(T0 - 60, T0 + DAY)] == [1]


async def test_the_admin_is_told_at_start_when_postgresql_keeps_no_statistics(
    pg_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Figures tables analysed when empty and never again plan like empty ones."""
    import asyncpg

    con = await asyncpg.connect(pg_database)
    try:
        autovacuum = await con.fetchval("SELECT current_setting('autovacuum')")
    finally:
        await con.close()
    caplog.set_level(logging.WARNING, logger="crm.store.postgres")
    store = await open_store(f"{pg_database}?schema=t_{uuid.uuid4().hex[:12]}")
    await store.close()
    warned = "autovacuum is off" in caplog.text
    assert warned == (autovacuum != "on"), (autovacuum, caplog.text)
