"""The presence tracker on real Asterisk 22 captures (tests/fixtures/asterisk-22/3x-*,
recorded by scripts/record_presence.py; each truth.json says what the scenario did).

The checkpoints are the tracker's views right after a resync's listings, so each test
checks both the live events and what a CRM connecting at that moment would be told."""

from __future__ import annotations

import json

import pytest

from ami_bridge.presence import PresenceTracker

from .replaying import FIXTURES, replay


def truth(scenario: str) -> dict:
    return json.loads((FIXTURES / scenario / "truth.json").read_text())


def states(reps: dict) -> dict[str, str]:
    return {ext: view.state for ext, view in sorted(reps.items())}


def test_pause_and_unpause_with_reasons() -> None:
    r = replay("30-queue-pause")
    idle_reps, idle_queues = r.checkpoints["idle"]
    assert states(idle_reps) == {"101": "available", "102": "available", "103": "available"}
    assert [m.extension for m in idle_queues["support"].members] == ["102", "103"]
    assert idle_reps["101"].queues == () and idle_reps["103"].queues == ("support",)

    paused_reps, paused_queues = r.checkpoints["paused"]
    assert paused_reps["103"].state == "paused"
    assert paused_reps["103"].paused_reason == "lunch"
    assert paused_reps["103"].paused_queues == ("support",)
    carol = paused_queues["support"].members[1]
    assert (carol.extension, carol.paused, carol.paused_reason) == ("103", True, "lunch")
    assert carol.name == "Carol Chen"

    assert [(a.kind, a.extension, a.queue, a.reason) for a in r.agent] == [
        ("paused", "103", "support", "lunch"),
        ("unpaused", "103", "support", None),
        ("paused", "102", "support", "training"),
        ("unpaused", "102", "support", None),
    ]
    final = truth("30-queue-pause")["final"]["support"]
    assert {e: v.state for e, v in r.reps().items() if e in final} == final


def test_a_crm_connecting_while_a_member_is_paused_sees_the_pause_and_stores_it() -> None:
    r = replay("30-queue-pause", start_at="paused")
    reps, _ = r.checkpoints["paused"]
    assert reps["103"].state == "paused" and reps["103"].paused_reason == "lunch"
    assert reps["102"].state == "available"
    # first seen paused: stored as a pause starting now (the queue figures count from it)
    assert [(a.kind, a.extension, a.reason) for a in r.agent][:1] == [("paused", "103", "lunch")]


def test_members_added_and_removed_and_refusals_have_the_pbx_words() -> None:
    r = replay("31-queue-add-remove")
    added_reps, added_queues = r.checkpoints["added"]
    assert [m.extension for m in added_queues["support"].members] == ["101", "102", "103"]
    assert added_reps["101"].queues == ("support",)
    end_reps, end_queues = r.checkpoints["end"]
    assert [m.extension for m in end_queues["support"].members] == ["102", "103"]
    assert end_reps["101"].queues == ()
    assert [(a.kind, a.extension, a.queue) for a in r.agent] == [
        ("added", "101", "support"),
        ("removed", "101", "support"),
    ]
    refused = {k: v["Message"] for k, v in r.responses.items() if v.get("Response") == "Error"}
    assert refused == {
        "remove-103-static": "Member not dynamic",
        "add-102-again": "Unable to add interface: Already there",
        "add-nosuch": "Unable to add interface to queue: No such queue",
        "remove-101-not-member": "Unable to remove interface: Not there",
        "pause-nosuch": "Interface not found",
        "pause-101-not-member": "Interface not found",
    }


def test_callers_wait_in_order_then_each_is_answered() -> None:
    r = replay("32-queue-waiting-answered")
    calls = truth("32-queue-waiting-answered")["calls"]
    reps, queues = r.checkpoints["waiting"]
    waiting = queues["support"].waiting
    assert [(c.number, c.position) for c in waiting] == [
        (calls[0]["caller"], 1),
        (calls[1]["caller"], 2),
    ]
    assert waiting[0].name == "Wendy Wait" and waiting[0].joined_at < waiting[1].joined_at
    bob = reps["102"]
    assert bob.state == "ringing" and bob.call is not None
    assert (bob.call.direction, bob.call.other_number, bob.call.queue) == (
        "inbound",
        calls[0]["caller"],
        "support",
    )
    assert reps["103"].state == "paused" and reps["103"].paused_reason == "coaching"

    reps, queues = r.checkpoints["talking"]
    assert reps["102"].state == "on_call" and reps["102"].call.answered  # type: ignore[union-attr]
    assert reps["102"].call.other_name == "Wendy Wait"  # type: ignore[union-attr]
    assert [(c.number, c.position) for c in queues["support"].waiting] == [
        (calls[1]["caller"], 1),
    ]  # the one behind moved up

    # 103 unpaused, answers Xavier; both hang up: nobody waits, everyone is free
    assert r.queue("support").waiting == ()
    assert states(r.reps()) == {"101": "available", "102": "available", "103": "available"}
    carol = [c for c in r.changes if c.rep and c.rep.extension == "103"]
    assert any(
        c.rep.state == "on_call" and c.rep.call.other_number == calls[1]["caller"] for c in carol
    )  # type: ignore[union-attr]


