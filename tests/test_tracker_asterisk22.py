"""Every call of every recorded Asterisk 22 scenario comes out exactly once and right.

truth.json is what the call driver planned; ring and talk seconds are compared with 1.5 s
of slack, as the capture README advises.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ami_bridge.facts import CallRecord
from ami_bridge.replay import replay_file
from config.settings import load_settings, pbx_profile

from .paths import SCENARIOS

PROFILE = pbx_profile(load_settings(env={}))


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
        return who.split()[1]  # an outside party is named by the number dialled
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
        if want["answered"] and want["direction"] != "outbound":
            assert rec.final_agent == want["answered_by"]
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
        for name in rec.recordings:  # each file belongs to the call that answered
            assert (rec.answered_by or "") in name or (rec.caller or "") in name


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
