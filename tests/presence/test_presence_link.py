"""The presence tracker behind the live link, against the replay PBX over real TCP: the
resync after connecting tells the board who is where, the board's actions go through and
come back as events, and a PBX's refusal reaches the caller."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ami_bridge.link import AmiLink, LinkSettings
from ami_bridge.presence import AgentChange, PresenceChange, PresenceTracker
from ami_bridge.presence.actions import QueueRequest
from ami_bridge.presence.combined import WithPresence
from ami_bridge.profile import PbxProfile
from ami_bridge.replay_pbx import ReplayPbx
from ami_bridge.tracker import CallTracker

from .replaying import capture_dir

SCENARIO = capture_dir("32-queue-waiting-answered") / "events.jsonl"


class Collect:
    def __init__(self) -> None:
        self.facts: list[Any] = []
        self.arrived = asyncio.Event()

    def __call__(self, fact: Any) -> None:
        self.facts.append(fact)
        self.arrived.set()

    def reps(self, ext: str) -> list[Any]:
        return [
            f.rep
            for f in self.facts
            if isinstance(f, PresenceChange) and f.rep and f.rep.extension == ext
        ]

    async def until(self, check: Any, timeout: float = 5.0) -> Any:
        async with asyncio.timeout(timeout):
            while not (found := check()):
                self.arrived.clear()
                await self.arrived.wait()
        return found


def link_to(pbx: ReplayPbx, sink: Collect) -> AmiLink:
    s = LinkSettings(host=pbx.host, port=pbx.port, secret="crmsecret", ping_interval=5.0)
    tracker = WithPresence(CallTracker(PbxProfile()), PresenceTracker())
    return AmiLink(s, tracker, sink)


async def test_resync_on_connect_then_actions_round_trip() -> None:
    async with ReplayPbx(SCENARIO, speed=0, paused=True) as pbx:
        sink = Collect()
        async with link_to(pbx, sink) as link:
            await link.wait_state("connected")
            # the resync listed the configured members and the registered handsets
            assert pbx.actions["queuestatus"] == 1 and pbx.actions["pjsipshowcontacts"] == 1
            await sink.until(lambda: sink.reps("103") and sink.reps("102"))
            assert sink.reps("103")[-1].state == "available"
            assert sink.reps("103")[-1].queues == ("support",)

            req = QueueRequest("pause", "PJSIP/103", "support", "coaching")
            sent = time.monotonic()
            resp = await link.send_action(req.fields())
            assert resp.get("Response") == "Success"
            paused = await sink.until(lambda: [r for r in sink.reps("103") if r.state == "paused"])
            assert paused[0].paused_reason == "coaching"
            assert time.monotonic() - sent < 0.5
            stored = [f for f in sink.facts if isinstance(f, AgentChange)]
            assert [(a.kind, a.extension, a.reason) for a in stored][:1] == [
                ("paused", "103", "coaching"),
            ]

            added = await link.send_action(
                QueueRequest("add", "PJSIP/101", "support", member_name="Alice").fields(),
                timeout=2.0,
            )  # one answer, though panoramisk reads "Added interface to queue" as a list
            assert added.get("Response") == "Success"
            await sink.until(lambda: [r for r in sink.reps("101") if r.queues == ("support",)])
            refused = await link.send_action(
                QueueRequest("remove", "PJSIP/103", "support").fields()
            )
            assert refused.get("Response") == "Error"
            assert refused.get("Message") == "Member not dynamic"

            # the recorded calls play: callers wait, 102 rings
            pbx.resume()
            await sink.until(lambda: [r for r in sink.reps("102") if r.state == "ringing"])
            queues = [f.queue for f in sink.facts if isinstance(f, PresenceChange) and f.queue]
            await sink.until(
                lambda: any(
                    len(f.queue.waiting) == 2
                    for f in sink.facts
                    if isinstance(f, PresenceChange) and f.queue
                )
            )
            assert queues


async def test_a_reconnect_resyncs_a_member_added_while_the_link_was_down() -> None:
    async with ReplayPbx(SCENARIO, speed=0, paused=True) as pbx:
        sink = Collect()
        async with link_to(pbx, sink) as link:
            await link.wait_state("connected")
            await sink.until(lambda: sink.reps("102"))
            pbx.drop_clients()
            # while the CRM is away, someone adds 101 to the queue (the event is lost to it)
            pbx.queues.queue_add(
                {"Queue": "support", "Interface": "PJSIP/101", "MemberName": "Alice Adams"},
                lambda m: None,
                lambda m: pbx.queues.apply(m, pbx.now),
                {},
            )
            await link.wait_state("connecting", "disconnected", timeout=5)
            await link.wait_state("connected", timeout=10)
            alice = await sink.until(lambda: [r for r in sink.reps("101") if r.queues])
            assert alice[-1].queues == ("support",)
            added = [f for f in sink.facts if isinstance(f, AgentChange) and f.kind == "added"]
            assert [(a.extension, a.queue) for a in added] == [("101", "support")]
