"""Callbacks as a rep's work (crm/callback_work.py), on both engines: who gets an unowned
task, who sees it, claim / attempt / snooze / close, the overdue signal, the follow-up a
wrap-up sets, and note edits."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from crm import wrapup
from crm.callback_work import CallbackWork
from crm.errors import Forbidden, InvalidInput, NotFound
from crm.events import EventBus
from crm.ingest import Ingest
from crm.models import User
from crm.services import CrmService
from crm.store import Store, open_store

from .conftest import Clock
from .factories import T0, inbound, outbound


@dataclass
class Office:
    alice: User  # rep, team A, ext 101
    bob: User  # rep, team A, ext 102
    carol: User  # rep, team B, ext 103
    mona: User  # manager, team A
    root: User  # admin


async def _office(service: CrmService) -> Office:
    a = await service.create_team("Team A", "admin")
    b = await service.create_team("Team B", "admin")
    mk = service.create_user
    return Office(
        await mk("alice", "Alice Adams", "password1", "rep", ["101"], a.id),
        await mk("bob", "Bob Brown", "password1", "rep", ["102"], a.id),
        await mk("carol", "Carol Chen", "password1", "rep", ["103"], b.id),
        await mk("mona", "Mona Manager", "password1", "manager", [], a.id),
        await mk("root", "Root Admin", "password1", "admin", []),
    )


def _kinds(sub: object) -> list[str]:
    out = []
    while sub.pending():  # type: ignore[attr-defined]
        out.append(sub.get_nowait().kind)  # type: ignore[attr-defined]
    return out


async def test_unowned_callbacks_go_to_the_least_loaded_rung_rep(
    service: CrmService, ingest: Ingest
) -> None:
    o = await _office(service)
    # three unknown callers ring 101 and 102: the tasks alternate between alice and bob
    for i, n in enumerate(("+14155550301", "+14155550302", "+14155550303")):
        await ingest.handle(inbound(n, answered_by=None, at=T0 + i))
    owners = [t.owner_id for t in await service.list_callbacks()]
    assert sorted(owners) == sorted([o.alice.id, o.alice.id, o.bob.id])
    # a call that rang only carol's phone is carol's
    await ingest.handle(inbound("+14155550304", answered_by=None, rang=("103",), at=T0 + 9))
    [task] = [t for t in await service.list_callbacks() if t.number_e164 == "+14155550304"]
    assert task.owner_id == o.carol.id


async def test_a_rep_never_rung_does_not_see_an_unowned_callback(
    store: Store, service: CrmService, ingest: Ingest
) -> None:
    o = await _office(service)
    await ingest.handle(inbound("+14155550311", answered_by=None, rang=("101",)))
    [task] = await store.list_callbacks()
    task.owner_id = None  # as tasks were before auto-assignment
    await store.save_callback(task)
    # rang 9999 only (nobody's phone): nobody's, and shown to no rep
    await ingest.handle(inbound("+14155550312", answered_by=None, rang=("9999",), at=T0 + 5))

    async def numbers(user: User) -> list[str | None]:
        scope = await service.scope_for(user)
        return sorted(t.number_e164 for t in await service.open_callbacks(scope=scope))

    assert await numbers(o.alice) == ["+14155550311"]  # it rang her
    assert await numbers(o.bob) == []  # never rung: the "seven" are gone
    assert await numbers(o.carol) == []
    assert await numbers(o.mona) == ["+14155550311"]  # her team was rung
    assert await numbers(o.root) == ["+14155550311", "+14155550312"]
    # the call itself follows its task: bob cannot open alice's missed call either
    [call] = (await service.list_calls(scope=await service.scope_for(o.bob))).items or [None]
    assert call is None
    loaded = await store.get_callback(task.id or 0)
    assert loaded is not None and loaded.rung_user_ids == (o.alice.id,)


async def test_who_a_task_rang_follows_its_calls_however_often_the_number_calls(
    store: Store, store_url: str, service: CrmService, ingest: Ingest
) -> None:
    """Who a task's calls rang (``callback_rang``, migration 0022) decides who sees a task
    nobody owns and who hears of its changes: it grows miss by miss, shrinks when a call
    written again rang fewer phones, and the migration makes it from the calls alike."""
    o = await _office(service)
    n = "+14155550331"

    async def rung() -> tuple[int, ...]:
        [task] = await store.list_callbacks()
        assert task.id is not None
        loaded = await store.get_callback(task.id)
        assert loaded is not None
        return loaded.rung_user_ids

    async def seen_by() -> list[str]:
        [task] = await store.list_callbacks()
        task.owner_id = None
        await store.save_callback(task)
        out = []
        for user in (o.alice, o.bob, o.carol):
            scope = await service.scope_for(user)
            if await service.open_callbacks(scope=scope):
                out.append(user.username)
        return out

    for i in range(40):  # a number that keeps calling: nobody's phone, then alice's
        ring = ("9999",) if i % 2 else ("9999", "101")
        await ingest.handle(inbound(n, answered_by=None, rang=ring, at=T0 + i))
    assert await rung() == (o.alice.id,)
    await ingest.handle(
        inbound(n, answered_by=None, rang=("101", "103"), linkedid="again.1", at=T0 + 90)
    )
    assert await rung() == (o.alice.id, o.carol.id)
    assert await seen_by() == ["alice", "carol"]
    # a resync writes that call again: it rang only 102 after all
    await ingest.handle(inbound(n, answered_by=None, rang=("102",), linkedid="again.1", at=T0 + 90))
    assert await rung() == (o.alice.id, o.bob.id)
    assert await seen_by() == ["alice", "bob"]

    # a database from before 0022: the migration fills the table from the calls
    async with store._use() as c:  # type: ignore[attr-defined]
        await c.execute("DROP TABLE callback_rang")
        await c.execute("DELETE FROM schema_version WHERE version = 22")
    again = await open_store(store_url)
    try:
        [task] = await again.list_callbacks()
        loaded = await again.get_callback(task.id or 0)
        assert loaded is not None and loaded.rung_user_ids == (o.alice.id, o.bob.id)
    finally:
        await again.close()


async def test_claim_attempt_snooze_close(
    store: Store, service: CrmService, ingest: Ingest, bus: EventBus, clock: Clock
) -> None:
    o = await _office(service)
    work = CallbackWork(service, bus)
    await ingest.handle(inbound("+14155550321", answered_by=None, rang=("101", "102")))
    await ingest.handle(inbound("+14155550321", answered_by=None, rang=("101",), at=T0 + 60))
    [task] = await store.list_callbacks()
    assert task.owner_id == o.alice.id and task.missed_count == 2 and task.attempts == 0
    task.owner_id = None
    await store.save_callback(task)
    assert task.id is not None
    alice = await service.scope_for(o.alice)
    mona = await service.scope_for(o.mona)
    sub = bus.subscribe()

    claimed = await work.claim(o.alice, task.id, alice)
    assert claimed.owner_id == o.alice.id
    with pytest.raises(NotFound):  # bob was rung, but it is alice's now: out of his sight
        await work.attempt(o.bob, task.id, await service.scope_for(o.bob), "no_answer")
    with pytest.raises(NotFound):  # carol was never rung
        await work.claim(o.carol, task.id, await service.scope_for(o.carol))

    clock.now += 60
    await work.attempt(o.alice, task.id, alice, "no_answer")
    await work.attempt(o.alice, task.id, alice, "left_message", "voicemail, said 3pm")
    with pytest.raises(InvalidInput):
        await work.attempt(o.alice, task.id, alice, "shrug")
    got = await store.get_callback(task.id)
    assert got is not None and got.status == "open"
    assert got.attempts == 2 and got.missed_count == 2  # two figures, not one
    attempts = await store.callback_attempts([task.id])
    assert [a.result for a in attempts] == ["no_answer", "left_message"]
    assert attempts[1].comment == "voicemail, said 3pm" and attempts[1].user_id == o.alice.id

    with pytest.raises(InvalidInput):
        await work.snooze(o.alice, task.id, alice, clock.now - 1)
    await work.snooze(o.alice, task.id, alice, clock.now + 7200)
    got = await store.get_callback(task.id)
    assert got is not None and got.snoozed_until == clock.now + 7200

    done = await work.close(o.mona, task.id, mona, "not_needed")  # her team's manager
    assert done.status == "closed" and done.close_reason == "not_needed"
    assert done.closed_by_user_id == o.mona.id
    with pytest.raises(InvalidInput):
        await work.close(o.alice, task.id, alice, "other")
    assert _kinds(sub) == ["callback_updated"] * 4 + ["callback_closed"]
    actions = [e.action for e in await service.list_audit()]
    for action in ("callback.claimed", "callback.attempt", "callback.snoozed", "callback.closed"):
        assert action in actions


async def test_reached_closes_and_a_later_answered_call_still_closes(
    store: Store, service: CrmService, ingest: Ingest, bus: EventBus
) -> None:
    o = await _office(service)
    work = CallbackWork(service, bus)
    await ingest.handle(inbound("+14155550331", answered_by=None))
    await ingest.handle(inbound("+14155550332", answered_by=None, at=T0 + 1))
    first, second = await store.list_callbacks()
    scope = await service.scope_for(o.root)
    reached = await work.attempt(o.root, first.id or 0, scope, "reached")
    assert reached.status == "closed" and reached.close_reason == "reached"
    assert reached.attempts == 1
    # the automatic close by an answered call is untouched
    back = await ingest.handle(outbound("4155550332", "+14155550332", caller="101", at=T0 + 600))
    assert back.callback is not None and back.callback.kind == "closed"
    got = await store.get_callback(second.id or 0)
    assert got is not None and got.status == "closed" and got.close_reason == "called_back"


async def test_overdue_is_signalled_once_and_again_after_a_snooze(
    store: Store, service: CrmService, ingest: Ingest, bus: EventBus, clock: Clock
) -> None:
    o = await _office(service)
    work = CallbackWork(service, bus)
    await ingest.handle(inbound("+14155550341", answered_by=None))
    [task] = await store.list_callbacks()
    sub = bus.subscribe()
    clock.now = task.due_at - 1
    assert await work.signal_overdue() == []
    clock.now = task.due_at + 1
    [late] = await work.signal_overdue()
    assert late.id == task.id and late.owner_id == o.alice.id
    assert await work.signal_overdue() == []  # once
    event = sub.get_nowait()
    assert event.kind == "callback_overdue" and event.user_ids == frozenset({o.alice.id})
    scope = await service.scope_for(o.alice)
    await work.snooze(o.alice, task.id or 0, scope, clock.now + 600)
    clock.now += 300
    assert await work.signal_overdue() == []  # snoozed
    clock.now += 301
    assert [t.id for t in await work.signal_overdue()] == [task.id]


async def test_a_wrapup_follow_up_becomes_a_task(
    store: Store, service: CrmService, ingest: Ingest, bus: EventBus, clock: Clock
) -> None:
    o = await _office(service)
    work = CallbackWork(service, bus)
    call = (await ingest.handle(inbound("+14155550351", answered_by="101"))).call
    settings = wrapup.WrapupSettings()
    with pytest.raises(InvalidInput):
        await wrapup.save(service, work, o.alice, call, settings, result="Made up")
    with pytest.raises(InvalidInput):
        await wrapup.save(service, work, o.alice, call, settings, follow_up_at=clock.now + 60)
    saved = await wrapup.save(
        service, work, o.alice, call, settings, result="Call back later",
        comment="wants the quote", follow_up_at=clock.now + 86400,
    )  # fmt: skip
    assert saved.note.result == "Call back later" and saved.note.author_id == o.alice.id
    assert saved.follow_up is not None
    [task] = await store.list_callbacks(owner_id=o.alice.id)
    assert task.kind == "follow_up" and task.due_at == clock.now + 86400
    assert task.missed_count == 0 and task.number_e164 == "+14155550351"
    # a second follow-up moves the same task (one open task per number)
    await wrapup.save(service, work, o.alice, call, settings, result="Interested",
                      follow_up_at=clock.now + 3600)  # fmt: skip
    [task] = await store.list_callbacks(owner_id=o.alice.id)
    assert task.due_at == clock.now + 3600
    # per-team results
    team = wrapup.WrapupSettings(team_results={o.alice.team_id or 0: ("Demo booked",)})
    assert team.results_for(o.alice) == ("Demo booked",)
    assert team.results_for(o.carol) == wrapup.DEFAULT_RESULTS


async def test_notes_are_edited_by_their_author_or_a_manager(
    service: CrmService, ingest: Ingest
) -> None:
    o = await _office(service)
    call = (await ingest.handle(inbound("+14155550361", answered_by="101"))).call
    note = await service.add_note(call.id or 0, o.alice.id, "", "Interested", "first words")
    with pytest.raises(NotFound):  # not his call
        await service.edit_note(o.carol, note.id or 0, comment="mine now")
    bob_call = (await ingest.handle(inbound("+14155550362", answered_by="102"))).call
    bobs = await service.add_note(bob_call.id or 0, o.bob.id, "", "", "bob's")
    managers = await service.add_note(call.id or 0, o.mona.id, "", "", "coach's remark")
    with pytest.raises(Forbidden):  # alice sees the call, but the note is the manager's
        await service.edit_note(o.alice, managers.id or 0, comment="x")
    edited = await service.edit_note(o.alice, note.id or 0, "", "Sale", "second words")
    assert edited.comment == "second words" and edited.updated_by == o.alice.id
    await service.edit_note(o.mona, bobs.id or 0, "", "", "fixed by the manager")
    [entry, first] = await service.list_audit(action="note.edited")
    assert first.actor == "alice"
    assert first.detail["before"] == {"topic": "", "result": "Interested", "comment": "first words"}
    assert entry.actor == "mona" and entry.detail["before"]["comment"] == "bob's"
    stored = (await service.notes(call.id or 0))[0]
    assert stored.comment == "second words" and stored.updated_at is not None
