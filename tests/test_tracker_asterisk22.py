"""Every call of every recorded Asterisk 22 scenario comes out exactly once and right.

truth.json is what the call driver planned; ring and talk seconds are compared with 1.5 s
of slack, as the capture README advises.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ami_bridge.capture import read_capture
from ami_bridge.facts import CallProgress, CallRecord
from ami_bridge.numbers import to_e164
from ami_bridge.replay import replay_facts, replay_file
from config.settings import load_settings, pbx_profile

from .paths import SCENARIOS

PROFILE = pbx_profile(load_settings(env={}, demo=True))


def _truth(scenario: Path) -> dict:
    return json.loads((scenario / "truth.json").read_text())


def _match(records: list[CallRecord], want: dict) -> CallRecord:
    """The record for a planned call: inbound calls by caller, others by caller+callee."""
    if want["direction"] == "inbound":
        found = [r for r in records if r.caller == want["caller"]]
    else:
        found = [r for r in records if r.caller == want["caller"] and r.callee == want["callee"]]
    assert len(found) == 1, f"expected exactly one record for {want}, got {found}"
    return found[0]


def _expected_answered_by(want: dict) -> str | None:
    who = want.get("answered_by")
    if who and who.startswith("remote "):
        return to_e164(who.split()[1])  # an outside party is named in E.164, like any other
    return who


def _approx(want: object) -> float:
    if isinstance(want, dict):  # click-to-call: the rep's phone, then the customer's
        return float(list(want.values())[-1])
    return float(want)  # type: ignore[arg-type]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
@pytest.mark.parametrize("source", ["events.jsonl", "raw.ami"])
def test_every_planned_call_comes_out_once_and_right(scenario: Path, source: str) -> None:
    truth = _truth(scenario)
    records = replay_file(scenario / source, PROFILE)
    assert len(records) == len(truth["calls"])
    assert len({r.linkedid for r in records}) == len(records)
    for want in truth["calls"]:
        rec = _match(records, want)
        assert rec.direction == want["direction"]
        assert rec.answered is want["answered"]
        assert rec.outcome == want["outcome"]
        assert rec.answered_by == _expected_answered_by(want)
        if want["direction"] == "inbound":
            assert rec.did == want["did"]
            assert rec.rang == tuple(sorted(rec.rang, key=want["rang"].index))
            assert set(rec.rang) == set(want["rang"])
        else:
            assert rec.callee == want["callee"]
        if "final_agent" in want or "ended_with" in want:
            # transfers: the call ends with the party it was handed to
            assert rec.final_agent == want.get("ended_with", want.get("final_agent"))
        elif want["answered"] and want["direction"] != "outbound":
            assert rec.final_agent == want["answered_by"]
        got_transfers = [{"kind": t.kind, "from": t.from_, "to": t.to} for t in rec.transfers]
        assert got_transfers == want.get("transfers", [])
        assert rec.declined == tuple(want.get("declined", ()))
        if "queue" in want:
            assert rec.queue == want["queue"]
        hb = want["hangup_by"]
        expected_hb = (
            hb if hb in ("caller", "pbx") else ("caller" if hb == want["caller"] else "callee")
        )
        assert rec.hangup_by == expected_hb
        slack = 1.5 if source == "events.jsonl" else 3.5  # raw bytes carry no receive times
        assert rec.ring_seconds == pytest.approx(_approx(want["ring_seconds_approx"]), abs=slack)
        assert rec.talk_seconds == pytest.approx(_approx(want["talk_seconds_approx"]), abs=slack)
        assert rec.complete
    got = sorted(name for r in records for name in r.recordings)
    assert got == sorted(truth["recording_files"])
    for rec in records:
        # each file belongs to a party of its own call: who answered, the caller, or
        # whoever a transfer handed the call to (outside numbers are named nationally)
        parties = [rec.answered_by, rec.caller, rec.final_agent, *(t.to for t in rec.transfers)]
        tails = {p.lstrip("+")[-7:] for p in parties if p}
        for name in rec.recordings:
            assert any(tail in name for tail in tails), (name, parties)


def test_click_to_call_record_is_linked_to_its_originate() -> None:
    (rec,) = replay_file(
        next(s for s in SCENARIOS if s.name.endswith("click-to-call")) / "events.jsonl", PROFILE
    )
    assert rec.originate_id == "c2c-0001"
    assert rec.caller == "103"  # not the Originate's CallerID 4155550123
    assert rec.callee_e164 == "+14155550123"
    assert rec.rang == ("103",)


def test_outbound_callee_is_normalised_for_matching() -> None:
    (rec,) = replay_file(
        next(s for s in SCENARIOS if "outbound" in s.name) / "events.jsonl", PROFILE
    )
    assert rec.callee == "00442079460958"
    assert rec.callee_e164 == "+442079460958"
    assert rec.final_agent == "101"


def test_audit_user_stream_gives_the_same_calls() -> None:
    """The restricted AMI user gets no VarSet: recordings must come from the Cdr userfield."""
    for scenario in SCENARIOS:
        full = {r.linkedid: r for r in replay_file(scenario / "events.jsonl", PROFILE)}
        audit = {r.linkedid: r for r in replay_file(scenario / "audit.events.jsonl", PROFILE)}
        assert audit.keys() == full.keys(), scenario.name
        for key, rec in full.items():
            assert audit[key].outcome == rec.outcome, scenario.name
            assert audit[key].answered_by == rec.answered_by, scenario.name
            assert audit[key].recordings == rec.recordings, scenario.name


def _queue_figures(path: Path) -> dict[str, dict[str, float]]:
    """Asterisk's own queue figures per caller channel: AgentConnect's HoldTime (seconds
    the caller waited for a member) and AgentComplete's TalkTime, whole seconds."""
    out: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        msg = json.loads(line)
        if msg.get("Event") == "AgentConnect":
            out.setdefault(msg["Uniqueid"], {})["hold"] = float(msg["HoldTime"])
        elif msg.get("Event") == "AgentComplete":
            out.setdefault(msg["Uniqueid"], {})["talk"] = float(msg["TalkTime"])
    return out


