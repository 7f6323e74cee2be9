"""Record the tracker's extra Asterisk 22 captures with the lab PBX (../shared/asterisk).

Run under the rig lock, with the rig up in RUN_DIR:

    flock /tmp/pbx-rig.lock -c '../shared/asterisk/pbx up /tmp/trk && \
        python3 scripts/record_asterisk22.py /tmp/trk /tmp/trk-caps 15 16 ...; \
        ../shared/asterisk/pbx down /tmp/trk'

Each scenario writes OUT/NN-name/ in the layout of tests/fixtures/asterisk-22 (raw.ami,
events.jsonl, crm-sent.ami, audit.*, cdr.csv, recordings/, scenario.json) plus a truth.json
written from the plan below: what the simulated people were told to do, not what the
tracker made of it.
"""

from __future__ import annotations

import asyncio

from lab_record import Lab, Scenarios, record, run_scenarios

SCENARIOS = Scenarios()


async def ring_in(lab: Lab, did: str, caller: str, name: str, **how: object) -> dict[str, object]:
    """The carrier calls ``did`` as ``"name" <caller>`` (``how``: ring timeout, talk...);
    the call's truth so far, who called which number, for the scenario to complete."""
    await lab.carrier_call(did, caller, name, **how)
    return {"direction": "inbound", "caller": caller, "caller_name": name, "did": did}


# The scenarios are alike in shape on purpose: each is one call's script and its truth,
# the truth a line an aspect (who rang and answered, transfers, times, how it ended).
@SCENARIOS("15-blind-transfer-outside", "102 blind-transfers to an outside number")
async def s15(lab: Lab) -> dict[str, object]:
    await lab.plan(
        {
            "14155550177/102": "answer:2:blindxfer:3:4155550188",
            "out/4155550188": "answer:2:hangup:4",
        }
    )
    call = await ring_in(lab, "5551002", "+14155550177", "Tom Transfer", ring_timeout=30, talk=30)
    call.update(
        rang=["102"], answered=True, answered_by="102", final_agent=None,
        ended_with="+14155550188",
        transfers=[{"kind": "blind", "from": "102", "to": "+14155550188"}],
        ring_seconds_approx=2, talk_seconds_approx=9, hangup_by="callee", outcome="answered",
        detail="102 answers after ~2 s, after 3 s transfers blind (REFER) to the outside number "
        "4155550188 through the trunk; it answers after ~2 s and hangs up after 4 s",
    )  # fmt: skip
    return {"calls": [call]}


@SCENARIOS("16-attended-transfer", "Inbound to 102, attended transfer (*2) to 103")
async def s16(lab: Lab) -> dict[str, object]:
    await lab.plan({"14155550166/102": "answer:2:atxfer:3:103:3", "any/103": "answer:2:hold"})
    call = await ring_in(lab, "5551002", "+14155550166", "Ann Attended", ring_timeout=30, talk=16)
    call.update(
        rang=["102"], answered=True, answered_by="102", final_agent="103",
        transfers=[{"kind": "attended", "from": "102", "to": "103"}],
        ring_seconds_approx=2, talk_seconds_approx=16, hold_seconds_approx=5,
        hangup_by="caller", outcome="answered",
        detail="102 answers after ~2 s; after 3 s presses *2103 (the caller hears music on "
        "hold), 103 answers after ~2 s, 102 hangs up 3 s later and the caller talks with 103 "
        "until it hangs up 16 s after it was first answered",
    )  # fmt: skip
    return {"calls": [call]}


@SCENARIOS("17-blind-transfer", "Inbound to 102, blind transfer (REFER) to 103")
async def s17(lab: Lab) -> dict[str, object]:
    await lab.plan({"14155550155/102": "answer:2:blindxfer:3:103", "any/103": "answer:2:hold"})
    call = await ring_in(lab, "5551002", "+14155550155", "Ben Blind", ring_timeout=30, talk=12)
    call.update(
        rang=["102", "103"], answered=True, answered_by="102", final_agent="103",
        transfers=[{"kind": "blind", "from": "102", "to": "103"}],
        ring_seconds_approx=2, talk_seconds_approx=10, hangup_by="caller", outcome="answered",
        detail="102 answers after ~2 s, after 3 s transfers blind (REFER) to 103, which answers "
        "after ~2 s; the caller hangs up 12 s after it was first answered",
    )  # fmt: skip
    return {"calls": [call]}


@SCENARIOS("18-declined", "102 declines a direct call; 101 declines a ring-group call")
async def s18(lab: Lab) -> dict[str, object]:
    await lab.plan({"14155550144/102": "reject"})
    first = await ring_in(lab, "5551002", "+14155550144", "Dee Declined", ring_timeout=30, talk=5)
    first.update(
        rang=["102"], declined=["102"], answered=False, answered_by=None,
        ring_seconds_approx=0, talk_seconds_approx=0, hangup_by="pbx", outcome="missed",
        detail="102's phone declines the call at once (SIP 403, no 180 Ringing first); the PBX "
        "hangs up the caller",
    )  # fmt: skip
    await asyncio.sleep(3)
    await lab.wait_idle(quiet=2)
    await lab.plan({"14155550145/101": "reject", "14155550145/102": "answer:3:hold"})
    second = await ring_in(lab, "5551000", "+14155550145", "Dan Declined", ring_timeout=30, talk=4)
    second.update(
        rang=["101", "102"], declined=["101"], answered=True, answered_by="102",
        ring_seconds_approx=3, talk_seconds_approx=4, hangup_by="caller", outcome="answered",
        detail="ring group: 101 declines at once (SIP 403), 102 answers after ~3 s",
    )  # fmt: skip
    return {"calls": [first, second]}


