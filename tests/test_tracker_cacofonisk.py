"""The tracker on cacofonisk's 51 recorded streams (Asterisk 13, chan_sip, Local chains).

Upstream asserts callbacks in its own words; the table below states the same outcome in
ours (see ../shared/ami-fixtures/cacofonisk/README.md): where upstream says "completed"
for a caller that only reached a queue or IVR, a CRM must say it was NOT answered.
"""

from __future__ import annotations

import json

import pytest

from ami_bridge.capture import read_capture
from ami_bridge.facts import CallRecord
from ami_bridge.profile import PbxProfile
from ami_bridge.replay import replay_facts, replay_file

from .paths import cacofonisk_dir

# VoIPGRID's platform: one SIP trunk; accounts 1500100xx are extensions 201-203.
PROFILE = PbxProfile(
    trunk_endpoints=("voipgrid-siproute-docker",),
    trunk_contexts=("voipgrid_in",),
    extension_pattern=r"\d{3}|\d{9}",
)
A, B, C = "150010001", "150010002", "150010003"

# file -> one entry per expected record: (outcome, answered_by or None, final_agent or None)
# "*" means "any value" for a party that upstream does not name.
EXPECTED: dict[str, list[tuple[str, str | None, str | None]]] = {
    "mobile/acceptance_group_pickup.json": [("answered", "*", "*")],
    "mobile/acceptance_group_reject.json": [("answered", "*", "*")],
    "mobile/acceptance_reject.json": [("missed", None, None)],
    "mobile/acceptance_simple.json": [("answered", "*", "*")],
    "mobile/acceptance_timeout.json": [("missed", None, None)],
    "mobile/simple_mobile.json": [("answered", "*", "*")],
    "originate/cmn-world-world-unaccepted.json": [("missed", None, None)],
    "originate/cmn-world-world.json": [("answered", "*", "*")],
    "originate/ctd-account-account-xfer-attn-abbcac.json": [("answered", B, C)],
    "originate/ctd-account-account.json": [("answered", B, B)],
    "originate/ctd-account-world-deny-a.json": [("busy", None, None)],
    "originate/ctd-account-world-deny-b.json": [("busy", None, None)],
    "originate/ctd-account-world-no-ringing.json": [("answered", "+31260010001", "*")],
    "originate/ctd-account-world-xfer-attn-abacbc.json": [("answered", "+31260010001", C)],
    "originate/ctd-account-world.json": [("answered", "+31260010001", A)],
    "queue/queue_a_cancel.json": [("abandoned", None, None)],
    "queue/queue_attn_xfer.json": [("answered", A, B)],
    "queue/queue_blind_xfer.json": [("answered", A, B)],
    "queue/queue_group.json": [("answered", B, B)],
    "queue/queue_simple.json": [("answered", B, B)],
    "simple/a_created_no_answer.json": [("missed", None, None)],
    "simple/ab_a_cancel.json": [("no_answer", None, None)],
    "simple/ab_callgroup.json": [("answered", B, B)],
    "simple/ab_callgroup_no_answer.json": [("no_answer", None, None)],
    "simple/ab_dnd.json": [("busy", None, None)],
    "simple/ab_reject.json": [("busy", None, None)],
    "simple/ab_success_a_hangup.json": [("answered", B, B)],
    "simple/ab_success_b_hangup.json": [("answered", B, B)],
    "simple/ab_success_o3.json": [("answered", "100060002", "100060002")],
    "simple/ab_success_twoclients.json": [("answered", "*", "*"), ("answered", A, A)],
    "var_set/user_events.json": [("answered", "*", "*"), ("answered", A, A)],
    "xfer_attended/xfer_abacbc.json": [("answered", B, C)],
    "xfer_attended/xfer_abbcac.json": [("answered", B, C)],
    "xfer_attended/xfer_abbcac_anon.json": [("answered", A, C)],
    "xfer_attended/xfer_abcbac.json": [("answered", "*", "*")],
    "xfer_blind/xfer_blind_a_no_answer.json": [("answered", B, B)],
    "xfer_blind/xfer_blind_abacbc.json": [("answered", B, C)],
    "xfer_blind/xfer_blind_abbcac.json": [("answered", B, C)],
    "xfer_blind/xfer_blind_b_no_answer.json": [("answered", B, B)],
    "xfer_blind/xfer_blind_group.json": [("answered", A, "*")],
    "xfer_blind/xfer_blind_group_no_answer.json": [("answered", A, A)],
    "xfer_blind/xfer_blind_reject.json": [("answered", B, B)],
    "xfer_blonde/xfer_blonde_abacbc.json": [("answered", B, C)],
    "xfer_blonde/xfer_blonde_abbcac.json": [("answered", A, B)],
    "xfer_blonde/xfer_blonde_group_a.json": [("answered", "*", "*")],
    "xfer_blonde/xfer_blonde_group_b.json": [("answered", "*", "*")],
    "xfer_blonde/xfer_blonde_reject.json": [("busy", None, None), ("answered", A, A)],
    "xfer_misc/call_forwarding.json": [("answered", B, B)],
    "xfer_misc/call_forwarding_to_group.json": [("answered", "*", "*")],
    "xfer_misc/sip_pickup.json": [("answered", C, C)],
    "xfer_misc/star_pickup.json": [("answered", C, C)],
}
TRANSFERS = {
    "xfer_attended/xfer_abacbc.json": "attended",
    "xfer_attended/xfer_abbcac.json": "attended",
    "xfer_blind/xfer_blind_abacbc.json": "blind",
    "xfer_blind/xfer_blind_abbcac.json": "blind",
    "queue/queue_blind_xfer.json": "blind",
    "queue/queue_attn_xfer.json": "attended",
}