def test_queue_ring_and_talk_agree_with_asterisks_queue_figures() -> None:
    """The queue reports its own wait and talk: ours must agree within a second (Asterisk
    counts whole seconds of its clock)."""
    checked = 0
    for scenario in SCENARIOS:
        figures = _queue_figures(scenario / "events.jsonl")
        if not figures:
            continue
        for rec in replay_file(scenario / "events.jsonl", PROFILE):
            fig = figures.get(rec.linkedid)
            if fig is None:
                continue
            assert rec.queue is not None
            assert rec.ring_seconds == pytest.approx(fig["hold"], abs=1.0), scenario.name
            assert rec.talk_seconds == pytest.approx(fig["talk"], abs=1.0), scenario.name
            checked += 1
    assert checked >= 1


def test_attended_transfer_excludes_the_callers_hold_from_talk() -> None:
    """The caller hears music from the transferer's *2 until the transfer completes: that
    is hold, not talk, however the bridges are arranged meanwhile."""
    path = next(s for s in SCENARIOS if s.name.endswith("attended-transfer")) / "events.jsonl"
    moh: list[float] = []
    for line in path.read_text().splitlines():
        msg = json.loads(line)
        if msg.get("Event") in ("MusicOnHoldStart", "MusicOnHoldStop"):
            moh.append(msg["_t_wall"])
    held = moh[1] - moh[0]
    (rec,) = replay_file(path, PROFILE)
    assert held > 5
    assert rec.talk_seconds == pytest.approx(rec.ended_at - rec.answered_at - held, abs=0.2)
    assert rec.transfers[0].to == "103" and rec.final_agent == "103"


def test_a_did_that_is_no_real_number_has_no_e164() -> None:
    """5551000 read in region US parses as +15551000, a number nobody has: the DID stays as
    dialled and callee_e164 is null, so nothing is ever matched on it."""
    (rec,) = replay_file(
        next(s for s in SCENARIOS if s.name.endswith("inbound-answered")) / "events.jsonl", PROFILE
    )
    assert (rec.did, rec.callee, rec.callee_e164) == ("5551000", "5551000", None)


def _scenario(suffix: str) -> Path:
    return next(s for s in SCENARIOS if s.name.endswith(suffix))


def _progress(path: Path) -> list[CallProgress]:
    return [f for f in replay_facts(read_capture(path), PROFILE) if isinstance(f, CallProgress)]