def test_a_crm_connecting_mid_call_is_told_who_talks_and_who_waits() -> None:
    r = replay("32-queue-waiting-answered", start_at="talking")
    reps, queues = r.checkpoints["talking"]
    assert reps["102"].state == "on_call"
    assert reps["102"].call is not None and reps["102"].call.other_number == "+14155550101"
    assert [(c.number, c.position) for c in queues["support"].waiting] == [("+14155550102", 1)]
    assert queues["support"].waiting[0].joined_at < r.checkpoints["talking"][0]["102"].since


def test_a_caller_abandoning_leaves_the_queue() -> None:
    r = replay("33-queue-abandon-paused")
    reps, queues = r.checkpoints["waiting"]
    assert {reps[e].state for e in ("102", "103")} == {"paused"}
    assert [c.number for c in queues["support"].waiting] == ["+14155550103"]
    assert r.queue("support").waiting == ()
    gone = [c for c in r.changes if c.queue is not None and not c.queue.waiting]
    assert gone, "the board is told the queue emptied"


def test_a_handset_unregistering_goes_offline_and_comes_back() -> None:
    r = replay("34-unregister-register")
    assert r.checkpoints["offline"][0]["102"].state == "offline"
    member = r.checkpoints["offline"][1]["support"].members[0]
    assert (member.extension, member.status) == ("102", 5)  # unavailable to the queue
    assert r.checkpoints["online"][0]["102"].state == "available"
    assert [(a.kind, a.extension, a.queue) for a in r.agent] == [
        ("unregistered", "102", None),
        ("registered", "102", None),
    ]
    offline = [
        c.rep for c in r.changes if c.rep and c.rep.extension == "102" and c.rep.state == "offline"
    ]
    assert offline and offline[0].registered is False


def test_ringing_and_talking_are_told_apart_though_the_device_says_busy_for_both() -> None:
    r = replay("35-internal-device-states")
    ringing, _ = r.checkpoints["ringing"]
    assert ringing["103"].state == "ringing"
    assert ringing["101"].state == "on_call"  # dialling out is not ringing
    assert ringing["101"].call.direction == "internal"  # type: ignore[union-attr]
    assert ringing["101"].call.other_number == "103"  # type: ignore[union-attr]
    talking, _ = r.checkpoints["talking"]
    assert talking["103"].state == "on_call" and talking["103"].call.answered  # type: ignore[union-attr]
    assert talking["103"].call.other_number == "101"  # type: ignore[union-attr]
    assert states(r.reps()) == {"101": "available", "102": "available", "103": "available"}


def test_hold_during_an_attended_transfer() -> None:
    r = replay("16-attended-transfer")
    held = [c.rep for c in r.changes if c.rep and c.rep.state == "on_hold"]
    assert held and held[0].extension == "102"
    assert held[0].call is not None and held[0].call.other_number == "+14155550166"
    assert states(r.reps())["102"] == "available"


@pytest.mark.parametrize("scenario", ["20-queue-second-member", "21-queue-abandoned"])
def test_queue_calls_of_the_older_captures_end_with_nobody_waiting(scenario: str) -> None:
    r = replay(scenario)
    seen = [c.queue for c in r.changes if c.queue is not None]
    assert any(len(q.waiting) == 1 for q in seen)
    assert r.queue("support").waiting == ()


def test_trunk_channels_are_skipped_before_parsing() -> None:
    t = PresenceTracker()
    assert not t.wants("Newchannel", "Event: Newchannel\r\nChannel: Local/102@x-0001;1\r\n")
    assert t.wants("Newstate", "Event: Newstate\r\nChannel: PJSIP/102-00000001\r\n")
    assert not t.wants("VarSet", "Event: VarSet\r\n")


@pytest.mark.parametrize(
    "scenario",
    sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
    + ["11-burst-20-concurrent", "20-queue-second-member"],
)
def test_each_change_reported_is_a_change_and_the_last_is_the_current_view(scenario: str) -> None:
    """A rep ringing in twenty calls at once had their unchanged view told to every board
    twenty times; each board heard it and each web process got it through the fan-out."""
    r = replay(scenario)
    last: dict[tuple[str, str], object] = {}
    repeats = 0
    for change in r.changes:
        key = ("rep", change.rep.extension) if change.rep else ("queue", change.queue.queue)
        view = change.rep or change.queue
        repeats += last.get(key) == view
        last[key] = view
    assert r.changes and repeats == 0
    for (kind, name), view in last.items():
        now = r.tracker.rep_view(name, r.end) if kind == "rep" else r.queue(name)
        assert view == now, (kind, name)
