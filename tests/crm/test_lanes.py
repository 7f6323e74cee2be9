"""A lane per call in front of the link's sink (``crm.lanes``): one call's slow screen-pop
lookup does not hold up another call's pop, and a call's facts keep their order."""

from __future__ import annotations

import asyncio
from typing import Any

from ami_bridge.facts import CallProgress, Fact
from crm.events import EventBus
from crm.holding import HoldingSink
from crm.ingest import Ingest
from crm.lanes import CallLanes
from crm.policy import LeadPolicy
from crm.store import Store

from .factories import T0, inbound

SLOW = "+14155550100"
FAST = "+14155550199"


class SlowLookups:
    """The store, but the screen-pop lookup of one number waits until ``gate`` opens."""

    def __init__(self, store: Store, number: str) -> None:
        self._store = store
        self._number = number
        self.gate = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def contact_names_by_e164(self, e164: str) -> list[tuple[int, str]]:
        if e164 == self._number:
            await self.gate.wait()
        return await self._store.contact_names_by_e164(e164)


def _progress(linkedid: str, caller: str, state: str = "ringing", at: float = T0) -> CallProgress:
    return CallProgress(
        linkedid=linkedid, state=state, direction="inbound", caller=caller,  # type: ignore[arg-type]
        caller_name=None, callee="5551000", did="5551000", ringing=("101",),
        answered_by="101" if state != "ringing" else None, at=at,
    )  # fmt: skip


def _seen(sub: Any) -> list[tuple[str, str, str]]:
    """(kind, linkedid, state) of what the subscription got so far."""
    out = []
    while sub.pending():
        event = sub.get_nowait()
        if event.kind == "call_progress":
            fact = event.payload.progress
            out.append((event.kind, fact.linkedid, fact.state))
        else:
            out.append((event.kind, event.payload.call.linkedid, ""))
    return out


def _slow_pipeline(
    store: Store, policy: LeadPolicy, bus: EventBus
) -> tuple[SlowLookups, CallLanes]:
    """An ingest whose lookup of ``SLOW`` waits, behind lanes."""
    slow = SlowLookups(store, SLOW)
    ingest = Ingest(slow, policy, bus)  # type: ignore[arg-type]
    return slow, CallLanes(ingest.handle, ingest.needs_lookup)


