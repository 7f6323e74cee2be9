"""Who sees what: reps their own work, managers their team's, admins everything; shared
(unowned) contacts and callbacks for all.  Both engines."""

from __future__ import annotations

from dataclasses import dataclass

from crm.access import Scope, can_see_contact
from crm.ingest import Ingest
from crm.models import Contact, PhoneNumber, User
from crm.services import CrmService
from crm.store import Store

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


async def test_scope_per_role(service: CrmService) -> None:
    o = await _office(service)
    assert (await service.scope_for(o.alice)).user_ids == {o.alice.id}
    assert (await service.scope_for(o.mona)).user_ids == {o.alice.id, o.bob.id, o.mona.id}
    assert (await service.scope_for(o.root)).user_ids is None
    lone = await service.create_user("lone", "Lone Manager", "password1", "manager", [])
    assert (await service.scope_for(lone)).user_ids == {lone.id}


async def test_calls_list_is_scoped(service: CrmService, ingest: Ingest) -> None:
    o = await _office(service)
    a_call = (await ingest.handle(inbound("+14155550111", answered_by="101"))).call
    b_call = (await ingest.handle(inbound("+14155550112", answered_by="102", at=T0 + 60))).call
    c_call = (await ingest.handle(outbound("4155550113", "+14155550113", caller="103",
                                           at=T0 + 120))).call  # fmt: skip

    def ids(page: object) -> set[int | None]:
        return {c.id for c in page.items}  # type: ignore[attr-defined]

    rep = await service.scope_for(o.alice)
    mgr = await service.scope_for(o.mona)
    assert ids(await service.list_calls(scope=rep)) == {a_call.id}
    assert ids(await service.list_calls(scope=mgr)) == {a_call.id, b_call.id}
    assert ids(await service.list_calls(scope=await service.scope_for(o.root))) == {
        a_call.id, b_call.id, c_call.id,
    }  # fmt: skip
    assert await service.can_see_call(mgr, b_call)
    assert not await service.can_see_call(mgr, c_call)


async def test_missed_call_is_visible_to_the_callback_owner(
    store: Store, service: CrmService, ingest: Ingest
) -> None:
    o = await _office(service)
    phone = PhoneNumber("x", "+14155550120")
    await store.add_contact(Contact(None, "Known", owner_id=o.bob.id, phones=[phone]))
    missed = (await ingest.handle(inbound("+14155550120", answered_by=None))).call
    assert missed.user_id is None  # nobody answered: no rep on the call itself
    bob, carol = await service.scope_for(o.bob), await service.scope_for(o.carol)
    assert [r.call.id for r in (await service.missed_calls_audit(scope=bob)).items] == [missed.id]
    assert (await service.missed_calls_audit(scope=carol)).items == []
    assert [c.id for c in (await service.list_calls(scope=bob)).items] == [missed.id]
    assert await service.can_see_call(bob, missed)
    assert not await service.can_see_call(carol, missed)


async def test_contacts_scoped_with_shared_ones(service: CrmService) -> None:
    o = await _office(service)
    mine = await service.create_contact("Acme Alice", phones=["4155550131"], owner_id=o.alice.id)
    bobs = await service.create_contact("Acme Bob", phones=["4155550132"], owner_id=o.bob.id)
    shared = await service.create_contact("Acme Shared", phones=["4155550133"])
    rep = await service.scope_for(o.alice)
    assert {c.id for c in await service.search_contacts("acme", scope=rep)} == {mine.id, shared.id}
    assert {c.id for c in await service.list_contacts(scope=rep)} == {mine.id, shared.id}
    mgr = await service.scope_for(o.mona)
    assert {c.id for c in await service.search_contacts("acme", scope=mgr)} == {
        mine.id, bobs.id, shared.id,
    }  # fmt: skip
    # a number search does not leak a colleague's contact to a rep
    assert await service.search_contacts("(415) 555-0132", scope=rep) == []
    assert can_see_contact(rep, shared) and can_see_contact(rep, mine)
    assert not can_see_contact(rep, bobs)
    assert can_see_contact(None, bobs) and can_see_contact(Scope(None), bobs)


async def test_callbacks_scoped_by_owner(service: CrmService, ingest: Ingest) -> None:
    o = await _office(service)
    await service.create_contact("A", phones=["4155550141"], owner_id=o.alice.id)
    await service.create_contact("C", phones=["4155550143"], owner_id=o.carol.id)
    await ingest.handle(inbound("+14155550141", answered_by=None))
    await ingest.handle(inbound("+14155550143", answered_by=None, at=T0 + 10))
    # a new lead, no owner: the task goes to a rep it rang (101 alice, 102 bob), the one
    # with fewer open callbacks (bob)
    await ingest.handle(inbound("+14155550144", answered_by=None, at=T0 + 20))
    mgr = await service.scope_for(o.mona)
    owners = [t.owner_id for t in await service.open_callbacks(scope=mgr)]
    assert sorted(owners, key=lambda x: x or 0) == [o.alice.id, o.bob.id]
    everyone = await service.list_callbacks(scope=await service.scope_for(o.root))
    assert len(everyone) == 3


async def test_relink_call_to_another_contact_sharing_the_number(
    store: Store, service: CrmService, ingest: Ingest
) -> None:
    older = await service.create_contact("Old Office", phones=["+14155550150"])
    newer = await service.create_contact("New Desk", phones=["+14155550150"])
    await store.touch_contact(newer.id, T0 - 100)  # most recently in contact
    result = await ingest.handle(inbound("+14155550150"))
    assert result.call.contact_id == newer.id
    assert result.call.match_reason == "most_recent_of_2"
    call = await service.relink_call(result.call.id, older.id, "alice")
    assert call.contact_id == older.id and call.match_reason == "manual"
    [entry] = await service.list_audit(action="call.relinked")
    assert entry.actor == "alice" and entry.detail == {"from": newer.id, "to": older.id}
    # a replay of the same call keeps the user's choice
    again = await ingest.handle(inbound("+14155550150", linkedid=result.call.linkedid))
    assert again.call.contact_id == older.id and again.call.match_reason == "manual"
