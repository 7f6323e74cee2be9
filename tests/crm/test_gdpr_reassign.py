"""GDPR erasure (personal data and recordings go, anonymous statistics stay, audited) and
handing a rep's contacts and open callbacks to someone else in one step.  Both engines."""

from __future__ import annotations

import pytest

from crm.ingest import Ingest
from crm.models import CallbackAttempt, CallFilter
from crm.services import CrmService, InvalidInput, NotFound
from crm.store import Store

from .factories import T0, inbound, outbound


async def test_erase_removes_personal_data_and_returns_recordings(
    store: Store, service: CrmService, ingest: Ingest
) -> None:
    alice = await service.create_user("alice", "Alice Adams", "password1", "rep", ["101"])
    john = await service.create_contact("John Smith", company="Acme", email="j@acme.test",
                                        phones=["+14155550199"], custom={"vat": "X1"})  # fmt: skip
    answered = await ingest.handle(inbound("+14155550199", caller_name="John Smith", at=T0))
    await ingest.handle(inbound("+14155550199", answered_by=None, at=T0 + 100))
    called = await ingest.handle(outbound("4155550199", "+14155550199", at=T0 + 200))
    await service.add_note(answered.call.id, alice.id, "pricing", "call back", "wife is Ann")
    [task] = await store.list_callbacks(status=None)
    await store.add_callback_attempt(
        CallbackAttempt(None, task.id, alice.id, T0 + 150, "left_message", "asked for Ann")
    )
    paths = sorted([*answered.call.recordings, *called.call.recordings])
    assert len(paths) == 2

    removed = await service.erase_contact(john.id, "dpo")
    assert sorted(p for _, p in removed) == paths
    with pytest.raises(NotFound):
        await service.get_contact(john.id)
    assert await store.contacts_by_e164("+14155550199") == []
    assert await service.search_contacts("John") == []
    calls = await store.list_calls(CallFilter())
    assert len(calls) == 3  # the statistics stay
    for call in calls:
        text = repr(call)
        assert "4155550199" not in text and "John" not in text
        assert call.recordings == () and call.contact_id is None
        assert call.match_reason == "erased"
    assert sorted(c.outcome for c in calls) == ["answered", "answered", "missed"]
    assert sum(c.talk_seconds for c in calls) == 8.0 + 5.0
    [note] = await store.notes_for_call(answered.call.id)
    assert (note.topic, note.result, note.comment) == ("", "", "")
    assert await store.list_callbacks(status="open") == []
    [attempt] = await store.callback_attempts([task.id])
    assert attempt.comment == "" and attempt.result == "left_message"  # the figure stays
    [entry] = await service.list_audit(action="contact.erased")
    assert entry.actor == "dpo" and entry.detail == {"recordings": len(removed)}
    # a replay of the same traffic does not bring the person back
    await ingest.handle(inbound("+14155550199", at=T0, linkedid=answered.call.linkedid))
    assert await store.contacts_by_e164("+14155550199") == []


async def test_reassign_moves_contacts_and_open_callbacks(
    store: Store, service: CrmService, ingest: Ingest
) -> None:
    leaving = await service.create_user("bob", "Bob Brown", "password1", "rep", ["102"])
    heir = await service.create_user("carol", "Carol Chen", "password1", "rep", ["103"])
    other = await service.create_user("dave", "Dave Doe", "password1", "rep", ["104"])
    a = await service.create_contact("A", phones=["4155550501"], owner_id=leaving.id)
    b = await service.create_contact("B", phones=["4155550502"], owner_id=leaving.id)
    c = await service.create_contact("C", phones=["4155550503"], owner_id=other.id)
    await ingest.handle(inbound("+14155550501", answered_by=None, at=T0))  # open task for bob
    await ingest.handle(inbound("+14155550502", answered_by=None, at=T0 + 10))
    await ingest.handle(outbound("4155550502", "+14155550502", caller="102", at=T0 + 60))  # closed

    moved = await service.reassign(leaving.id, heir.id, "mona")
    assert moved == (2, 1)
    assert (await store.get_contact(a.id)).owner_id == heir.id
    assert (await store.get_contact(b.id)).owner_id == heir.id
    assert (await store.get_contact(c.id)).owner_id == other.id
    assert [t.number_e164 for t in await service.open_callbacks(heir.id)] == ["+14155550501"]
    # the closed task keeps its history: bob owned it and closed it
    [closed] = await store.list_callbacks(status="closed")
    assert closed.owner_id == leaving.id and closed.closed_by_user_id == leaving.id
    [entry] = await service.list_audit(action="user.reassigned")
    assert entry.detail == {"to": heir.id, "contacts": 2, "callbacks": 1}
    await service.deactivate_user(other.id, "root")
    with pytest.raises(InvalidInput):
        await service.reassign(heir.id, other.id, "mona")  # not to an inactive user
    assert (await store.get_contact(a.id)).owner_id == heir.id
