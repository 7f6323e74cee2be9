"""Record the supervisor board's Asterisk 22 captures with the lab PBX (../shared/asterisk).

Run under the rig lock, with the rig up in RUN_DIR:

    flock /tmp/pbx-rig.lock -c '../shared/asterisk/pbx up /tmp/prs && \
        python3 scripts/record_presence.py /tmp/prs /tmp/prs-caps 30 31 ...; \
        ../shared/asterisk/pbx down /tmp/prs'

Each scenario writes OUT/NN-name/ in the layout of tests/fixtures/asterisk-22 plus a
truth.json written from what the scenario did (the actions sent, what the simulated people
were told to do), not from what the presence tracker made of it.  The list actions the CRM
sends after a (re)connect (CoreShowChannels, QueueStatus, DeviceStateList,
ExtensionStateList, PJSIPShowContacts) are sent at the scenario's ``resync`` points, so
their replies are in the capture too, tagged ``resync-<moment>-<action>``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lab_record import Lab, Scenarios, record, run_scenarios

RESYNC = (
    "CoreShowChannels",
    "QueueStatus",
    "DeviceStateList",
    "ExtensionStateList",
    "PJSIPShowContacts",
)
"""What the CRM's link sends after every (re)connect, in its order."""

SCENARIOS = Scenarios()


async def act(lab: Lab, fields: dict[str, str], log: list[dict[str, object]]) -> dict:
    """Send one AMI action as the capturing ``crm`` user and note it and its reply."""
    client = await lab.crm()
    reply = await client.action(fields)
    log.append(
        {
            "t_wall": round(time.time(), 3),
            "action": dict(fields),
            "response": reply.get("Response"),
            "message": reply.get("Message"),
        }
    )
    return reply


async def send(
    lab: Lab, log: list[dict[str, object]], action: str, action_id: str, **headers: str
) -> dict:
    """``act`` with the action's name first, its ``headers`` in the order given, then its id."""
    return await act(lab, {"Action": action, **headers, "ActionID": action_id}, log)


async def pause(
    lab: Lab,
    log: list[dict[str, object]],
    ext: str,
    paused: bool,
    *,
    queue: str | None = "support",
    reason: str | None = None,
    action_id: str | None = None,
) -> dict:
    """``QueuePause`` of handset ``ext`` in ``queue`` (None: every queue), with
    ``reason``; its ActionID says what it does (``pause-103``, ``unpause-102-all``)
    unless ``action_id`` is given."""
    headers = {"Queue": queue} if queue else {}
    headers |= {"Interface": f"PJSIP/{ext}", "Paused": "true" if paused else "false"}
    if reason:
        headers["Reason"] = reason
    action_id = action_id or f"{'pause' if paused else 'unpause'}-{ext}{'' if queue else '-all'}"
    return await send(lab, log, "QueuePause", action_id, **headers)


async def resync(lab: Lab, tag: str, log: list[dict[str, object]]) -> None:
    for name in RESYNC:
        await act(lab, {"Action": name, "ActionID": f"resync-{tag}-{name}"}, log)
    await asyncio.sleep(1.0)


# The scenarios are alike in shape on purpose: each is one rig script and its truth.
@SCENARIOS("30-queue-pause", "Pause and unpause queue members, with reasons")
async def s30(lab: Lab, log: list) -> dict[str, object]:
    await resync(lab, "idle", log)
    await pause(lab, log, "103", True, reason="lunch")
    await asyncio.sleep(1.5)
    await resync(lab, "paused", log)
    await pause(lab, log, "103", False)
    await asyncio.sleep(1.5)
    # paused in every queue (no Queue header), with a reason, then back
    await pause(lab, log, "102", True, queue=None, reason="training")
    await asyncio.sleep(1.5)
    await pause(lab, log, "102", False, queue=None)
    await asyncio.sleep(2.0)
    return {
        "final": {"support": {"102": "available", "103": "available"}},
        "steps": [
            "resync-idle: 102 and 103 members of support, not paused, phones registered idle",
            "103 paused in support with reason 'lunch'",
            "resync-paused: 103 paused (reason lunch), 102 available",
            "103 unpaused",
            "102 paused in every queue with reason 'training', then unpaused",
        ],
    }


