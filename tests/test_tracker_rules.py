"""Tracker rules that the recordings do not all show: built from small, hand-written event
sequences in the exact shape Asterisk 22 sends them."""

from __future__ import annotations

import pytest

from ami_bridge.facts import CallProgress, CallRecord, OriginateResult
from ami_bridge.profile import PbxProfile
from ami_bridge.tracker import CallTracker

PROFILE = PbxProfile(trunk_endpoints=("trunk",), finish_grace=1.0)


def chan(event: str, name: str, uid: str, linkedid: str, **extra: str) -> dict:
    return {"Event": event, "Channel": name, "Uniqueid": uid, "Linkedid": linkedid, **extra}


def newchannel(name: str, uid: str, linkedid: str, cid: str, exten: str, ctx: str) -> dict:
    return chan(
        "Newchannel",
        name,
        uid,
        linkedid,
        CallerIDNum=cid,
        Exten=exten,
        Context=ctx,
        ChannelStateDesc="Down",
    )


def dial_begin(
    src: tuple[str, str] | None, dest: tuple[str, str], linkedid: str, **kw: str
) -> dict:
    ev = {
        "Event": "DialBegin",
        "DestChannel": dest[0],
        "DestUniqueid": dest[1],
        "DestLinkedid": linkedid,
        **kw,
    }
    if src:
        ev.update(Channel=src[0], Uniqueid=src[1], Linkedid=linkedid)
    return ev


def run(events: list[tuple[float, dict]], tracker: CallTracker | None = None) -> list:
    tracker = tracker or CallTracker(PROFILE)
    out: list = []
    for at, ev in events:
        out.extend(tracker.feed(ev, at))
    out.extend(tracker.flush())
    return out


def records(facts: list) -> list[CallRecord]:
    return [f for f in facts if isinstance(f, CallRecord)]


TRUNK = ("PJSIP/trunk-00000001", "100.1")
P101 = ("PJSIP/101-00000002", "100.2")
P102 = ("PJSIP/102-00000003", "100.3")
L = "100.1"


def inbound_ringing() -> list[tuple[float, dict]]:
    return [
        (0.0, newchannel(*TRUNK, L, "+14155550100", "5551000", "from-trunk")),
        (0.0, newchannel(*P101, L, "101", "s", "from-internal")),
        (0.0, newchannel(*P102, L, "102", "s", "from-internal")),
        (0.1, dial_begin(TRUNK, P101, L, Exten="5551000", DialString="101")),
        (0.1, dial_begin(TRUNK, P102, L, Exten="5551000", DialString="102")),
        (0.2, chan("Newstate", *P101, L, ChannelStateDesc="Ringing")),
        (0.2, chan("Newstate", *P102, L, ChannelStateDesc="Ringing")),
    ]


def test_busy_target_gives_busy_not_missed() -> None:
    events = [
        (0.0, newchannel(*TRUNK, L, "+14155550100", "5551002", "from-trunk")),
        (0.0, newchannel(*P102, L, "102", "s", "from-internal")),
        (0.1, dial_begin(TRUNK, P102, L, Exten="5551002", DialString="102")),
        (
            0.2,
            {
                "Event": "DialEnd",
                "DestChannel": P102[0],
                "DestUniqueid": P102[1],
                "DialStatus": "BUSY",
                **chan("x", *TRUNK, L),
            }
            | {"Event": "DialEnd"},
        ),
        (0.2, chan("Hangup", *P102, L, Cause="17")),
        (0.3, chan("Hangup", *TRUNK, L, Cause="17")),
    ]
    (rec,) = records(run(events))
    assert (rec.direction, rec.outcome, rec.answered, rec.hangup_by) == (
        "inbound",
        "busy",
        False,
        "pbx",
    )
    assert rec.rang == ()


def test_caller_hanging_up_while_phones_ring_is_abandoned() -> None:
    events = inbound_ringing() + [
        (5.0, chan("HangupRequest", *TRUNK, L, Cause="16")),
        (5.0, chan("Hangup", *P101, L, Cause="16")),
        (5.0, chan("Hangup", *P102, L, Cause="16")),
        (5.0, chan("Hangup", *TRUNK, L, Cause="16")),
    ]
    (rec,) = records(run(events))
    assert (rec.outcome, rec.hangup_by) == ("abandoned", "caller")
    assert rec.ring_seconds == 4.9
    assert rec.rang == ("101", "102")


