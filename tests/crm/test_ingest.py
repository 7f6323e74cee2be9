"""Finished calls in: one row per linkedid, matched to the right contact and rep."""

from __future__ import annotations

import dataclasses

from ami_bridge.facts import CallProgress, OriginateResult
from crm.events import EventBus
from crm.ingest import Ingest, LiveCall
from crm.models import CallFilter, Contact, PhoneNumber, User
from crm.store import Store

from .factories import T0, inbound, internal, outbound


async def _contact(store: Store, name: str, number: str, last: float | None = None) -> Contact:
    return await store.add_contact(
        Contact(None, name, phones=[PhoneNumber(number, number)], created_at=T0,
                updated_at=T0, last_contact_at=last)
    )  # fmt: skip


async def _users(store: Store) -> tuple[User, User, User]:
    a = await store.add_user(User(None, "alice", "Alice Adams", "rep", ["101"]), T0)
    b = await store.add_user(User(None, "bob", "Bob Brown", "rep", ["102"]), T0)
    c = await store.add_user(User(None, "carol", "Carol Chen", "rep", ["103"]), T0)
    return a, b, c


async def test_same_call_twice_is_one_row(store: Store, ingest: Ingest) -> None:
    rec = inbound()
    first = await ingest.handle(rec)
    second = await ingest.handle(rec)
    assert first.created and not second.created
    assert first.call.id == second.call.id
    assert await store.count_calls() == 1


async def test_updated_version_after_resync_changes_the_same_row(
    store: Store, ingest: Ingest
) -> None:
    partial = inbound(complete=False, talk_seconds=3.0, recordings=())
    await ingest.handle(partial)
    full = dataclasses.replace(partial, complete=True, talk_seconds=8.0,
                               recordings=("/var/spool/asterisk/monitor/a.wav",))  # fmt: skip
    await ingest.handle(full)
    [call] = await store.list_calls(CallFilter())
    assert call.complete and call.talk_seconds == 8.0
    assert call.recordings == ("/var/spool/asterisk/monitor/a.wav",)
    assert len(call.recording_ids) == 1
    assert await store.count_calls() == 1
    assert await store.count_contacts() == 1  # one lead, not two


async def test_every_callrecord_field_is_kept(store: Store, ingest: Ingest) -> None:
    from ami_bridge.facts import Transfer

    rec = inbound(
        transfers=(Transfer("blind", "101", "102", T0 + 6),),
        queue="support",
        hangup_cause=16,
        uniqueids=("1.1", "1.2"),
        caller_name="John Smith",
        originate_id="c2c-9",
    )
    result = await ingest.handle(rec)
    call = await store.get_call(result.call.id)
    assert call is not None
    for f in dataclasses.fields(rec):
        assert getattr(call, f.name) == getattr(rec, f.name), f.name


async def test_match_unique_and_rep(store: Store, ingest: Ingest) -> None:
    alice, _, _ = await _users(store)
    john = await _contact(store, "John", "+14155550199")
    result = await ingest.handle(inbound("+14155550199", answered_by="101"))
    assert result.call.contact_id == john.id
    assert result.call.match_reason == "unique"
    assert result.call.user_id == alice.id
    assert result.lead_created is None
    got = await store.get_contact(john.id)
    assert got is not None and got.last_contact_at == T0


async def test_final_agent_wins_over_answered_by(store: Store, ingest: Ingest) -> None:
    _, bob, _ = await _users(store)
    result = await ingest.handle(inbound(answered_by="101", final_agent="102"))
    assert result.call.user_id == bob.id


async def test_shared_number_links_most_recent_contact(store: Store, ingest: Ingest) -> None:
    await _contact(store, "Reception", "+14155550100", last=T0 - 86400)
    recent = await _contact(store, "Direct", "+14155550100", last=T0 - 60)
    await _contact(store, "Never", "+14155550100")
    result = await ingest.handle(inbound("+14155550100"))
    assert result.call.contact_id == recent.id
    assert result.call.match_reason == "most_recent_of_3"


async def test_outbound_matches_callee_and_caller_rep(store: Store, ingest: Ingest) -> None:
    _, _, carol = await _users(store)
    bob_co = await _contact(store, "Bob Co", "+14155550123")
    result = await ingest.handle(outbound(caller="103", originate_id="c2c-0001"))
    assert result.call.contact_id == bob_co.id
    assert result.call.user_id == carol.id
    assert result.call.remote_e164 == "+14155550123"


async def test_internal_call_matches_nobody(store: Store, ingest: Ingest) -> None:
    await _users(store)
    await _contact(store, "Someone", "+14155550199")
    result = await ingest.handle(internal())
    assert result.call.contact_id is None
    assert result.call.match_reason == "internal"
    assert await store.count_contacts() == 1


async def test_recorded_event_reaches_the_rep(store: Store, ingest: Ingest, bus: EventBus) -> None:
    alice, _, _ = await _users(store)
    mine = bus.subscribe(user_ids=[alice.id])
    theirs = bus.subscribe(extensions=["103"])
    await ingest.handle(inbound(answered_by="101"))
    event = mine.get_nowait()
    assert event.kind == "call_recorded"
    assert event.payload.call.user_id == alice.id
    assert theirs.pending() == 0


async def test_progress_names_the_caller_for_the_ringing_phones(
    store: Store, ingest: Ingest, bus: EventBus
) -> None:
    john = await _contact(store, "John Smith", "+14155550199")
    phone_101 = bus.subscribe(extensions=["101"])
    phone_103 = bus.subscribe(extensions=["103"])
    manager = bus.subscribe()
    progress = CallProgress(
        linkedid="x.1", state="ringing", direction="inbound", caller="+14155550199",
        caller_name=None, callee="5551000", did="5551000", ringing=("101", "102"),
        answered_by=None, at=T0,
    )  # fmt: skip
    live = await ingest.handle(progress)
    assert isinstance(live, LiveCall)
    assert live.contact_id == john.id and live.contact_name == "John Smith"
    assert phone_101.get_nowait().payload == live
    assert manager.pending() == 1
    assert phone_103.pending() == 0
    assert await store.count_calls() == 0  # live updates write nothing


async def test_originate_result_is_broadcast(ingest: Ingest, bus: EventBus) -> None:
    sub = bus.subscribe(extensions=["101"])
    result = OriginateResult("c2c-1", True, 4, "Success", "PJSIP/103-1", "1.1", T0)
    await ingest.handle(result)
    assert sub.get_nowait().payload is result