@SCENARIOS("31-queue-add-remove", "Remove and add a member; refused actions")
async def s31(lab: Lab, log: list) -> dict[str, object]:
    await send(
        lab,
        log,
        "QueueAdd",
        "add-101",
        Queue="support",
        Interface="PJSIP/101",
        MemberName="Alice Adams",
        StateInterface="PJSIP/101",
        Paused="false",
    )
    await asyncio.sleep(1.5)
    await resync(lab, "added", log)
    await send(lab, log, "QueueRemove", "remove-101", Queue="support", Interface="PJSIP/101")
    await asyncio.sleep(1.5)
    # refusals the board must explain
    for action, action_id, queue, ext in (
        ("QueueRemove", "remove-103-static", "support", "103"),
        ("QueueAdd", "add-102-again", "support", "102"),
        ("QueueAdd", "add-nosuch", "nosuch", "101"),
        ("QueueRemove", "remove-101-not-member", "support", "101"),
    ):
        await send(lab, log, action, action_id, Queue=queue, Interface=f"PJSIP/{ext}")
    await pause(lab, log, "102", True, queue="nosuch", reason="x", action_id="pause-nosuch")
    await pause(lab, log, "101", True, action_id="pause-101-not-member")
    await asyncio.sleep(2.0)
    await resync(lab, "end", log)
    return {
        "final": {"support": ["102", "103"]},
        "steps": [
            "101 added to support (QueueAdd, MemberName Alice Adams, StateInterface PJSIP/101)",
            "resync-added: support has 101, 102 and 103",
            "101 removed from support (QueueRemove)",
            "refused: remove 103 (a static member, from queues.conf), add 102 again (already "
            "there), add to queue nosuch, remove 101 (not a member any more), pause in queue "
            "nosuch, pause 101 in support (not a member)",
            "resync-end: 102 and 103 members",
        ],
    }


@SCENARIOS("32-queue-waiting-answered", "Two callers wait; one per member answers")
async def s32(lab: Lab, log: list) -> dict[str, object]:
    await pause(lab, log, "103", True, reason="coaching")
    await lab.plan(
        {
            "14155550101/102": "answer:5:hold",
            "14155550102/103": "answer:2:hold",
            "14155550102/102": "ring",
        }
    )
    await asyncio.sleep(1.0)
    await lab.carrier_call("5552000", "+14155550101", "Wendy Wait", ring_timeout=90, talk=14)
    await asyncio.sleep(1.5)
    await lab.carrier_call("5552000", "+14155550102", "Xavier Next", ring_timeout=90, talk=24)
    await asyncio.sleep(1.5)
    await resync(lab, "waiting", log)  # both waiting, 102 ringing for Wendy
    await asyncio.sleep(4.0)
    await resync(lab, "talking", log)  # 102 talks to Wendy, Xavier waits alone (position 1)
    await pause(lab, log, "103", False)
    return {
        "calls": [
            {
                "caller": "+14155550101",
                "queue": "support",
                "position": 1,
                "rang": ["102"],
                "answered_by": "102",
                "wait_seconds_approx": 5,
                "talk_seconds_approx": 9,
            },
            {
                "caller": "+14155550102",
                "queue": "support",
                "position": 2,
                "rang": ["103"],
                "answered_by": "103",
                "wait_seconds_approx": 11,
                "talk_seconds_approx": 13,
            },
        ],
        "steps": [
            "103 paused in support with reason 'coaching'",
            "Wendy (+14155550101) calls the queue: 102 rings, answers after ~5 s",
            "1.5 s later Xavier (+14155550102) calls: waits at position 2 (103 paused, 102 "
            "ringing then busy: ringinuse=no)",
            "resync-waiting: two callers waiting, 102 ringing",
            "resync-talking: 102 on a call with Wendy, Xavier waiting at position 1",
            "103 unpaused: rings for Xavier, answers after ~2 s",
            "Wendy hangs up ~14 s after the PBX answered her; Xavier ~24 s after",
        ],
    }