def test_screen_pops_follow_the_ringing_phones() -> None:
    events = inbound_ringing() + [
        (3.0, chan("Newstate", *P101, L, ChannelStateDesc="Up")),
        (
            3.0,
            {
                "Event": "DialEnd",
                "DestChannel": P102[0],
                "DestUniqueid": P102[1],
                "DialStatus": "CANCEL",
            },
        ),
        (3.0, chan("Hangup", *P102, L, Cause="26")),
        (3.0, chan("BridgeEnter", *P101, L, BridgeUniqueid="b1")),
        (3.0, chan("BridgeEnter", *TRUNK, L, BridgeUniqueid="b1")),
        (9.0, chan("Hangup", *P101, L, Cause="16")),
        (9.0, chan("Hangup", *TRUNK, L, Cause="16")),
    ]
    facts = run(events)
    pops = [f for f in facts if isinstance(f, CallProgress)]
    assert [(p.state, p.ringing, p.answered_by) for p in pops] == [
        ("ringing", ("101",), None),
        ("ringing", ("101", "102"), None),
        ("ringing", ("102",), None),  # 101 picked up: its pop goes
        ("ringing", (), None),  # 102 was cancelled (answered elsewhere)
        ("answered", (), "101"),
        ("ended", (), "101"),
    ]
    assert pops[0].caller == "+14155550100" and pops[0].did == "5551000"
    assert pops[-1].state == "ended" and pops[-1].answered_by == "101"
    (rec,) = records(facts)
    assert rec.answered_by == "101" and rec.outcome == "answered"
    assert rec.rang == ("101", "102")  # the loser rang too, but is not "missed"


def test_failed_originate_is_linked_by_action_id_only() -> None:
    """A failed Originate reports ``Uniqueid: <unknown>`` and the dial string as Channel."""
    p103 = ("PJSIP/103-00000009", "200.9")
    events = [
        (0.0, newchannel(*p103, p103[1], "103", "s", "from-internal")),
        (0.0, chan("VarSet", *p103, p103[1], Variable="CRM_CALL_ID", Value="c2c-0002")),
        (
            0.0,
            {
                "Event": "DialBegin",
                "DestChannel": p103[0],
                "DestUniqueid": p103[1],
                "DestLinkedid": p103[1],
                "DialString": "103",
            },
        ),
        (0.1, chan("Newstate", *p103, p103[1], ChannelStateDesc="Ringing")),
        (
            30.0,
            {
                "Event": "DialEnd",
                "DestChannel": p103[0],
                "DestUniqueid": p103[1],
                "DialStatus": "NOANSWER",
            },
        ),
        (30.0, chan("Hangup", *p103, p103[1], Cause="0")),
        (
            30.0,
            {
                "Event": "OriginateResponse",
                "ActionID": "c2c-0002",
                "Response": "Failure",
                "Channel": "PJSIP/103",
                "Context": "from-internal",
                "Exten": "4155550123",
                "Reason": "3",
                "Uniqueid": "<unknown>",
                "CallerIDNum": "4155550123",
            },
        ),
    ]
    facts = run(events)
    (result,) = [f for f in facts if isinstance(f, OriginateResult)]
    assert not result.success and result.reason == 3 and result.uniqueid is None
    assert result.reason_text == "your phone did not answer"
    (rec,) = records(facts)
    assert rec.originate_id == "c2c-0002"
    assert (rec.direction, rec.caller, rec.callee, rec.outcome) == (
        "outbound",
        "103",
        "4155550123",
        "failed",  # the rep's phone never answered: the customer was never dialled
    )
    assert rec.rang == ("103",)


def test_originate_that_never_made_a_channel_still_leaves_a_record() -> None:
    facts = run(
        [
            (
                1.0,
                {
                    "Event": "OriginateResponse",
                    "ActionID": "c2c-0003",
                    "Response": "Failure",
                    "Channel": "PJSIP/104",
                    "Exten": "4155550123",
                    "Reason": "0",
                    "Uniqueid": "<unknown>",
                },
            )
        ]
    )
    (rec,) = records(facts)
    assert (rec.linkedid, rec.caller, rec.outcome, rec.originate_id) == (
        "originate-c2c-0003",
        "104",
        "failed",
        "c2c-0003",
    )


