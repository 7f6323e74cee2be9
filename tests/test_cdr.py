"""Asterisk's own CDR (Master.csv) -> the calls it stands for, on the real captures.

Each capture's ``cdr.csv`` is what cdr_csv appended to Master.csv during the scenario;
the calls it gives must be the calls ``truth.json`` planned: as many, with the same
direction, caller, DID/callee, answering extension, outcome and recording.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from ami_bridge.capture import read_capture
from ami_bridge.cdr import (
    CdrCalls,
    CdrRow,
    csv_line,
    group_rows,
    parse_line,
    parse_lines,
    row_from_cdr_event,
    zone,
)
from ami_bridge.numbers import to_e164
from config.settings import load_settings, pbx_profile

from .paths import SCENARIOS

PROFILE = pbx_profile(load_settings(env={}, demo=True))
UTC = dt.UTC


def _rows(scenario: Path) -> list[CdrRow]:
    lines = (scenario / "cdr.csv").read_text().splitlines()
    rows = parse_lines(lines, UTC)
    assert len(rows) == len(lines), "every line of a real Master.csv is a row"
    return rows


def _answered_by(want: dict) -> str | None:
    who = want.get("answered_by")
    if who and who.startswith("remote "):
        return to_e164(who.split()[1])  # an outside party is named in E.164, as the tracker does
    return who


def _did_kept(want: dict) -> bool:
    """Whether any CDR row of the call still holds its DID.  A blind transfer sends the
    caller to the target's extension, and Asterisk rewrites the dst of every party-A row
    still open to it; only a leg that ended before the transfer (a ring-group phone that
    lost the race) keeps the number the carrier called."""
    blind = [t for t in want.get("transfers", []) if t["kind"] == "blind"]
    if not blind:
        return True
    before = set(want["rang"]) - {t["to"] for t in blind}
    return before != {want["answered_by"]}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_each_capture_cdr_gives_the_planned_calls(scenario: Path) -> None:
    from ami_bridge.replay import replay_file

    truth = json.loads((scenario / "truth.json").read_text())
    records = CdrCalls(PROFILE).calls(_rows(scenario))
    live = {r.linkedid: r for r in replay_file(scenario / "events.jsonl", PROFILE)}
    assert len(records) == len(truth["calls"])
    assert len({r.linkedid for r in records}) == len(records)
    for want in truth["calls"]:
        if want["direction"] == "inbound":
            found = [r for r in records if r.caller == want["caller"]]
        else:
            found = [r for r in records if r.caller == want["caller"]
                     and r.callee == want["callee"]]  # fmt: skip
        assert len(found) == 1, want
        rec = found[0]
        assert rec.source == "cdr"
        assert rec.complete
        assert rec.direction == want["direction"]
        assert rec.answered is want["answered"]
        assert rec.answered_by == _answered_by(want)
        assert rec.outcome == want["outcome"]
        if want["direction"] == "inbound":
            # CDR limit: after a blind transfer no row may hold the DID any more; then
            # the record has none rather than the transfer target.
            assert rec.did == (want["did"] if _did_kept(want) else None)
            assert rec.caller_name == want["caller_name"]
        else:
            assert rec.callee == want["callee"]
        if "rang" in want:
            assert rec.rang == tuple(sorted(rec.rang, key=want["rang"].index))
            assert set(rec.rang) == set(want["rang"])
        assert rec.declined == tuple(want.get("declined", ()))
        if "final_agent" in want or "ended_with" in want:
            # transfers: the call ends with the party it was handed to
            assert rec.final_agent == want.get("ended_with", want.get("final_agent"))
        elif want["answered"] and want["direction"] != "outbound":
            assert rec.final_agent == want["answered_by"]
        if "queue" in want:
            assert rec.queue == want["queue"]
        # CDR limits: no row says who hung up an answered call, nor that a transfer
        # happened (only its legs); those stay empty rather than guessed.
        assert rec.transfers == ()
        if want["answered"]:
            assert rec.hangup_by is None
        else:
            hb = want["hangup_by"]
            assert rec.hangup_by == (hb if hb in ("caller", "pbx", "callee") else "callee")
        ring, talk = want["ring_seconds_approx"], want["talk_seconds_approx"]
        if isinstance(ring, dict):
            # Click-to-call: CDR bills from the rep's answer, so its talk time also
            # holds the customer's ringing.
            rep_ring, *others = ring.values()
            ring, talk = rep_ring, talk + sum(others)
        assert rec.ring_seconds == pytest.approx(ring, abs=1.5)
        if want.get("transfers"):
            # CDR limit: its rows cannot tell hold (an attended transfer's consultation)
            # or a blind transfer's target ringing from talk, so its talk is the whole
            # time from the first answer to the end, as the AMI capture times it too.
            seen = live[rec.linkedid]
            assert seen.answered_at is not None
            assert rec.talk_seconds == pytest.approx(seen.ended_at - seen.answered_at, abs=1.5)
            assert rec.talk_seconds >= talk + want.get("hold_seconds_approx", 0) - 1.5
        else:
            assert rec.talk_seconds == pytest.approx(talk, abs=1.5)
        assert rec.ended_at >= rec.started_at
    got = sorted(name for r in records for name in r.recordings)
    assert got == sorted(truth["recording_files"])


def test_linkedid_is_the_party_a_uniqueid_the_tracker_uses() -> None:
    """The key must match the tracker's, so a call both saw is one row."""
    from ami_bridge.replay import replay_file

    for scenario in SCENARIOS:
        live = {r.linkedid for r in replay_file(scenario / "events.jsonl", PROFILE)}
        cdr = {r.linkedid for r in CdrCalls(PROFILE).calls(_rows(scenario))}
        assert cdr == live, scenario.name