def test_table_covers_every_stream() -> None:
    files = sorted(str(p.relative_to(cacofonisk_dir())) for p in cacofonisk_dir().rglob("*.json"))
    assert len(files) == 51
    assert files == sorted(EXPECTED)


def _ordered(records: list[CallRecord]) -> list[CallRecord]:
    return sorted(records, key=lambda r: (r.outcome == "answered", r.answered_by or ""))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stream_gives_the_outcome_upstream_states(name: str) -> None:
    records = _ordered(replay_file(cacofonisk_dir() / name, PROFILE))
    expected = sorted(EXPECTED[name], key=lambda e: (e[0] == "answered", e[1] or ""))
    assert [r.outcome for r in records] == [e[0] for e in expected]
    for rec, (outcome, answered_by, final_agent) in zip(records, expected, strict=True):
        assert rec.answered is (outcome == "answered")
        if answered_by != "*":
            assert rec.answered_by == answered_by
        if final_agent != "*":
            assert rec.final_agent == final_agent
        assert rec.ended_at >= rec.started_at
        assert rec.ring_seconds >= 0 and rec.talk_seconds >= 0
    if name in TRANSFERS:
        (rec,) = records
        assert [t.kind for t in rec.transfers] == [TRANSFERS[name]]


def test_queue_member_that_never_rang_is_not_listed() -> None:
    (rec,) = replay_file(cacofonisk_dir() / "queue/queue_simple.json", PROFILE)
    assert rec.rang == (B,)


def test_do_not_disturb_target_never_rang() -> None:
    (rec,) = replay_file(cacofonisk_dir() / "simple/ab_dnd.json", PROFILE)
    assert rec.rang == ()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_attaching_mid_call_never_fails(name: str) -> None:
    """Upstream's robustness test: the stream with its first N events cut, for every N."""
    messages = list(read_capture(cacofonisk_dir() / name))
    known = {u for r in replay_file(cacofonisk_dir() / name, PROFILE) for u in r.uniqueids}
    for cut in range(1, len(messages) + 1):
        facts = replay_facts(messages[cut:], PROFILE)
        records = [f for f in facts if isinstance(f, CallRecord)]
        ids = [r.linkedid for r in records]
        assert len(ids) == len(set(ids))
        for rec in records:
            json.dumps(rec.to_json())  # every record stays serialisable
            assert rec.outcome in ("answered", "missed", "abandoned", "busy", "no_answer", "failed")
            assert set(rec.uniqueids) <= known  # no channel invented
