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
import collections
import os
import time

from lab_record import Lab, run_scenarios, write_scenario

RESYNC = (
    "CoreShowChannels",
    "QueueStatus",
    "DeviceStateList",
    "ExtensionStateList",
    "PJSIPShowContacts",
)
"""What the CRM's link sends after every (re)connect, in its order."""


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


async def resync(lab: Lab, tag: str, log: list[dict[str, object]]) -> None:
    for name in RESYNC:
        await act(lab, {"Action": name, "ActionID": f"resync-{tag}-{name}"}, log)
    await asyncio.sleep(1.0)


# The scenarios are alike in shape on purpose: each is one rig script and its truth.
async def s30(lab: Lab, log: list) -> dict[str, object]:
    await resync(lab, "idle", log)
    await send(
        lab,
        log,
        "QueuePause",
        "pause-103",
        Queue="support",
        Interface="PJSIP/103",
        Paused="true",
        Reason="lunch",
    )
    await asyncio.sleep(1.5)
    await resync(lab, "paused", log)
    await send(
        lab,
        log,
        "QueuePause",
        "unpause-103",
        Queue="support",
        Interface="PJSIP/103",
        Paused="false",
    )
    await asyncio.sleep(1.5)
    # paused in every queue (no Queue header), with a reason, then back
    await send(
        lab,
        log,
        "QueuePause",
        "pause-102-all",
        Interface="PJSIP/102",
        Paused="true",
        Reason="training",
    )
    await asyncio.sleep(1.5)
    await send(lab, log, "QueuePause", "unpause-102-all", Interface="PJSIP/102", Paused="false")
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


# Alike in shape to s30 and s32 on purpose: a rig script of actions, then its truth.
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
    for fields in (
        {
            "Action": "QueueRemove",
            "Queue": "support",
            "Interface": "PJSIP/103",
            "ActionID": "remove-103-static",
        },
        {
            "Action": "QueueAdd",
            "Queue": "support",
            "Interface": "PJSIP/102",
            "ActionID": "add-102-again",
        },
        {
            "Action": "QueueAdd",
            "Queue": "nosuch",
            "Interface": "PJSIP/101",
            "ActionID": "add-nosuch",
        },
        {
            "Action": "QueueRemove",
            "Queue": "support",
            "Interface": "PJSIP/101",
            "ActionID": "remove-101-not-member",
        },
        {
            "Action": "QueuePause",
            "Queue": "nosuch",
            "Interface": "PJSIP/102",
            "Paused": "true",
            "Reason": "x",
            "ActionID": "pause-nosuch",
        },
        {
            "Action": "QueuePause",
            "Queue": "support",
            "Interface": "PJSIP/101",
            "Paused": "true",
            "ActionID": "pause-101-not-member",
        },
    ):
        await act(lab, fields, log)
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


async def s32(lab: Lab, log: list) -> dict[str, object]:
    await send(
        lab,
        log,
        "QueuePause",
        "pause-103",
        Queue="support",
        Interface="PJSIP/103",
        Paused="true",
        Reason="coaching",
    )
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
    await send(
        lab,
        log,
        "QueuePause",
        "unpause-103",
        Queue="support",
        Interface="PJSIP/103",
        Paused="false",
    )
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


async def s33(lab: Lab, log: list) -> dict[str, object]:
    for ext in ("102", "103"):
        await send(
            lab,
            log,
            "QueuePause",
            f"pause-{ext}",
            Queue="support",
            Interface=f"PJSIP/{ext}",
            Paused="true",
            Reason="meeting",
        )
    await asyncio.sleep(1.0)
    await lab.carrier_call(
        "5552000", "+14155550103", "Yuri Gone", ring_timeout=60, talk=60, abandon_after=7
    )
    await asyncio.sleep(3.0)
    await resync(lab, "waiting", log)
    await asyncio.sleep(6.0)
    for ext in ("102", "103"):
        await send(
            lab,
            log,
            "QueuePause",
            f"unpause-{ext}",
            Queue="support",
            Interface=f"PJSIP/{ext}",
            Paused="false",
        )
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


SCENARIOS = collections.OrderedDict(
    [
        ("30", ("30-queue-pause", s30, "Pause and unpause queue members, with reasons")),
        ("31", ("31-queue-add-remove", s31, "Remove and add a member; refused actions")),
        ("32", ("32-queue-waiting-answered", s32, "Two callers wait; one per member answers")),
        ("33", ("33-queue-abandon-paused", s33, "All members paused; the caller gives up")),
        ("34", ("34-unregister-register", s34, "A handset unregisters and registers again")),
        ("35", ("35-internal-device-states", s35, "Device and extension states of a call")),
    ]
)


async def run_one(lab: Lab, key: str, outbase: str) -> None:
    dirname, func, title = SCENARIOS[key]
    lab.notes = []
    log: list[dict[str, object]] = []
    t_start = time.time()
    async with lab.capture(os.path.join(outbase, dirname)) as cap:
        desc = await func(lab, log)
        if cap.tracker.seen:
            await cap.wait_idle()
        else:
            await asyncio.sleep(3.0)
    write_scenario(lab, cap, dirname, title, t_start, desc, actions=log)


if __name__ == "__main__":
    run_scenarios(SCENARIOS, run_one)