@SCENARIOS("19-click-to-call-no-answer", "Originate to 101, which never answers")
async def s19(lab: Lab) -> dict[str, object]:
    await lab.plan({"any/101": "ring", "out/4155550123": "answer:2:hold"})
    await lab.originate(
        "PJSIP/101",
        "4155550123",
        context="from-internal",
        caller_id='"Call to 4155550123" <4155550123>',
        timeout_s=8,
        action_id="c2c-0019",
        account="crm-c2c-0019",
        variables={"CRM_CALL_ID": "c2c-0019"},
    )
    call = {
        "direction": "outbound",
        "kind": "click-to-call (AMI Originate, Async: true, ActionID c2c-0019)",
        "originate": {
            "Channel": "PJSIP/101", "Context": "from-internal", "Exten": "4155550123",
            "Timeout": 8000,
        },
        "caller": "101", "caller_name": "Alice Adams", "callee": "4155550123",
        "answered": False, "answered_by": None, "rang": ["101"],
        "ring_seconds_approx": 8, "talk_seconds_approx": 0, "hangup_by": "pbx",
        "outcome": "failed", "lead": False,
        "detail": "the PBX rings 101 for the Originate's 8 s; 101 never answers, so "
        "4155550123 is never dialled (OriginateResponse Failure, Reason 3)",
    }  # fmt: skip
    return {"calls": [call]}


@SCENARIOS("20-queue-second-member", "Queue call, 102 rings out, 103 answers")
async def s20(lab: Lab) -> dict[str, object]:
    await lab.plan({"14155550133/102": "ring", "14155550133/103": "answer:2:hold"})
    # The PBX answers before Queue(): the caller's "talk" runs from then, queue wait included.
    call = await ring_in(lab, "5552000", "+14155550133", "Quinn Queue", ring_timeout=60, talk=18)
    call.update(
        queue="support", rang=["102", "103"], answered=True, answered_by="103",
        ring_seconds_approx=8, talk_seconds_approx=10, hangup_by="caller", outcome="answered",
        detail="queue support (linear): 102 rings 6 s without answering, 103 answers after ~2 s; "
        "the caller hangs up 18 s after the PBX answered it (before Queue), so ~10 s of talk",
    )  # fmt: skip
    return {"calls": [call]}


@SCENARIOS("21-queue-abandoned", "Queue call, caller gives up while members ring")
async def s21(lab: Lab) -> dict[str, object]:
    await lab.plan({"14155550122/102": "ring", "14155550122/103": "ring"})
    call = await ring_in(lab, "5552000", "+14155550122", "Abe Abandon", ring_timeout=60, talk=60,
                         abandon_after=8)  # fmt: skip
    call.update(
        queue="support", rang=["102", "103"], answered=False, answered_by=None,
        ring_seconds_approx=8, talk_seconds_approx=0, hangup_by="caller", outcome="abandoned",
        detail="queue support: 102 rings 6 s, then 103; the caller gives up after 8 s",
    )  # fmt: skip
    return {"calls": [call]}


@SCENARIOS("22-busy", "Inbound to a busy 102; outbound to a busy number")
async def s22(lab: Lab) -> dict[str, object]:
    await lab.plan({"14155550111/102": "busy"})
    first = await ring_in(lab, "5551002", "+14155550111", "Bea Busy", ring_timeout=30, talk=5)
    first.update(
        rang=[], answered=False, answered_by=None,
        ring_seconds_approx=0, talk_seconds_approx=0, hangup_by="pbx", outcome="busy",
        detail="102's phone answers 486 Busy Here; the PBX hangs up with cause 17",
    )  # fmt: skip
    await asyncio.sleep(3)
    await lab.wait_idle(quiet=2)
    await lab.plan({"out/4155550199": "busy"})
    await lab.phone_call("101", "4155550199", ring_timeout=30, talk=5)
    second = {
        "direction": "outbound", "caller": "101", "caller_name": "Alice Adams",
        "callee": "4155550199", "via": "trunk", "answered": False, "answered_by": None,
        "ring_seconds_approx": 0, "talk_seconds_approx": 0, "hangup_by": "callee",
        "outcome": "busy", "detail": "the outside number answers 486 Busy Here",
    }  # fmt: skip
    return {"calls": [first, second]}


async def run_one(lab: Lab, key: str, outbase: str) -> None:
    await record(lab, SCENARIOS, key, outbase, extra=lambda c: {"recording_files": c.recordings})


if __name__ == "__main__":
    run_scenarios(SCENARIOS, run_one)