def test_times_are_read_in_the_pbx_zone() -> None:
    line = (SCENARIOS[0] / "cdr.csv").read_text().splitlines()[0]
    in_utc = parse_line(line, UTC)
    in_berlin = parse_line(line, zone("Europe/Berlin"))
    assert in_utc is not None and in_berlin is not None
    assert in_utc.start == dt.datetime(2026, 11, 22, 9, 54, 54, tzinfo=UTC).timestamp()
    assert in_utc.start - in_berlin.start == 3600  # 09:54 in Berlin is 08:54 UTC
    with pytest.raises(ValueError, match="time zone"):
        zone("Mars/Olympus")


def test_csv_line_round_trips_what_cdr_csv_wrote() -> None:
    for scenario in SCENARIOS:
        for line in (scenario / "cdr.csv").read_text().splitlines(keepends=True):
            row = parse_line(line, UTC)
            assert row is not None
            assert csv_line(row, UTC) == line


def test_cdr_events_are_the_csv_rows() -> None:
    """cdr_manager's Cdr events carry the rows cdr_csv writes (the replay PBX relies on it)."""
    for scenario in SCENARIOS:
        events = [m for m, _ in read_capture(scenario / "events.jsonl") if m.get("Event") == "Cdr"]
        from_events = [csv_line(r, UTC) for m in events if (r := row_from_cdr_event(m, UTC))]
        assert sorted(from_events) == sorted(
            (scenario / "cdr.csv").read_text().splitlines(keepends=True)
        )


