"""The recorded Asterisk 22 traffic through the real tracker and the CRM's ingest, on
both engines: the right contacts matched, the right leads (none for extensions or
DIDs), callbacks opened for missed calls and closed by a later answered call."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ami_bridge.facts import CallRecord
from ami_bridge.replay import replay_file
from config.settings import load_settings, pbx_profile
from crm.events import EventBus
from crm.ingest import Ingest
from crm.models import CallFilter, User
from crm.policy import LeadPolicy
from crm.services import CrmService
from crm.store import Store

from .conftest import Clock

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-22"
SCENARIOS = ("01-inbound-answered", "02-inbound-missed", "05-outbound-answered",
             "06-click-to-call", "09-internal-call", "11-burst-20-concurrent",
             "15-blind-transfer-outside", "16-attended-transfer", "17-blind-transfer",
             "18-declined", "19-click-to-call-no-answer", "20-queue-second-member",
             "21-queue-abandoned", "22-busy")  # fmt: skip
EXTENSIONS = ("101", "102", "103")


def _profile_and_policy() -> tuple[object, LeadPolicy]:
    profile = pbx_profile(load_settings(env={}, demo=True))
    policy = LeadPolicy(
        own_numbers=profile.own_numbers,
        default_region=profile.default_region,
        callback_sla_minutes=30,
    )
    return profile, policy


def _records(scenario: str) -> list[CallRecord]:
    profile, _ = _profile_and_policy()
    return replay_file(CAPTURES / scenario / "events.jsonl", profile)  # type: ignore[arg-type]


def _truth(scenario: str) -> list[dict]:
    return json.loads((CAPTURES / scenario / "truth.json").read_text())["calls"]


@pytest.fixture
def replay_ingest(store: Store, bus: EventBus, clock: Clock) -> Ingest:
    return Ingest(store, _profile_and_policy()[1], bus, clock)


async def _office(store: Store) -> dict[str, User]:
    users = {}
    for ext, (name, full) in zip(EXTENSIONS, (("alice", "Alice Adams"), ("bob", "Bob Brown"),
                                              ("carol", "Carol Chen")), strict=True):  # fmt: skip
        users[ext] = await store.add_user(User(None, name, full, "rep", [ext]), 0.0)
    return users


async def test_captures_match_contacts_and_make_the_right_leads(
    store: Store, replay_ingest: Ingest, clock: Clock
) -> None:
    policy = _profile_and_policy()[1]
    service = CrmService(store, policy, clock)
    users = await _office(store)
    john = await service.create_contact("John Smith", phones=["+1 415 555 0199"])

    for scenario in SCENARIOS:
        records = _records(scenario)
        assert len(records) == len(_truth(scenario)), scenario
        for rec in records:
            await replay_ingest.handle(rec)

    calls = {c.linkedid: c for c in await store.list_calls(CallFilter(), limit=500)}
    assert len(calls) == sum(len(_truth(s)) for s in SCENARIOS)

    # 01: the known caller is matched, the rep who answered owns the call
    [c01] = [
        c for c in calls.values() if c.remote_e164 == "+14155550199" and c.direction == "inbound"
    ]
    assert (c01.contact_id, c01.match_reason, c01.user_id) == (john.id, "unique", users["101"].id)
    assert c01.caller_name == "John Smith" and c01.recordings

    # 19: a click-to-call the rep never took failed (the number is 06's lead already)
    [c19] = [c for c in calls.values() if c.originate_id == "c2c-0019"]
    assert (c19.outcome, c19.user_id) == ("failed", users["101"].id)
    # 15: handed out to an outside number, it stays the call of the rep who answered
    [c15] = [c for c in calls.values() if c.remote_e164 == "+14155550177"]
    assert (c15.final_agent, c15.user_id) == ("+14155550188", users["102"].id)

    # 18: the reps whose phones declined are stored among those rung, marked declined
    [c18a] = [c for c in calls.values() if c.remote_e164 == "+14155550144"]
    [c18b] = [c for c in calls.values() if c.remote_e164 == "+14155550145"]
    assert (c18a.rang, c18a.declined, c18a.outcome) == (("102",), ("102",), "missed")
    assert (c18b.rang, c18b.declined, c18b.answered_by) == (("101", "102"), ("101",), "102")
    stored = await store.get_call(c18b.id)
    assert stored is not None and stored.declined == ("101",)

    # 09: internal -> no contact, no lead
    [c09] = [c for c in calls.values() if c.direction == "internal"]
    assert c09.contact_id is None and c09.match_reason == "internal"

    # every outside number that is not John became exactly one lead, with a useful name
    contacts = await store.list_contacts(limit=1000)
    leads = {c.phones[0].e164: c for c in contacts if c.lead is not None}
    truth_numbers = set()
    for scenario in SCENARIOS:
        for t in _truth(scenario):
            if t.get("lead") is False:  # a click the rep never took: nothing was dialled
                continue
            if t["direction"] == "inbound":
                truth_numbers.add(t["caller"])
            elif t["direction"] == "outbound":
                truth_numbers.add("+1" + t["callee"] if len(t["callee"]) == 10
                                  else "+" + t["callee"][2:])  # fmt: skip
    assert set(leads) == truth_numbers - {"+14155550199"}
    assert len(contacts) == len(leads) + 1
    # 05 and 06: outbound leads belong to the rep who dialled; 06 keeps its click
    assert leads["+442079460958"].owner_id == users["101"].id
    assert leads["+442079460958"].lead.source == "outbound_call"
    assert leads["+14155550123"].owner_id == users["103"].id
    [c06] = [c for c in calls.values() if c.originate_id == "c2c-0001"]
    assert c06.contact_id == leads["+14155550123"].id and c06.user_id == users["103"].id
    # 02: the missed caller is a missed-call lead named after the number and the time
    maria = leads["+14155550102"]
    assert maria.lead.source == "missed_call" and "missed call" in maria.name
    assert "(415) 555-0102" in maria.name or "415-555-0102" in maria.name
    # burst: answered callers are owned by who answered, missed ones by nobody (no default)
    for t in _truth("11-burst-20-concurrent"):
        lead = leads[t["caller"]]
        expected = users[t["answered_by"]].id if t["answered"] else None
        assert lead.owner_id == expected, t["caller"]
    # no contact ever carries an extension or one of the PBX's own numbers
    own = {"+15551000", "+15551002", "+15552000", *EXTENSIONS}
    for contact in contacts:
        for phone in contact.phones:
            assert phone.e164 not in own and phone.raw not in own, contact


async def test_captures_open_callbacks_and_a_callback_closes_one(
    store: Store, replay_ingest: Ingest
) -> None:
    users = await _office(store)
    for scenario in ("02-inbound-missed", "11-burst-20-concurrent"):
        for rec in _records(scenario):
            await replay_ingest.handle(rec)
    missed_truth = [t for t in _truth("11-burst-20-concurrent") if not t["answered"]]
    missed_numbers = {t["caller"] for t in missed_truth} | {"+14155550102"}
    open_tasks = await store.list_callbacks(status="open")
    assert {t.number_e164 for t in open_tasks} == missed_numbers
    assert all(t.missed_count == 1 for t in open_tasks)

    # 06 as it happened, but Carol's click-to-call goes to the caller 02 missed
    [c2c] = _records("06-click-to-call")
    [missed] = _records("02-inbound-missed")
    callback = dataclasses.replace(c2c, callee="4155550102", callee_e164="+14155550102")
    result = await replay_ingest.handle(callback)
    assert result.callback is not None and result.callback.kind == "closed"
    task = await store.get_callback(result.callback.task.id)
    assert task.status == "closed" and task.closed_by_user_id == users["103"].id
    assert task.closed_by_call == result.call.id
    assert task.time_to_callback == pytest.approx(c2c.started_at - missed.ended_at)
    assert {t.number_e164 for t in await store.list_callbacks(status="open")} == (
        missed_numbers - {"+14155550102"}
    )


async def test_replaying_the_captures_twice_changes_nothing(
    store: Store, replay_ingest: Ingest
) -> None:
    await _office(store)
    everything = [rec for scenario in SCENARIOS for rec in _records(scenario)]
    for rec in everything:
        await replay_ingest.handle(rec)

    async def state() -> tuple[int, int, list[tuple[int | None, int]]]:
        tasks = await store.list_callbacks(status=None)
        return (
            await store.count_calls(),
            await store.count_contacts(),
            [(t.id, t.missed_count) for t in tasks],
        )

    before = await state()
    for rec in everything:
        again = await replay_ingest.handle(rec)
        assert not again.created
    assert await state() == before


async def test_a_click_the_rep_never_took_makes_no_lead(
    store: Store, replay_ingest: Ingest
) -> None:
    """19: Originate to 101, which never answers: 4155550123 was never dialled."""
    users = await _office(store)
    [rec] = _records("19-click-to-call-no-answer")
    result = await replay_ingest.handle(rec)
    assert result.call.outcome == "failed" and result.call.user_id == users["101"].id
    assert result.lead_created is None and result.call.contact_id is None
    assert await store.count_contacts() == 0