def test_record_waits_for_trailing_cdr_then_is_released_by_time() -> None:
    tracker = CallTracker(PROFILE)
    facts: list = []
    for at, ev in inbound_ringing() + [
        (3.0, chan("Newstate", *P101, L, ChannelStateDesc="Up")),
        (3.0, chan("BridgeEnter", *P101, L, BridgeUniqueid="b1")),
        (3.0, chan("BridgeEnter", *TRUNK, L, BridgeUniqueid="b1")),
        (9.0, chan("Hangup", *P102, L, Cause="26")),
        (9.0, chan("Hangup", *P101, L, Cause="16")),
        (9.0, chan("Hangup", *TRUNK, L, Cause="16")),
    ]:
        facts.extend(tracker.feed(ev, at))
    assert not records(facts)  # held for the grace period
    facts.extend(
        tracker.feed(
            {
                "Event": "Cdr",
                "UniqueID": TRUNK[1],
                "Channel": TRUNK[0],
                "UserField": ";rec-100.2.wav",
            },
            9.2,
        )
    )
    assert not records(facts)
    facts.extend(tracker.tick(10.5))
    (rec,) = records(facts)
    assert rec.recordings == ("rec-100.2.wav",)
    assert rec.talk_seconds == 6.0 and rec.ring_seconds == 2.9
    assert tracker.live_calls == 0
    # the same Hangup replayed later must not resurrect the call
    assert not records(tracker.feed(chan("Hangup", *TRUNK, L, Cause="16"), 20.0) + tracker.flush())


def test_resync_closes_calls_that_ended_while_disconnected() -> None:
    tracker = CallTracker(PROFILE)
    for at, ev in inbound_ringing():
        tracker.feed(ev, at)
    other = ("PJSIP/103-00000010", "300.1")
    tracker.feed(newchannel(*other, other[1], "103", "555", "from-internal"), 1.0)
    assert tracker.live_calls == 2
    tracker.begin_resync(60.0)
    facts = tracker.feed(
        {
            "Event": "CoreShowChannel",
            "Channel": other[0],
            "Uniqueid": other[1],
            "Linkedid": other[1],
            "ChannelStateDesc": "Ring",
            "Duration": "00:00:59",
        },
        60.0,
    )
    facts += tracker.feed({"Event": "CoreShowChannelsComplete", "ListItems": "1"}, 60.0)
    facts += tracker.tick(62.0)
    (rec,) = records(facts)
    assert rec.linkedid == L and rec.complete is False
    assert tracker.live_calls == 1  # the call the PBX still has goes on


def test_resync_adopts_calls_already_in_progress() -> None:
    tracker = CallTracker(PROFILE)
    tracker.begin_resync(100.0)
    for ch, state, bridge in ((TRUNK, "Up", "b9"), (P101, "Up", "b9")):
        tracker.feed(
            {
                "Event": "CoreShowChannel",
                "Channel": ch[0],
                "Uniqueid": ch[1],
                "Linkedid": L,
                "ChannelStateDesc": state,
                "BridgeId": bridge,
                "CallerIDNum": "+14155550100" if ch is TRUNK else "101",
                "Context": "from-trunk" if ch is TRUNK else "from-internal",
                "Exten": "5551000",
                "Duration": "00:00:20",
            },
            100.0,
        )
    tracker.feed({"Event": "CoreShowChannelsComplete"}, 100.0)
    facts = tracker.feed(chan("Hangup", *P101, L, Cause="16"), 130.0)
    facts += tracker.feed(chan("Hangup", *TRUNK, L, Cause="16"), 130.0)
    facts += tracker.flush()
    (rec,) = records(facts)
    assert rec.answered and rec.answered_by == "101" and rec.direction == "inbound"
    assert rec.started_at == 80.0 and rec.complete is False
    assert rec.talk_seconds == 30.0


