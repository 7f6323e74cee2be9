"""Issue 15, part B in the store and services, on SQLite and PostgreSQL: conversion time
and the lead's history, lead statistics, partial-number search on calls (both of its
plans), and handover (the preview's split is what moves)."""

from __future__ import annotations

import pytest

from crm.access import Scope
from crm.errors import Forbidden, InvalidInput, NotFound
from crm.ingest import Ingest
from crm.lead_stats import csv_rows
from crm.models import CallFilter
from crm.phones import number_fragment, number_search
from crm.services import CrmService
from crm.store import Store

from .conftest import Clock
from .factories import inbound


async def _users(service: CrmService) -> tuple:  # type: ignore[type-arg]
    team = await service.create_team("East", "test")
    other = await service.create_team("West", "test")
    maria = await service.create_user("maria", "Maria", "pw-long-enough-1", "manager")
    alice = await service.create_user("alice", "Alice", "pw-long-enough-1", "rep", ["101"])
    carol = await service.create_user("carol", "Carol", "pw-long-enough-1", "rep", ["103"])
    bob = await service.create_user("bob", "Bob", "pw-long-enough-1", "rep", ["102"])
    for u, t in ((maria, team), (alice, team), (carol, team), (bob, other)):
        await service.set_team(u.id or 0, t.id, "test")
    maria = await service.store.get_user(maria.id or 0)
    return maria, alice, carol, bob


def test_the_number_rules() -> None:
    assert number_fragment("555 0199") == "5550199"
    assert number_fragment("020 7946") == "207946"  # trunk prefix: not in E.164
    assert number_fragment("0044 20") == "4420"
    assert number_fragment("Acme 12") is None and number_fragment("123") is None
    assert number_search("+1 415 555 0199", "US") == ("+14155550199", None)
    assert number_search("555 0199", "US") == (None, "5550199")


async def test_conversion_time_history_and_statistics(
    service: CrmService, store: Store, clock: Clock
) -> None:
    maria, alice, carol, bob = await _users(service)
    t0 = clock.now
    lead = await service.create_contact("+1 415 (x)", "", "", [], owner_id=alice.id,
                                        lead_status="new")  # fmt: skip
    await service.create_contact("B", "", "", [], owner_id=bob.id, lead_status="new")
    await service.create_contact("U", "", "", [], lead_status="new")
    await service.create_contact("Customer", "", "", [], owner_id=alice.id)  # not a lead
    clock.now = t0 + 60
    await service.set_lead_status(lead.id or 0, "contacted", "alice")
    clock.now = t0 + 3 * 3600
    done = await service.convert_lead(
        lead.id or 0, "alice", name="Linus", company="Caltech", owner_id=carol.id
    )
    assert (done.name, done.company, done.owner_id) == ("Linus", "Caltech", carol.id)
    with pytest.raises(InvalidInput):
        await service.convert_lead(lead.id or 0, "alice")  # already a customer
    history = await service.lead_history(lead.id or 0)
    assert [(e.action, e.actor, e.detail["to"]) for e in history] == [
        ("lead.converted", "alice", "converted"),
        ("lead.status", "alice", "contacted"),
    ]
    assert history[0].at == t0 + 3 * 3600 and history[0].detail["name"] == "Linus"
    timeline = await service.contact_timeline(lead.id or 0)
    assert [i.kind for i in timeline] == ["lead", "lead"]

    everything = await service.lead_stats(t0 - 1, t0 + 10)
    assert everything.total.leads == 3 and everything.total.converted == 1
    assert everything.by_source["manual"].mean_conversion_seconds == 3 * 3600
    assert everything.by_source["missed_call"].leads == 0  # every source is listed
    assert set(everything.by_rep) == {carol.id, bob.id, None}
    team = await service.lead_stats(t0 - 1, t0 + 10, await service.scope_for(maria))
    assert team.total.leads == 1 and set(team.by_rep) == {carol.id}
    assert (await service.lead_stats(t0 + 5, t0 + 10)).total.leads == 0
    rows = csv_rows(everything, {carol.id or 0: "Carol", bob.id or 0: "Bob"})
    assert rows[-1] == ["total", "", "3", "1", "33.3", "3.0"]
    assert ["rep", "unassigned", "1", "0", "0.0", ""] in rows
    # back from converted: the conversion time goes with it
    await service.set_lead_status(lead.id or 0, "qualified", "maria")
    assert (await service.lead_stats(t0 - 1, t0 + 10)).total.converted == 0


