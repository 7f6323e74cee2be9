"""Missed calls open one callback task per number; a later answered call closes it."""

from __future__ import annotations

from crm.events import EventBus
from crm.ingest import Ingest
from crm.models import Contact, PhoneNumber, User
from crm.policy import LeadPolicy
from crm.services import CrmService
from crm.store import Store

from .factories import T0, inbound, internal, outbound


async def _reps(store: Store) -> tuple[User, User]:
    alice = await store.add_user(User(None, "alice", "Alice", "rep", ["101"]), T0)
    boss = await store.add_user(User(None, "boss", "Boss", "manager", ["109"]), T0)
    return alice, boss


async def test_missed_calls_from_one_number_are_one_task(
    store: Store, policy: LeadPolicy, bus: EventBus
) -> None:
    _alice, boss = await _reps(store)
    policy = LeadPolicy(own_numbers=policy.own_numbers, default_owner_id=boss.id,
                        callback_sla_minutes=30)  # fmt: skip
    ingest = Ingest(store, policy, bus)
    inbox = bus.subscribe(user_ids=[boss.id])
    first = inbound("+14155550102", answered_by=None)
    r1 = await ingest.handle(first)
    await ingest.handle(first)  # replayed: not a second miss
    r2 = await ingest.handle(inbound("+14155550102", answered_by=None, outcome="abandoned",
                                     at=T0 + 300))  # fmt: skip
    r3 = await ingest.handle(inbound("+14155550102", answered_by=None, outcome="busy",
                                     at=T0 + 600))  # fmt: skip
    [task] = await store.list_callbacks()
    assert task.missed_count == 3
    assert task.opened_at == first.ended_at
    assert task.due_at == first.ended_at + 30 * 60
    assert task.owner_id == boss.id  # the lead is the boss's, so is the task
    assert task.number_e164 == "+14155550102"
    assert task.contact_id == r1.call.contact_id
    assert r1.callback and r1.callback.kind == "opened"
    assert r2.callback and r2.callback.kind == "joined"
    assert r3.callback and r3.callback.kind == "joined"
    kinds = []
    while inbox.pending():
        kinds.append(inbox.get_nowait().kind)
    assert "callback_opened" in kinds


async def test_task_owner_is_the_contact_owner(store: Store, policy: LeadPolicy) -> None:
    alice, boss = await _reps(store)
    maria = PhoneNumber("+14155550102", "+14155550102")
    await store.add_contact(
        Contact(None, "Maria", owner_id=alice.id, created_at=T0, updated_at=T0, phones=[maria])
    )
    policy = LeadPolicy(own_numbers=policy.own_numbers, default_owner_id=boss.id)
    await Ingest(store, policy).handle(inbound("+14155550102", answered_by=None))
    [task] = await store.list_callbacks()
    assert task.owner_id == alice.id


async def test_outbound_answered_callback_closes_the_task(
    store: Store, ingest: Ingest
) -> None:
    alice, _ = await _reps(store)
    missed = inbound("+14155550102", answered_by=None)
    await ingest.handle(missed)
    await ingest.handle(inbound("+14155550102", answered_by=None, at=T0 + 100))
    # an unanswered attempt does not close it
    await ingest.handle(outbound("4155550102", "+14155550102", answered=False, at=T0 + 200))
    assert len(await store.list_callbacks()) == 1
    back = await ingest.handle(outbound("4155550102", "+14155550102", caller="101",
                                        at=T0 + 900))  # fmt: skip
    assert back.callback and back.callback.kind == "closed"
    assert await store.list_callbacks() == []
    [task] = await store.list_callbacks(status="closed")
    assert task.status == "closed"
    assert task.closed_by_user_id == alice.id
    assert task.closed_by_call == back.call.id
    assert task.time_to_callback == T0 + 900 - missed.ended_at
    assert task.missed_count == 2
    assert task.closed_at == T0 + 903


async def test_inbound_answered_call_closes_the_task_too(store: Store, ingest: Ingest) -> None:
    await _reps(store)
    await ingest.handle(inbound("+14155550102", answered_by=None))
    again = await ingest.handle(inbound("+14155550102", answered_by="101", at=T0 + 600))
    assert again.callback and again.callback.kind == "closed"
    # a new miss after the callback is a new task
    await ingest.handle(inbound("+14155550102", answered_by=None, at=T0 + 7200))
    assert len(await store.list_callbacks()) == 1
    assert len(await store.list_callbacks(status=None)) == 2


async def test_no_task_for_internal_withheld_or_own_numbers(store: Store, ingest: Ingest) -> None:
    await ingest.handle(internal())
    await ingest.handle(inbound("anonymous", answered_by=None))
    await ingest.handle(inbound("5551002", answered_by=None))
    assert await store.list_callbacks(status=None) == []


async def test_out_of_order_ingest_opens_the_task_closed(store: Store, ingest: Ingest) -> None:
    await _reps(store)
    back = await ingest.handle(outbound("4155550102", "+14155550102", at=T0 + 900))
    await ingest.handle(inbound("+14155550102", answered_by=None))
    [task] = await store.list_callbacks(status=None)
    assert task.status == "closed" and task.closed_by_call == back.call.id


async def test_missed_calls_audit_shows_who_called_back(
    store: Store, ingest: Ingest, service: CrmService
) -> None:
    alice, _ = await _reps(store)
    await ingest.handle(inbound("+14155550102", answered_by=None))
    await ingest.handle(inbound("+14155550103", answered_by=None, at=T0 + 10))
    await ingest.handle(inbound("+14155550104", answered_by="101", at=T0 + 20))
    await ingest.handle(outbound("4155550102", "+14155550102", at=T0 + 120))
    page = await service.missed_calls_audit(limit=1)
    assert len(page.items) == 1 and page.next_cursor
    rest = await service.missed_calls_audit(limit=10, cursor=page.next_cursor)
    rows = page.items + rest.items
    assert [r.call.caller for r in rows] == ["+14155550103", "+14155550102"]
    assert rows[0].task_status == "open"
    assert rows[1].task_status == "closed"
    assert rows[1].closed_by_user_id == alice.id
    assert rows[1].time_to_callback == 120 - 15
    assert rows[1].call.rang == ("101", "102")


async def test_open_callbacks_for_a_user(store: Store, service: CrmService) -> None:
    alice, boss = await _reps(store)
    policy = LeadPolicy(default_owner_id=boss.id)
    ingest = Ingest(store, policy)
    maria = PhoneNumber("+14155550102", "+14155550102")
    await store.add_contact(
        Contact(None, "Maria", owner_id=alice.id, created_at=T0, updated_at=T0, phones=[maria])
    )
    await ingest.handle(inbound("+14155550102", answered_by=None))
    await ingest.handle(inbound("+14155550109", answered_by=None))
    assert [t.number_e164 for t in await service.open_callbacks(alice.id)] == ["+14155550102"]
    assert [t.number_e164 for t in await service.open_callbacks(boss.id)] == ["+14155550109"]
    assert len(await service.open_callbacks()) == 2