def test_garbage_events_change_nothing_and_never_raise() -> None:
    tracker = CallTracker(PROFILE)
    junk = [
        {},
        {"Event": "Hangup"},
        {"Event": "DialBegin", "DestUniqueid": "<unknown>"},
        {"Event": "BridgeEnter", "Uniqueid": "x"},
        {"Event": "Newstate", "Uniqueid": ""},
        {"Event": "Cdr", "UniqueID": "nope"},
        {"Event": "OriginateResponse"},
        {"Event": "Hangup", "Channel": "PJSIP/1-1", "Uniqueid": "9.9", "Cause": "abc"},
        {"Event": "AttendedTransfer", "Result": "Success"},
        {"Event": "BlindTransfer"},
        {"Event": "CoreShowChannelsComplete"},
        {"Event": "BridgeMerge"},
        {"Event": "VarSet", "Variable": ["a", "b"], "Value": "x"},
    ]
    facts = []
    for i, ev in enumerate(junk):
        facts.extend(tracker.feed(ev, float(i)))
    facts.extend(tracker.flush(include_live=True))
    assert all(isinstance(f, CallRecord | OriginateResult) for f in facts)
    assert tracker.live_calls == 0


def test_chan_variable_headers_carry_recording_and_click_id() -> None:
    """With ``channelvars`` set, every channel event carries ``ChanVariable: NAME=value``."""
    p = ("PJSIP/101-00000002", "400.1")
    events = [
        (0.0, newchannel(*p, p[1], "101", "102", "from-internal")),
        (
            1.0,
            chan(
                "Newstate",
                *p,
                p[1],
                ChannelStateDesc="Up",
                ChanVariable=[
                    "REC_FILE=/var/spool/asterisk/monitor/x-400.1.wav",
                    "CRM_CALL_ID=c2c-9",
                ],
            ),
        ),
        (2.0, chan("Hangup", *p, p[1], Cause="16")),
    ]
    (rec,) = records(run(events))
    assert rec.recordings == ("x-400.1.wav",)
    assert rec.originate_id == "c2c-9"


def test_late_failed_originate_response_does_not_duplicate_the_call() -> None:
    p = ("PJSIP/103-00000009", "500.9")
    tracker = CallTracker(PROFILE)
    facts = []
    for at, ev in [
        (0.0, newchannel(*p, p[1], "103", "s", "from-internal")),
        (0.0, chan("VarSet", *p, p[1], Variable="CRM_CALL_ID", Value="c2c-7")),
        (30.0, chan("Hangup", *p, p[1], Cause="0")),
        (
            40.0,
            {
                "Event": "OriginateResponse",
                "ActionID": "c2c-7",
                "Response": "Failure",
                "Channel": "PJSIP/103",
                "Exten": "4155550123",
                "Reason": "3",
                "Uniqueid": "<unknown>",
            },
        ),
    ]:
        facts.extend(tracker.feed(ev, at))
    facts.extend(tracker.flush())
    assert [r.originate_id for r in records(facts)] == ["c2c-7"]


def test_a_phone_that_rings_then_declines_is_marked_declined() -> None:
    """102 rings, then its user presses "decline" (SIP 603 after 180: cause 21); 101's
    phone rings out.  Both were rung; only 102 declined."""
    events = [
        *inbound_ringing(),
        (3.0, chan("HangupRequest", *P102, L, Cause="21")),
        (3.0, {"Event": "DialEnd", "Channel": TRUNK[0], "Uniqueid": TRUNK[1],
               "DestChannel": P102[0], "DestUniqueid": P102[1], "DialStatus": "BUSY"}),
        (3.0, chan("Hangup", *P102, L, Cause="21")),
        (15.0, {"Event": "DialEnd", "Channel": TRUNK[0], "Uniqueid": TRUNK[1],
                "DestChannel": P101[0], "DestUniqueid": P101[1], "DialStatus": "NOANSWER"}),
        (15.0, chan("Hangup", *P101, L, Cause="0")),
        (15.0, chan("Hangup", *TRUNK, L, Cause="19")),
    ]  # fmt: skip
    (rec,) = records(run(events))
    assert rec.rang == ("101", "102") and rec.declined == ("102",)
    assert rec.outcome == "missed"


