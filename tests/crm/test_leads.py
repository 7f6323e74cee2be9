"""Lead policy: who becomes a lead, how it is named, who owns it."""

from __future__ import annotations

import dataclasses

import pytest

from crm.ingest import Ingest
from crm.leads import lead_name, wants_lead
from crm.models import User
from crm.policy import LeadPolicy
from crm.store import Store

from .conftest import Clock
from .factories import T0, inbound, internal, outbound


def _ingest(store: Store, clock: Clock, **policy: object) -> Ingest:
    base = LeadPolicy(own_numbers=("5551000", "5551002", "5552000"))
    return Ingest(store, dataclasses.replace(base, **policy), clock=clock)


async def test_unknown_caller_becomes_a_lead_owned_by_who_answered(
    store: Store, clock: Clock
) -> None:
    alice = await store.add_user(User(None, "alice", "Alice", "rep", ["101"]), T0)
    result = await _ingest(store, clock).handle(inbound("+14155550199", answered_by="101"))
    lead = result.lead_created
    assert lead is not None and lead.lead is not None
    assert lead.owner_id == alice.id
    assert lead.lead.status == "new" and lead.lead.source == "inbound_call"
    assert lead.phones[0].e164 == "+14155550199"
    assert result.call.contact_id == lead.id and result.call.match_reason == "new_lead"


async def test_missed_lead_goes_to_the_default_owner_with_a_useful_name(
    store: Store, clock: Clock
) -> None:
    boss = await store.add_user(User(None, "boss", "Boss", "manager", []), T0)
    at = 1_795_341_315.0  # 22 Nov 2026 09:55:15 UTC
    result = await _ingest(store, clock, default_owner_id=boss.id).handle(
        inbound("+14155550199", answered_by=None, at=at)
    )
    lead = result.lead_created
    assert lead is not None and lead.lead is not None
    assert lead.owner_id == boss.id
    assert lead.lead.source == "missed_call"
    assert lead.name == "+1 415-555-0199 (missed call, 22 Nov 09:55)"


def test_lead_name_uses_caller_id_name_and_timezone() -> None:
    policy = LeadPolicy(display_tz="Europe/Berlin")
    rec = inbound("+442079460958", caller_name="Maria Garcia", at=1_795_341_315.0)
    assert lead_name("+442079460958", rec, policy) == (
        "Maria Garcia · +44 20 7946 0958 (inbound call, 22 Nov 10:55)"
    )
    anon = inbound("+442079460958", caller_name="+442079460958", at=1_795_341_315.0)
    assert lead_name("+442079460958", anon, policy).startswith("+44 20 7946 0958 (")


async def test_outbound_to_unknown_number_is_a_lead_on_every_call(
    store: Store, clock: Clock
) -> None:
    result = await _ingest(store, clock).handle(outbound())
    assert result.lead_created is not None
    assert result.lead_created.lead is not None
    assert result.lead_created.lead.source == "outbound_call"


def test_a_click_the_rep_never_took_is_no_lead_whoever_reports_it() -> None:
    """The tracker knows the click by its Originate; the PBX's CDR only by the rep's own
    phone being the one that rang.  A call the carrier failed is still a lead."""
    policy = LeadPolicy()
    by_tracker = outbound(answered=False, outcome="failed", originate_id="crm-1", rang=("101",))
    by_cdr = outbound(answered=False, outcome="failed", rang=("101",), source="cdr")
    carrier_failed = outbound(answered=False, outcome="failed")
    assert not wants_lead(by_tracker, policy)
    assert not wants_lead(by_cdr, policy)
    assert wants_lead(carrier_failed, policy)


async def test_missed_only(store: Store, clock: Clock) -> None:
    ingest = _ingest(store, clock, create_on="missed_only")
    answered = await ingest.handle(inbound("+14155550199", answered_by="101"))
    assert answered.lead_created is None and answered.call.match_reason == "none"
    assert (await ingest.handle(outbound())).lead_created is None
    missed = await ingest.handle(inbound("+14155550199", answered_by=None, at=T0 + 60))
    assert missed.lead_created is not None
    abandoned = await ingest.handle(
        inbound("+14155550200", answered_by=None, outcome="abandoned", at=T0 + 90)
    )
    assert abandoned.lead_created is not None


async def test_never(store: Store, clock: Clock) -> None:
    ingest = _ingest(store, clock, create_on="never")
    result = await ingest.handle(inbound(answered_by=None))
    assert result.lead_created is None
    assert await store.count_contacts() == 0


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (internal(), "internal"),
        (inbound("anonymous", answered_by=None), "withheld"),
        (inbound(None, answered_by=None), "withheld"),
        (inbound("+15551000"), "own_number"),
        (inbound("5551002"), "own_number"),
        (outbound("5552000", None), "own_number"),
    ],
    ids=["internal", "anonymous", "no-caller-id", "own-did-e164", "own-did-raw", "dial-own-did"],
)
async def test_no_lead_for_internal_own_and_withheld(
    store: Store, clock: Clock, record: object, reason: str
) -> None:
    result = await _ingest(store, clock).handle(record)
    assert result.lead_created is None
    assert result.call.match_reason == reason
    assert await store.count_contacts() == 0


async def test_repeat_calls_join_the_same_lead(store: Store, clock: Clock) -> None:
    ingest = _ingest(store, clock, repeat_window_hours=24)
    first = await ingest.handle(inbound("+14155550199", answered_by=None))
    second = await ingest.handle(inbound("+14155550199", answered_by="101", at=T0 + 3600))
    third = await ingest.handle(outbound("4155550199", "+14155550199", at=T0 + 7200))
    assert first.lead_created is not None
    assert second.lead_created is None and third.lead_created is None
    assert second.call.contact_id == third.call.contact_id == first.lead_created.id
    assert await store.count_contacts() == 1


async def test_junk_lead_swallows_calls_within_window_and_reopens_after(
    store: Store, clock: Clock
) -> None:
    ingest = _ingest(store, clock, repeat_window_hours=24)
    first = await ingest.handle(inbound("+14155550199", answered_by=None))
    lead = first.lead_created
    assert lead is not None and lead.lead is not None
    lead.lead.status = "junk"
    await store.update_contact(lead)
    within = await ingest.handle(inbound("+14155550199", answered_by=None, at=T0 + 3600))
    assert not within.lead_reopened
    got = await store.get_contact(lead.id or 0)
    assert got is not None and got.lead is not None and got.lead.status == "junk"
    after = await ingest.handle(inbound("+14155550199", answered_by="101", at=T0 + 3 * 86400))
    assert after.lead_reopened and after.call.contact_id == lead.id
    got = await store.get_contact(lead.id or 0)
    assert got is not None and got.lead is not None
    assert got.lead.status == "new" and got.lead.source == "inbound_call"
    assert await store.count_contacts() == 1


async def test_inactive_rep_does_not_own_leads(store: Store, clock: Clock) -> None:
    boss = await store.add_user(User(None, "boss", "Boss", "manager", []), T0)
    await store.add_user(User(None, "gone", "Gone", "rep", ["101"], active=False), T0)
    result = await _ingest(store, clock, default_owner_id=boss.id).handle(inbound())
    assert result.lead_created is not None and result.lead_created.owner_id == boss.id
    assert result.call.user_id is None