def test_a_blind_transfer_rings_its_target_then_hands_it_the_call() -> None:
    """102 answers, then sends the caller to 103 (REFER): while 103's phone rings the call
    says so (her screen pop), nobody has the caller meanwhile, and once she answers she is
    the rep on the call; it left 102.  Nobody else is rung after the answer."""
    seen = _progress(_scenario("17-blind-transfer") / "events.jsonl")
    answered = [p for p in seen if p.state == "answered"]
    assert answered[0].agent == "102" and answered[0].handed_on == ()
    assert [p.ringing for p in answered if p.ringing] == [("103",)]
    ringing = next(p for p in answered if p.ringing)
    assert ringing.answered_by == "102" and ringing.agent is None
    assert ringing.handed_on == ("102",)
    last = answered[-1]
    assert (last.ringing, last.agent, last.handed_on) == ((), "103", ("102",))
    assert last.answered_by == "102"  # who answered first does not change


def test_an_attended_transfer_rings_the_consult_and_hands_the_call_on() -> None:
    """102 consults 103 while the caller holds: 103's phone rings for this call (she is
    offered it), 102 keeps it until the transfer completes, then 103 has it."""
    seen = _progress(_scenario("16-attended-transfer") / "events.jsonl")
    answered = [p for p in seen if p.state == "answered"]
    ringing = [p for p in answered if p.ringing]
    assert [p.ringing for p in ringing] == [("103",)]
    assert ringing[0].agent == "102"
    last = answered[-1]
    assert (last.ringing, last.agent, last.handed_on) == ((), "103", ("102",))


def test_a_blind_transfer_out_leaves_no_rep_on_the_call() -> None:
    seen = _progress(_scenario("15-blind-transfer-outside") / "events.jsonl")
    last = [p for p in seen if p.state == "answered"][-1]
    assert (last.ringing, last.agent, last.handed_on) == ((), None, ("102",))


def _attended_as_asterisk_may_send_it() -> tuple[list[tuple[dict, float]], dict]:
    """Capture 16 as the live PBX sent it in some runs: the transferer hung up and left
    the consult bridge *before* Asterisk merged the bridges, so its AttendedTransfer names
    no TransferTarget (the consult bridge had no peer of the transferer left).  Returns the
    stream without the AttendedTransfer, and the event itself."""
    msgs = [json.loads(line) for line in (
        _scenario("16-attended-transfer") / "events.jsonl").read_text().splitlines()]  # fmt: skip
    xfer = next(m for m in msgs if m.get("Event") == "AttendedTransfer")
    merge = next(m for m in msgs if m.get("Event") == "BridgeMerge")
    consult = merge["FromBridgeUniqueid"]
    leave = next(
        m for m in msgs
        if m.get("Event") == "BridgeLeave" and m.get("BridgeUniqueid") == consult
        and m.get("Uniqueid") == xfer["OrigTransfererUniqueid"]
    )  # fmt: skip
    rest = [m for m in msgs if m is not xfer and m is not leave]
    rest.insert(rest.index(merge), leave)
    event = {k: v for k, v in xfer.items() if not k.startswith("TransferTarget")}
    return [(m, m["_t_wall"]) for m in rest], event


def test_an_attended_transfer_names_its_target_in_every_order_asterisk_sends() -> None:
    """Asterisk publishes AttendedTransfer on its own topic: it may reach us before the
    bridges merge, between, or after the consult's Local pair optimized away and hung up,
    and it may name no TransferTarget at all.  The target is 103 every time."""
    stream, event = _attended_as_asterisk_may_send_it()
    first_merge = next(i for i, (m, _) in enumerate(stream) if m.get("Event") == "BridgeLeave"
                       and m.get("Uniqueid") == event["OrigTransfererUniqueid"])  # fmt: skip
    last = max(i for i, (m, _) in enumerate(stream) if m.get("Event") == "Hangup")
    checked = 0
    for named in (event, {**event, **_target_fields()}):
        for pos in range(first_merge, last + 1):
            at = stream[pos - 1][1]
            seq = [*stream[:pos], (named, at), *stream[pos:]]
            (rec,) = [f for f in replay_facts(seq, PROFILE) if isinstance(f, CallRecord)]
            got = [(t.kind, t.from_, t.to) for t in rec.transfers]
            assert got == [("attended", "102", "103")], (pos, stream[pos - 1][0].get("Event"))
            assert rec.final_agent == "103"
            checked += 1
    assert checked > 100


def _target_fields() -> dict[str, str]:
    msgs = (_scenario("16-attended-transfer") / "events.jsonl").read_text().splitlines()
    xfer = next(json.loads(line) for line in msgs if '"AttendedTransfer"' in line)
    return {k: v for k, v in xfer.items() if k.startswith("TransferTarget")}