async def test_part_of_a_number_on_calls_both_plans(
    ingest: Ingest, service: CrmService, store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    numbers = ["+14155550100", "+14155550101", "+442079460000", "+14155550100"]
    for i, n in enumerate(numbers):
        await ingest.record(inbound(n, at=clock.now - 100 + i))
    got = await service.list_calls(CallFilter(number_digits="5550100"))
    assert [c.remote_e164 for c in got.items] == ["+14155550100", "+14155550100"]
    assert len((await service.list_calls(CallFilter(number_digits="41555501"))).items) == 3
    assert (await service.list_calls(CallFilter(number_digits="999999"))).items == []
    # many numbers match: the other plan (walk the newest calls with the pattern), same answer
    monkeypatch.setattr(type(store), "NUMBERS_PER_SEARCH", 1)
    walked = await service.list_calls(CallFilter(number_digits="41555501"), limit=2)
    assert [c.remote_e164 for c in walked.items] == ["+14155550100", "+14155550101"]
    rest = await service.list_calls(
        CallFilter(number_digits="41555501"), limit=2, cursor=walked.next_cursor
    )
    assert [c.remote_e164 for c in rest.items] == ["+14155550100"]
    scoped = await service.list_calls(CallFilter(number_digits="2079"), scope=Scope(frozenset()))
    assert scoped.items == []
    with pytest.raises(InvalidInput):
        await service.list_calls(CallFilter(number_digits="12"))


async def test_handover_moves_what_the_preview_said(
    ingest: Ingest, service: CrmService, store: Store, clock: Clock
) -> None:
    maria, alice, carol, bob = await _users(service)
    admin = await service.create_user("root", "Root", "pw-long-enough-1", "admin")
    for i in range(7):
        await service.create_contact(f"C{i}", "", "", [], owner_id=alice.id,
                                     lead_status="new" if i % 2 else None)  # fmt: skip
    await ingest.record(inbound("+14155550142", answered_by=None, at=clock.now - 10))
    [task] = await service.list_callbacks(None, "open")
    task.owner_id = alice.id
    await store.save_callback(task)
    plan = await service.handover_plan(maria, alice.id or 0, [carol.id or 0, maria.id or 0])
    assert (plan.contacts, plan.leads, plan.callbacks) == (4, 3, 1)
    assert {s.user_id for s in plan.shares} == {carol.id, maria.id}
    with pytest.raises(NotFound):  # bob is not in maria's team
        await service.handover_plan(maria, bob.id or 0, [carol.id or 0])
    with pytest.raises(InvalidInput):
        await service.handover_plan(maria, alice.id or 0, [bob.id or 0])
    with pytest.raises(InvalidInput):
        await service.handover_plan(maria, alice.id or 0, [alice.id or 0])
    with pytest.raises(Forbidden):
        await service.handover(carol, alice.id or 0, [carol.id or 0])
    done = await service.handover(maria, alice.id or 0, [carol.id or 0, maria.id or 0])
    assert done.shares == plan.shares
    contacts = await service.list_contacts(limit=100)
    got = {uid: sum(1 for c in contacts if c.owner_id == uid) for uid in (carol.id, maria.id)}
    assert got == {s.user_id: s.contacts + s.leads for s in plan.shares}
    assert all(c.owner_id != alice.id for c in contacts)
    moved = await store.get_callback(task.id or 0)
    assert moved is not None and moved.owner_id in (carol.id, maria.id)
    [entry] = await service.list_audit(action="user.handover")
    assert entry.detail["from"] == "alice" and entry.detail["to"] == ["carol", "maria"]
    assert entry.detail["contacts"] == 7 and entry.detail["callbacks"] == 1
    # an admin may hand over across teams
    await service.handover(admin, carol.id or 0, [bob.id or 0])
    assert all(c.owner_id != carol.id for c in await service.list_contacts(limit=100))