def test_a_blind_transfer_out_names_the_outside_number_in_e164() -> None:
    """101 sends the caller to 0044…: the transfer and where the call ended are E.164,
    however the rep keyed the number (the PBX's international prefix 00)."""
    out = ("PJSIP/trunk-00000009", "100.9")
    events = [
        *inbound_ringing(),
        (2.0, chan("Newstate", *P101, L, ChannelStateDesc="Up")),
        (2.0, chan("Hangup", *P102, L, Cause="26")),
        (2.0, chan("BridgeEnter", *P101, L, BridgeUniqueid="b1")),
        (2.0, chan("BridgeEnter", *TRUNK, L, BridgeUniqueid="b1")),
        (5.0, {"Event": "BlindTransfer", "Result": "Success", "TransfererChannel": P101[0],
               "TransfererUniqueid": P101[1], "TransfererLinkedid": L,
               "TransfereeChannel": TRUNK[0], "TransfereeUniqueid": TRUNK[1],
               "TransfereeLinkedid": L, "Extension": "00442079460958"}),
        (5.0, chan("BridgeLeave", *TRUNK, L, BridgeUniqueid="b1")),
        (5.0, chan("BridgeLeave", *P101, L, BridgeUniqueid="b1")),
        (5.0, chan("Hangup", *P101, L, Cause="16")),
        (5.0, newchannel(*out, L, "", "s", "from-internal")),
        (5.0, dial_begin(TRUNK, out, L, Exten="00442079460958",
                         DialString="00442079460958@trunk")),
        (7.0, chan("Newstate", *out, L, ChannelStateDesc="Up")),
        (7.0, chan("BridgeEnter", *out, L, BridgeUniqueid="b2")),
        (7.0, chan("BridgeEnter", *TRUNK, L, BridgeUniqueid="b2")),
        (10.0, chan("Hangup", *out, L, Cause="16")),
        (10.0, chan("Hangup", *TRUNK, L, Cause="16")),
    ]  # fmt: skip
    (rec,) = records(run(events))
    assert [(t.kind, t.from_, t.to) for t in rec.transfers] == [
        ("blind", "101", "+442079460958")
    ]
    assert rec.answered_by == "101" and rec.final_agent == "+442079460958"
    assert rec.talk_seconds == pytest.approx(3.0 + 3.0)


def test_a_caller_who_hangs_up_while_on_hold_hung_up() -> None:
    """On hold is not talk, but the call is still connected: the caller ending it there
    is ``hangup_by`` caller, and the talk stops where the music began."""
    events = [
        *inbound_ringing(),
        (2.0, chan("Newstate", *P101, L, ChannelStateDesc="Up")),
        (2.0, chan("Hangup", *P102, L, Cause="26")),
        (2.0, chan("BridgeEnter", *P101, L, BridgeUniqueid="b1")),
        (2.0, chan("BridgeEnter", *TRUNK, L, BridgeUniqueid="b1")),
        (6.0, chan("Hold", *P101, L)),
        (6.0, chan("MusicOnHoldStart", *TRUNK, L)),
        (20.0, chan("HangupRequest", *TRUNK, L, Cause="16")),
        (20.0, chan("MusicOnHoldStop", *TRUNK, L)),
        (20.0, chan("BridgeLeave", *TRUNK, L, BridgeUniqueid="b1")),
        (20.0, chan("Hangup", *TRUNK, L, Cause="16")),
        (20.0, chan("BridgeLeave", *P101, L, BridgeUniqueid="b1")),
        (20.0, chan("Hangup", *P101, L, Cause="16")),
    ]
    (rec,) = records(run(events))
    assert rec.hangup_by == "caller"
    assert rec.talk_seconds == pytest.approx(4.0)


def test_a_ring_group_leg_reporting_ringing_late_is_not_offered_the_answered_call() -> None:
    """After the answer only a phone dialled since (a transfer's target) is offered the
    call: the other ring-group leg whose 180 Ringing crosses the answer gets no pop."""
    events = [
        *inbound_ringing()[:-1],  # 102 has not reported ringing yet
        (3.0, chan("Newstate", *P101, L, ChannelStateDesc="Up")),
        (3.0, chan("BridgeEnter", *P101, L, BridgeUniqueid="b1")),
        (3.0, chan("BridgeEnter", *TRUNK, L, BridgeUniqueid="b1")),
        (3.01, chan("Newstate", *P102, L, ChannelStateDesc="Ringing")),
        (3.02, chan("Hangup", *P102, L, Cause="26")),
        (9.0, chan("Hangup", *P101, L, Cause="16")),
        (9.0, chan("Hangup", *TRUNK, L, Cause="16")),
    ]
    pops = [f for f in run(events) if isinstance(f, CallProgress)]
    assert [(p.state, p.ringing, p.agent) for p in pops] == [
        ("ringing", ("101",), None),
        ("ringing", (), None),
        ("answered", (), "101"),
        ("ended", (), None),
    ]
