"""Ten everyday calls placed at the same time on the real PBX: inbound answered, missed by
the ring group, abandoned, busy, declined by the rep, outbound answered / no answer / busy,
internal, and an anonymous caller.  Each scenario has its own caller (the simulator's plan
is per caller), so they overlap freely; each test checks one of them.

What every test expects is written from the plan below (who rings, who answers after how
long, who hangs up), never from what the CRM produced."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import Live
from .rig import wait_for

RING_GROUP = "5551000"  # rings 101 & 102 for 15 s, then the PBX hangs up
BOB_DID = "5551002"  # rings 102 for 20 s
JOHN = "+14155550111"
MISSED = "+14155550112"
ABANDON = "+14155550113"
BUSY = "+14155550114"
DECLINE = "+14155550115"
OUT_ANSWER, OUT_NOANSWER, OUT_BUSY = "4155550121", "4155550122", "4155550123"

PLAN = {
    # John Smith (a known contact): 101 answers after 3 s, 102 keeps ringing
    "14155550111/101": "answer:3:hold", "14155550111/102": "ring",
    # nobody answers: the ring group's 15 s run out
    "14155550112/101": "ring", "14155550112/102": "ring",
    # the caller gives up after 4 s
    "14155550113/101": "ring", "14155550113/102": "ring",
    # both phones busy (486)
    "14155550114/101": "busy", "14155550114/102": "busy",
    # Bob declines (403) the call to his direct line
    "14155550115/102": "reject",
    # outside numbers the reps dial
    f"out/{OUT_ANSWER}": "answer:2:hold", f"out/{OUT_NOANSWER}": "ring",
    f"out/{OUT_BUSY}": "busy",
    # Carol calls Alice, who answers after 2 s
    "103/101": "answer:2:hold",
    # the anonymous caller (no digits) reaches Bob, who answers after 2 s
    "any/102": "answer:2:hold",
}  # fmt: skip


@pytest.fixture(scope="module")
def wave(live: Live) -> dict[str, Any]:
    r = live.api.post("/api/v1/contacts", json_body={"name": "John Smith", "company": "Acme",
                                                     "phones": [JOHN]})  # fmt: skip
    assert r.status == 201, r.text
    since = time.time() - 1

    async def place(lab: Any) -> None:
        await lab.plan(PLAN, clear=True)
        await lab.carrier_call(RING_GROUP, JOHN, "John Smith", talk=6)
        await lab.carrier_call(RING_GROUP, MISSED, "Mary Missed", ring_timeout=40)
        await lab.carrier_call(RING_GROUP, ABANDON, "Abe Andon", ring_timeout=60,
                               abandon_after=4)  # fmt: skip
        await lab.carrier_call(RING_GROUP, BUSY, "Bea Busy", ring_timeout=30)
        await lab.carrier_call(BOB_DID, DECLINE, "Dec Lined", ring_timeout=30)
        await lab.carrier_call(BOB_DID, "anonymous", "", talk=4)
        await lab.phone_call("101", OUT_ANSWER, talk=5)
        await lab.phone_call("102", OUT_NOANSWER, ring_timeout=8)
        await lab.phone_call("103", OUT_BUSY, ring_timeout=20)
        await lab.phone_call("103", "101", talk=4)

    started = time.monotonic()
    live.drive(place)
    return {"since": since, "contact_id": r.json()["id"], "seconds": time.monotonic() - started}


def _between(value: float, low: float, high: float) -> bool:
    return low <= value <= high


def assert_pops(live: Live, linkedid: str, rung: set[str]) -> None:
    """The screen pop reached exactly the reps whose phones rang, and none is left
    open once the call is over (answered elsewhere, or ended)."""
    ext_of = {"alice": "101", "bob": "102", "carol": "103"}
    for user, ext in ext_of.items():
        if ext in rung:
            wait_for(lambda u=user: live.obs.popped(u, linkedid), 10, f"{user}'s pop")
        else:
            assert not live.obs.popped(user, linkedid), f"{user} ({ext}) got a pop"
    for user in ("maria", "ada"):
        assert not live.obs.popped(user, linkedid), f"{user} is no rep, yet got a pop"
    for user in ext_of:
        wait_for(lambda u=user: not live.obs.pop_open(u, linkedid), 10,
                 f"{user}'s pop to close")  # fmt: skip


def hook_events(live: Live, linkedid: str) -> list[str]:
    hooks = live.obs.hooks_for(linkedid)
    assert all(h.signature_ok for h in hooks), "a webhook with a wrong signature"
    return sorted(h.event for h in hooks)


def test_inbound_answered_by_the_first_rep(live: Live, wave: dict[str, Any]) -> None:
    call = live.call_of(JOHN, wave["since"])
    assert call["direction"] == "inbound"
    assert call["caller_name"] == "John Smith"
    assert call["did"] == RING_GROUP
    assert set(call["rang"]) >= {"101", "102"}
    assert call["answered"] is True and call["outcome"] == "answered"
    assert call["answered_by"] == "101" and call["final_agent"] == "101"
    assert call["hangup_by"] == "caller"
    assert _between(call["ring_seconds"], 2.0, 6.5), call["ring_seconds"]
    assert _between(call["talk_seconds"], 4.5, 9.0), call["talk_seconds"]
    assert call["contact_id"] == wave["contact_id"]  # the known contact, no lead
    assert call["remote_e164"] == JOHN
    assert len(call["recording_ids"]) == 1
    assert_pops(live, call["linkedid"], {"101", "102"})
    # Bob's pop closed because Alice answered (not only because the call ended)
    bob = live.obs.progress("bob", call["linkedid"])
    assert any(d["answered_by"] == "101" and d["pop"] is None and d["state"] == "answered"
               for d in bob), bob  # fmt: skip
    wait_for(lambda: "call.ended" in hook_events(live, call["linkedid"]), 15, "call.ended")
    events = hook_events(live, call["linkedid"])
    assert events == ["call.ended", "call.ringing"], events
    contact = live.api.get_json(f"/api/v1/contacts/{wave['contact_id']}")
    assert contact["lead"] is None


def test_the_answered_call_is_recorded_and_plays_with_range(
    live: Live, wave: dict[str, Any]
) -> None:
    call = live.call_of(JOHN, wave["since"])
    alice = live.crm.browser("alice")  # the rep who took the call may listen
    links = live.recording_links(alice, call["id"])
    url = links["stream"]
    whole = alice.get(url)
    assert whole.status == 200, whole.text[:200]
    assert whole.headers["Content-Type"].startswith("audio/webm")
    assert whole.body[:4] == b"\x1a\x45\xdf\xa3"  # a WebM (EBML) file: transcoded
    assert len(whole.body) > 2000
    part = alice.get(url, headers={"Range": "bytes=100-299"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 100-299/{len(whole.body)}"
    assert part.body == whole.body[100:300]
    wave_json = alice.get_json(links["waveform"])
    assert 4.0 <= wave_json["duration"] <= 12.0, wave_json["duration"]


def test_missed_by_the_ring_group_opens_a_callback_and_a_lead(
    live: Live, wave: dict[str, Any]
) -> None:
    call = live.call_of(MISSED, wave["since"])
    assert call["direction"] == "inbound"
    assert call["answered"] is False and call["outcome"] == "missed"
    assert call["answered_by"] is None
    assert set(call["rang"]) >= {"101", "102"}
    assert call["hangup_by"] == "pbx"
    assert _between(call["ring_seconds"], 13.5, 17.5), call["ring_seconds"]
    assert call["recording_ids"] == []
    lead = live.contact_of(MISSED)
    assert lead is not None and lead["lead"] is not None
    assert call["contact_id"] == lead["id"]
    tasks = live.callbacks_for(MISSED, "open")
    assert len(tasks) == 1 and tasks[0]["missed_count"] == 1
    assert_pops(live, call["linkedid"], {"101", "102"})
    wait_for(lambda: "call.missed" in hook_events(live, call["linkedid"]), 15, "call.missed")
    assert hook_events(live, call["linkedid"]) == ["call.ended", "call.missed", "call.ringing"]
    assert any(h.event == "lead.created" and h.payload["contact"]["id"] == lead["id"]
               for h in live.obs.hooks)  # fmt: skip


def test_abandoned_by_the_caller(live: Live, wave: dict[str, Any]) -> None:
    call = live.call_of(ABANDON, wave["since"])
    assert call["answered"] is False and call["outcome"] == "abandoned"
    assert call["hangup_by"] == "caller"
    assert set(call["rang"]) >= {"101", "102"}
    assert _between(call["ring_seconds"], 2.5, 6.5), call["ring_seconds"]
    assert len(live.callbacks_for(ABANDON, "open")) == 1
    assert_pops(live, call["linkedid"], {"101", "102"})
    wait_for(lambda: "call.missed" in hook_events(live, call["linkedid"]), 15, "call.missed")


def test_busy_everywhere(live: Live, wave: dict[str, Any]) -> None:
    call = live.call_of(BUSY, wave["since"])
    assert call["answered"] is False and call["outcome"] == "busy"
    assert call["answered_by"] is None
    assert call["ring_seconds"] < 3.0
    assert len(live.callbacks_for(BUSY, "open")) == 1


def test_the_rep_declines(live: Live, wave: dict[str, Any]) -> None:
    call = live.call_of(DECLINE, wave["since"])
    assert call["answered"] is False and call["outcome"] == "missed"
    assert call["did"] == BOB_DID
    assert "102" in call["rang"], "the rep who declined is listed among those rung"
    declined = call.get("declined")
    assert declined is not None and "102" in declined, f"102 not marked as declining: {call}"
    assert len(live.callbacks_for(DECLINE, "open")) == 1


def test_anonymous_caller(live: Live, wave: dict[str, Any]) -> None:
    calls = [c for c in live.wait_calls(1, since=wave["since"], direction="inbound")
             if c["did"] == BOB_DID and c["answered"]]  # fmt: skip
    assert len(calls) == 1, calls
    call = calls[0]
    assert call["answered_by"] == "102" and call["outcome"] == "answered"
    assert call["remote_e164"] is None  # no number: nothing to match or call back
    assert call["contact_id"] is None
    wait_for(lambda: live.obs.popped("bob", call["linkedid"]), 10, "bob's pop")
    assert not live.obs.popped("alice", call["linkedid"])


def test_outbound_answered(live: Live, wave: dict[str, Any]) -> None:
    call = live.call_of("+1" + OUT_ANSWER, wave["since"])
    assert call["direction"] == "outbound"
    assert call["caller"] == "101" and call["callee"] == OUT_ANSWER
    assert call["remote_e164"] == "+1" + OUT_ANSWER
    assert call["answered"] is True and call["outcome"] == "answered"
    assert call["hangup_by"] == "caller"
    assert _between(call["ring_seconds"], 1.0, 5.0), call["ring_seconds"]
    assert _between(call["talk_seconds"], 3.5, 8.0), call["talk_seconds"]
    assert len(call["recording_ids"]) == 1
    assert call["user_id"] is not None  # Alice's call
    lead = live.contact_of("+1" + OUT_ANSWER)  # an unknown number she called: a lead
    assert lead is not None and lead["lead"] is not None and call["contact_id"] == lead["id"]
    for user in ("alice", "bob", "carol"):  # she placed it: no pop for anybody
        assert not live.obs.popped(user, call["linkedid"])


def test_outbound_no_answer(live: Live, wave: dict[str, Any]) -> None:
    call = live.call_of("+1" + OUT_NOANSWER, wave["since"])
    assert call["direction"] == "outbound" and call["caller"] == "102"
    assert call["answered"] is False and call["outcome"] == "no_answer"
    assert call["hangup_by"] == "caller"
    assert _between(call["ring_seconds"], 6.0, 10.5), call["ring_seconds"]


def test_outbound_busy(live: Live, wave: dict[str, Any]) -> None:
    call = live.call_of("+1" + OUT_BUSY, wave["since"])
    assert call["direction"] == "outbound" and call["caller"] == "103"
    assert call["answered"] is False and call["outcome"] == "busy"


def test_internal(live: Live, wave: dict[str, Any]) -> None:
    calls = live.wait_calls(1, direction="internal", since=wave["since"])
    assert len(calls) == 1, calls
    call = calls[0]
    assert call["caller"] == "103" and call["callee"] == "101"
    assert call["answered"] is True and call["answered_by"] == "101"
    assert call["outcome"] == "answered" and call["hangup_by"] == "caller"
    assert _between(call["talk_seconds"], 2.5, 6.5), call["talk_seconds"]
    assert call["contact_id"] is None and call["remote_e164"] is None
    wait_for(lambda: live.obs.popped("alice", call["linkedid"]), 10, "alice's pop")
    assert not live.obs.popped("carol", call["linkedid"])  # she is calling
    assert not live.obs.popped("bob", call["linkedid"])


def test_calling_the_missed_caller_back_closes_the_callback(
    live: Live, wave: dict[str, Any]
) -> None:
    missed = live.call_of(MISSED, wave["since"])
    [task] = live.callbacks_for(MISSED, "open")
    since = time.time() - 1

    async def call_back(lab: Any) -> None:
        # Alice dials the number back (as the PBX's users dial it); it answers after 2 s
        await lab.plan({f"out/{MISSED[2:]}": "answer:2:hold"}, clear=True)
        await lab.phone_call("101", MISSED[2:], talk=4)

    live.drive(call_back)
    back = live.call_of(MISSED, since)
    assert back["direction"] == "outbound" and back["answered"] is True
    assert back["contact_id"] == missed["contact_id"]  # the same lead, not a new one
    closed = wait_for(lambda: [t for t in live.callbacks_for(MISSED) if t["id"] == task["id"]
                               and t["status"] == "closed"], 15, "the callback to close")
    assert closed[0]["closed_by_call"] == back["id"]
    assert live.callbacks_for(MISSED, "open") == []
