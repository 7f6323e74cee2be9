"""Events survive the trip through JSON: what another process rebuilds is equal to what
this process published, so the SSE hub treats both alike."""

from __future__ import annotations

import json

from ami_bridge.facts import CallProgress, OriginateResult
from ami_bridge.link import LinkStatus
from ami_bridge.replay import replay_file
from crm.callbacks import CallbackChange
from crm.eventjson import event_from_json, event_to_json
from crm.events import Event
from crm.ingest import Ingested, LiveCall
from crm.models import Call, CallbackTask, Contact, Lead, PhoneNumber
from tests.paths import ASTERISK22

BURST = ASTERISK22 / "11-burst-20-concurrent" / "events.jsonl"


def roundtrip(event: Event) -> Event:
    wire = json.dumps(event_to_json(event))
    return event_from_json(json.loads(wire), origin="other")


def test_every_kind_comes_back_equal() -> None:
    rec = next(r for r in replay_file(BURST) if r.transfers or r.answered)
    call = Call.from_record(rec, id=9, remote_e164="+14155550201", contact_id=3, user_id=1)
    task = CallbackTask(4, "+14155550201", 3, None, 1.0, 61.0)
    phones = [PhoneNumber("+14155550201", "+14155550201")]
    lead = Contact(3, "+1 415-555-0201", phones=phones, lead=Lead("new", "inbound_call", 1.0),
                   created_at=1.0, updated_at=2.0)  # fmt: skip
    progress = CallProgress("1.1", "ringing", "inbound", "+14155550201", "Ann", "5551000",
                            "5551000", ("101", "102"), None, 12.5)  # fmt: skip
    events = [
        Event("call_progress", LiveCall(progress, 3, "Ann", "unique"), frozenset({"101"})),
        Event(
            "call_recorded",
            Ingested(call, True, lead, False, CallbackChange("opened", task)),
            frozenset({"101", "102"}),
            frozenset({1}),
        ),
        Event("callback_opened", task, user_ids=frozenset({2})),
        Event("originate_result", OriginateResult("a1", True, 4, "ok", "PJSIP/101-1", "1.2", 3.0)),
        Event("link_status", LinkStatus("connected", 1.0, "h:1", None, 3, 0.5, None, 0)),
        Event("click_progress", {"state": "ringing", "at": 1.5}, user_ids=frozenset({7})),
    ]
    for event in events:
        back = roundtrip(event)
        assert back.origin == "other"
        assert back.payload == event.payload, event.kind
        assert (back.kind, back.extensions, back.user_ids) == (
            event.kind, event.extensions, event.user_ids)  # fmt: skip


def test_json_form_has_epoch_times_and_plain_names() -> None:
    rec = next(r for r in replay_file(BURST) if r.answered)
    call = Call.from_record(rec)
    data = event_to_json(Event("call_recorded", Ingested(call, True)))
    assert isinstance(data["payload"]["call"]["started_at"], float)
    assert data["payload"]["call"]["rang"] == list(rec.rang)
    json.dumps(data)  # JSON-ready as it is