def test_garbled_lines_are_skipped_not_fatal() -> None:
    good = (SCENARIOS[0] / "cdr.csv").read_text().splitlines()
    cut = good[0][: len(good[0]) // 2]
    lines = ["", "garbage", '"unterminated,"x', cut, cut + good[1], *good]
    assert len(parse_lines(lines, UTC)) == len(good)


def _row(**kw: object) -> CdrRow:
    base: dict[str, object] = dict(
        accountcode="", src="+14155550100", dst="5551000", dcontext="from-trunk",
        clid='"X" <+14155550100>', channel="PJSIP/trunk-00000001", dstchannel="",
        lastapp="Dial", lastdata="PJSIP/101,20,t", start=1000.0, answer=None, end=1010.0,
        duration=10, billsec=0, disposition="NO ANSWER", amaflags="DOCUMENTATION",
        uniqueid="1795000000.1", userfield="",
    )  # fmt: skip
    base.update(kw)
    return CdrRow(**base)  # type: ignore[arg-type]


def test_attended_transfer_rows_stay_one_call() -> None:
    """An attended transfer (101 takes the call, consults 102, hands it over) writes rows
    whose party A is 101's second channel and a Local pair: still one call, keyed by the
    caller's uniqueid, answered by 101 and ending with 102."""
    rows = [
        _row(dstchannel="PJSIP/101-00000002", answer=1003.0, end=1030.0, duration=30,
             billsec=27, disposition="ANSWERED", uniqueid="1795000000.1"),
        _row(src="101", dst="102", dcontext="from-internal", clid='"Alice" <101>',
             channel="PJSIP/101-00000003", dstchannel="Local/102@from-internal-00000001;1",
             start=1010.0, answer=1012.0, end=1020.0, duration=10, billsec=8,
             disposition="ANSWERED", uniqueid="1795000000.3"),
        _row(src="101", dst="102", dcontext="from-internal",
             channel="Local/102@from-internal-00000001;2", dstchannel="PJSIP/102-00000005",
             start=1010.0, answer=1012.0, end=1050.0, duration=40, billsec=38,
             disposition="ANSWERED", uniqueid="1795000000.4"),
        _row(src="+14155550100", dst="102", channel="PJSIP/trunk-00000001",
             dstchannel="PJSIP/102-00000005", start=1020.0, answer=1020.0, end=1050.0,
             duration=30, billsec=30, disposition="ANSWERED", uniqueid="1795000000.1"),
        # an unrelated call at the same time
        _row(src="+14155550999", channel="PJSIP/trunk-00000009", uniqueid="1795000000.9",
             dstchannel="PJSIP/101-0000000a", start=1005.0, end=1012.0, duration=7),
    ]  # fmt: skip
    assert len(group_rows(rows)) == 2
    calls = {r.linkedid: r for r in CdrCalls(PROFILE).calls(rows)}
    assert set(calls) == {"1795000000.1", "1795000000.9"}
    call = calls["1795000000.1"]
    assert call.direction == "inbound" and call.caller == "+14155550100"
    assert call.did == "5551000"
    assert call.answered_by == "101" and call.final_agent == "102"
    assert call.outcome == "answered"
    assert call.ended_at == 1050.0
    assert calls["1795000000.9"].outcome == "abandoned"


def test_same_channel_name_after_a_pbx_restart_is_another_call() -> None:
    """Channel counters restart with Asterisk: a name seen again hours later is not a link."""
    a = _row(dstchannel="PJSIP/101-00000001", uniqueid="1795000000.1")
    b = _row(dstchannel="PJSIP/101-00000001", uniqueid="1795090000.1",
             start=91000.0, end=91010.0)  # fmt: skip
    assert len(CdrCalls(PROFILE).calls([a, b])) == 2


def test_linkedid_column_groups_when_present() -> None:
    rows = [
        _row(dstchannel="PJSIP/101-00000002", uniqueid="1795000000.1", linkedid="1795000000.1"),
        _row(channel="Local/x@y-00000001;2", dstchannel="PJSIP/102-00000005",
             uniqueid="1795000000.4", linkedid="1795000000.1"),
    ]  # fmt: skip
    calls = CdrCalls(PROFILE).calls(rows)
    assert [c.linkedid for c in calls] == ["1795000000.1"]
    assert set(calls[0].rang) == {"101", "102"}


@pytest.mark.parametrize(
    ("rows", "direction", "outcome"),
    [
        ([_row(dstchannel="PJSIP/101-00000002", disposition="BUSY", duration=1)],
         "inbound", "busy"),
        ([_row(src="101", dst="00442079460958", dcontext="outbound", channel="PJSIP/101-1",
               dstchannel="PJSIP/trunk-00000002", disposition="BUSY", duration=2)],
         "outbound", "busy"),
        ([_row(src="101", dst="00442079460958", dcontext="outbound", channel="PJSIP/101-1",
               dstchannel="PJSIP/trunk-00000002", disposition="FAILED", duration=0)],
         "outbound", "failed"),
        ([_row(src="101", dst="102", dcontext="from-internal", channel="PJSIP/101-1",
               dstchannel="PJSIP/102-00000002", lastdata="PJSIP/102,20,t", duration=20)],
         "internal", "no_answer"),
        ([_row(lastapp="Queue", lastdata="support,t,,,60", answer=1000.0, billsec=10,
               disposition="ANSWERED")],
         "inbound", "abandoned"),
    ],
)  # fmt: skip
def test_outcomes_cdr_can_tell(rows: list[CdrRow], direction: str, outcome: str) -> None:
    (call,) = CdrCalls(PROFILE).calls(rows)
    assert (call.direction, call.outcome) == (direction, outcome)
    assert not call.answered


_SAME_RULES = ("direction", "caller", "rang", "declined", "answered", "answered_by",
               "final_agent", "outcome", "queue", "recordings")  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_cdr_and_tracker_follow_the_same_rules(scenario: Path) -> None:
    """The same call from the CDR and from the AMI traffic of the same moment: the same
    parties, named the same way (outside parties in E.164, a busy phone not rung, a
    declining one listed, a click the rep never took ``failed``)."""
    from ami_bridge.replay import replay_file

    cdr = {r.linkedid: r for r in CdrCalls(PROFILE).calls(_rows(scenario))}
    live = {r.linkedid: r for r in replay_file(scenario / "events.jsonl", PROFILE)}
    assert set(cdr) == set(live)
    for linkedid, want in live.items():
        got = cdr[linkedid]
        for name in _SAME_RULES:
            assert getattr(got, name) == getattr(want, name), name
        if got.did is None and want.transfers:  # a blind transfer rewrote every row's dst
            assert want.did is not None and got.callee is None and got.callee_e164 is None
        else:
            assert (got.did, got.callee, got.callee_e164) == (
                want.did,
                want.callee,
                want.callee_e164,
            )


def test_did_without_carrier_contexts() -> None:
    """With no ``trunk_contexts`` configured the DID is every dst no leg dialled: the
    number the carrier called survives, a blind transfer's target (an extension, or a
    number sent out) is not taken for it."""
    bare = dataclasses.replace(PROFILE, trunk_contexts=())
    cases = [("01-inbound-answered", "5551000"), ("16-attended-transfer", "5551002"),
             ("17-blind-transfer", None), ("15-blind-transfer-outside", None)]  # fmt: skip
    for name, did in cases:
        scenario = next(s for s in SCENARIOS if s.name == name)
        (call,) = CdrCalls(bare).calls(_rows(scenario))
        assert call.did == did, name


def test_an_inbound_call_answered_outside_names_the_number_in_e164() -> None:
    """A DID forwarded to a mobile: the outside party that took it, as the tracker names it."""
    rows = [
        _row(dstchannel="PJSIP/trunk-00000002", dcontext="from-trunk",
             lastdata="PJSIP/4155550142@trunk,30", answer=1004.0, duration=10, billsec=6,
             disposition="ANSWERED"),
    ]  # fmt: skip
    (call,) = CdrCalls(PROFILE).calls(rows)
    assert call.direction == "inbound" and call.did == "5551000"
    assert call.answered_by == call.final_agent == "+14155550142"
    assert call.rang == ()


def test_declined_is_only_a_phone_that_turned_the_call_down() -> None:
    """Ring-group legs that lose the race, time out, or end when the caller hangs up did
    not decline; a leg that stopped at once while the call still rang elsewhere did."""
    group = "PJSIP/101&PJSIP/102,15,t"
    lost_race = [
        _row(dstchannel="PJSIP/101-00000002", lastdata=group, answer=1004.0, billsec=6,
             disposition="ANSWERED"),
        _row(dstchannel="PJSIP/102-00000003", lastdata=group, end=1004.0, duration=4),
    ]  # fmt: skip
    caller_gave_up = [
        _row(dstchannel="PJSIP/101-00000002", lastdata=group, end=1005.0, duration=5),
        _row(dstchannel="PJSIP/102-00000003", lastdata=group, end=1005.0, duration=5),
    ]  # fmt: skip
    declined = [
        _row(dstchannel="PJSIP/101-00000002", lastdata=group, end=1001.0, duration=1),
        _row(dstchannel="PJSIP/102-00000003", lastdata=group, end=1015.0, duration=15),
        _row(lastapp="Hangup", lastdata="19", start=1015.0, end=1015.0, duration=0),
    ]  # fmt: skip
    calls = CdrCalls(PROFILE)
    (race,) = calls.calls(lost_race)
    assert (race.rang, race.declined, race.answered_by) == (("101", "102"), (), "101")
    (gone,) = calls.calls(caller_gave_up)
    assert (gone.outcome, gone.declined) == ("abandoned", ())
    (turned,) = calls.calls(declined)
    assert (turned.outcome, turned.rang, turned.declined) == ("missed", ("101", "102"), ("101",))


def _click(**kw: object) -> CdrRow:
    base: dict[str, object] = dict(
        src="4155550123", dst="s", dcontext="from-internal",
        clid='"Call to 4155550123" <4155550123>', channel="PJSIP/101-0000000e",
        lastapp="AppDial2", lastdata="(Outgoing Line)", end=1008.0, duration=8,
    )  # fmt: skip
    base.update(kw)
    return _row(**base)


@pytest.mark.parametrize(
    ("row", "outcome", "rang", "callee"),
    [
        (_click(), "failed", ("101",), "4155550123"),
        (_click(disposition="BUSY", end=1000.0, duration=0), "busy", (), "4155550123"),
        (_click(disposition="FAILED", end=1000.0, duration=0), "failed", (), "4155550123"),
        # a configured outbound caller ID does not say whom the rep was calling
        (_click(src="5551000", clid='"ACME" <5551000>'), "failed", ("101",), None),
    ],
)  # fmt: skip
def test_a_click_the_rep_never_took(
    row: CdrRow, outcome: str, rang: tuple[str, ...], callee: str | None
) -> None:
    """The Originate's channel rang (or not) and never answered: nothing was dialled."""
    (call,) = CdrCalls(PROFILE).calls([row])
    assert (call.direction, call.caller, call.callee) == ("outbound", "101", callee)
    assert (call.outcome, call.rang, call.answered) == (outcome, rang, False)
    assert call.caller_name is None and call.answered_by is None
    assert call.ring_seconds == (8.0 if rang else 0.0)


LAB = Path(__file__).parent / "fixtures" / "cdr-lab"
LAB_CAPTURES = sorted(p for p in LAB.iterdir() if (p / "cdr.csv").exists())


@pytest.mark.parametrize("capture", LAB_CAPTURES, ids=[p.name for p in LAB_CAPTURES])
def test_transfers_queues_and_busy_lines_match_the_tracker(capture: Path) -> None:
    """Real CDR of a blind and an attended transfer (rows with other party-A uniqueids,
    a Local pair), queue calls and a busy line: the same calls as the tracker makes of
    the AMI traffic recorded at the same time."""
    from ami_bridge.replay import replay_file

    rows = parse_lines((capture / "cdr.csv").read_text().splitlines(), UTC)
    cdr = {r.linkedid: r for r in CdrCalls(PROFILE).calls(rows)}
    live = {r.linkedid: r for r in replay_file(capture / "events.jsonl", PROFILE)}
    assert set(cdr) == set(live) and len(cdr) == 1
    for linkedid, want in live.items():
        got = cdr[linkedid]
        for name in ("direction", "caller", "callee", "callee_e164", "did", "rang",
                     "declined", "answered", "answered_by", "final_agent", "outcome",
                     "queue"):  # fmt: skip
            assert getattr(got, name) == getattr(want, name), name
        assert set(got.recordings) == set(want.recordings)
        assert got.ring_seconds == pytest.approx(want.ring_seconds, abs=1.5)
        if not want.transfers:  # CDR counts a transfer's hold and consultation as talk
            assert got.talk_seconds == pytest.approx(want.talk_seconds, abs=1.5)
        assert got.ended_at == pytest.approx(want.ended_at, abs=1.5)