@SCENARIOS("33-queue-abandon-paused", "All members paused; the caller gives up")
async def s33(lab: Lab, log: list) -> dict[str, object]:
    for ext in ("102", "103"):
        await pause(lab, log, ext, True, reason="meeting")
    await asyncio.sleep(1.0)
    await lab.carrier_call(
        "5552000", "+14155550103", "Yuri Gone", ring_timeout=60, talk=60, abandon_after=7
    )
    await asyncio.sleep(3.0)
    await resync(lab, "waiting", log)
    await asyncio.sleep(6.0)
    for ext in ("102", "103"):
        await pause(lab, log, ext, False)
    return {
        "calls": [
            {
                "caller": "+14155550103",
                "queue": "support",
                "rang": [],
                "answered_by": None,
                "outcome": "abandoned",
                "wait_seconds_approx": 6,
            }
        ],
        "steps": [
            "102 and 103 paused in support (reason 'meeting')",
            "Yuri (+14155550103) calls the queue, nobody rings, waits at position 1",
            "resync-waiting: one caller waiting, both members paused",
            "Yuri hangs up ~7 s after calling (abandon); both members unpaused",
        ],
    }


@SCENARIOS("34-unregister-register", "A handset unregisters and registers again")
async def s34(lab: Lab, log: list) -> dict[str, object]:
    lab.sim_cli("pjsip send unregister reg102")
    await asyncio.sleep(3.0)
    await resync(lab, "offline", log)
    lab.sim_cli("pjsip send register reg102")
    for _ in range(40):
        await asyncio.sleep(0.5)
        if "Avail" in lab.cli("pjsip show contact 102"):
            break
    await asyncio.sleep(2.0)
    await resync(lab, "online", log)
    return {
        "steps": [
            "handset 102 unregisters (REGISTER Expires: 0)",
            "resync-offline: 102's contact gone, device UNAVAILABLE, queue member unavailable",
            "handset 102 registers again",
            "resync-online: 102 registered, idle",
        ],
        "final": {"102": "available"},
    }


@SCENARIOS("35-internal-device-states", "Device and extension states of a call")
async def s35(lab: Lab, log: list) -> dict[str, object]:
    await lab.plan({"any/103": "answer:3:hangup:6"})
    await lab.phone_call("101", "103", talk=20)
    await asyncio.sleep(2.0)
    await resync(lab, "ringing", log)
    await asyncio.sleep(3.0)
    await resync(lab, "talking", log)
    return {
        "calls": [
            {
                "caller": "101",
                "callee": "103",
                "answered_by": "103",
                "direction": "internal",
                "ring_seconds_approx": 3,
                "talk_seconds_approx": 6,
                "hangup_by": "callee",
            }
        ],
        "steps": [
            "101 dials 103; 103 rings ~3 s, answers, hangs up after 6 s",
            "resync-ringing: 101 in use (calling), 103 ringing",
            "resync-talking: both in use",
        ],
    }


async def _until_calls_end(cap: Any) -> None:
    """Until the calls ended; a scenario without a call gives its last events 3 s."""
    if cap.tracker.seen:
        await cap.wait_idle()
    else:
        await asyncio.sleep(3.0)


async def run_one(lab: Lab, key: str, outbase: str) -> None:
    log: list[dict[str, object]] = []
    await record(lab, SCENARIOS, key, outbase, log,
                 settle=_until_calls_end, extra=lambda _: {"actions": log})  # fmt: skip


if __name__ == "__main__":
    run_scenarios(SCENARIOS, run_one)