async def _until(check: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


async def test_a_slow_lookup_does_not_delay_another_calls_pop(
    store: Store, policy: LeadPolicy, bus: EventBus
) -> None:
    slow, lanes = _slow_pipeline(store, policy, bus)
    sub = bus.subscribe()
    await lanes(_progress("a", SLOW))
    await lanes(_progress("a", SLOW, "answered", T0 + 1))
    await lanes(_progress("b", FAST))  # the consumer went on: A's lookup still waits
    await _until(lambda: sub.pending() > 0)
    assert _seen(sub) == [("call_progress", "b", "ringing")]
    await asyncio.sleep(0.05)
    assert sub.pending() == 0  # A's pops wait for its lookup, in order
    slow.gate.set()
    await lanes.drain()
    assert _seen(sub) == [("call_progress", "a", "ringing"), ("call_progress", "a", "answered")]
    await lanes.close()


async def test_a_calls_facts_reach_the_bus_in_order_and_its_record_last(
    store: Store, policy: LeadPolicy, bus: EventBus
) -> None:
    slow, lanes = _slow_pipeline(store, policy, bus)
    sub = bus.subscribe()
    rec = inbound(SLOW, linkedid="a")
    facts: list[Fact] = [
        _progress("a", SLOW), _progress("b", FAST), _progress("a", SLOW, "answered", T0 + 1),
        _progress("b", FAST, "ended", T0 + 2), _progress("a", SLOW, "ended", T0 + 3), rec,
    ]  # fmt: skip

    async def consume() -> None:  # as the link's one consumer does
        for fact in facts:
            await lanes(fact)

    consumer = asyncio.create_task(consume())
    await _until(lambda: sub.pending() >= 2)
    await asyncio.sleep(0.2)  # time enough to write the record, were it not waiting
    assert not consumer.done()  # A's record waits for A's lane
    assert await store.count_calls() == 0
    slow.gate.set()
    await consumer
    await lanes.drain()
    seen = _seen(sub)
    assert [s for s in seen if s[1] == "a"] == [
        ("call_progress", "a", "ringing"), ("call_progress", "a", "answered"),
        ("call_progress", "a", "ended"), ("call_recorded", "a", ""),
    ]  # fmt: skip
    assert [s for s in seen if s[1] == "b"] == [
        ("call_progress", "b", "ringing"), ("call_progress", "b", "ended"),
    ]  # fmt: skip
    assert await store.count_calls() == 1


async def test_a_finished_call_leaves_no_live_row_behind_its_slow_lookup(
    store: Store, policy: LeadPolicy, bus: EventBus
) -> None:
    """The batch deletes a finished call's ``live_calls`` row: the snapshot its progress
    defers must reach the batcher first, however long its lookup took."""
    row = await store.ensure_pbx_link("lanes", None)
    slow = SlowLookups(store, SLOW)
    ingest = Ingest(slow, policy, bus, pbx_link_id=row.id, keep_live=True)  # type: ignore[arg-type]
    sink = HoldingSink(ingest.handle, write_many=ingest.record_many)
    ingest.defer_live = sink.defer_live
    lanes = CallLanes(sink, ingest.needs_lookup)

    async def consume() -> None:
        for fact in (_progress("a", SLOW), _progress("a", SLOW, "ended", T0 + 3),
                     inbound(SLOW, linkedid="a")):  # fmt: skip
            await lanes(fact)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.2)  # time enough for a batch, were the record not waiting
    assert await store.count_calls() == 0
    slow.gate.set()
    await consumer
    await lanes.close()
    await sink.close()
    assert await store.count_calls() == 1
    assert await store.live_calls_for_link(row.id) == []


async def test_a_failing_lane_is_logged_and_the_others_go_on(bus: EventBus, caplog: Any) -> None:
    handled: list[tuple[str, str]] = []

    async def handle(fact: Fact) -> None:
        assert isinstance(fact, CallProgress)
        await asyncio.sleep(0)
        if fact.linkedid == "bad" and fact.state == "ringing":
            raise RuntimeError("boom")
        handled.append((fact.linkedid, fact.state))

    lanes = CallLanes(handle, lambda fact: True, max_lanes=2)
    for n in range(5):
        await lanes(_progress(f"ok{n}", FAST))
    await lanes(_progress("bad", FAST))
    await lanes(_progress("bad", FAST, "ended", T0 + 1))
    await lanes.drain()
    assert sorted(handled) == sorted([(f"ok{n}", "ringing") for n in range(5)] + [("bad", "ended")])
    assert lanes.failed == 1
    assert "call bad: CallProgress not handled" in caplog.text
    assert lanes.running == 0


async def test_close_hands_on_what_is_queued_and_cancels_what_never_ends(bus: EventBus) -> None:
    gate = asyncio.Event()
    handled: list[str] = []

    async def handle(fact: Fact) -> None:
        assert isinstance(fact, CallProgress)
        if fact.linkedid == "stuck":
            await gate.wait()
        await asyncio.sleep(0.01)
        handled.append(fact.linkedid)

    lanes = CallLanes(handle, lambda fact: True)
    for name in ("one", "two", "three"):
        await lanes(_progress(name, FAST))
    assert await lanes.close(timeout=5.0)
    assert sorted(handled) == ["one", "three", "two"]  # nothing given before close is lost

    await lanes(_progress("stuck", FAST))
    assert not await lanes.close(timeout=0.05)
    assert lanes.running == 0 and "stuck" not in handled
