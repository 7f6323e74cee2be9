"""An overload slows the pipeline down; it never drops the link or a call.

A PBX gives up on a client that stops reading (Asterisk after the AMI user's
``writetimeout``; the replay PBX once its send buffer passes a limit), and every call
in progress at that moment is lost with the link.  The link used to stop reading the
socket once 10,000 facts waited for the store, so a CRM that fell behind at 300 calls/s
lost a quarter of them (2,208 of 3,000 written).  Here the store is stuck until a fast
replay PBX has sent a burst of calls that make more facts than the
link's bound: the link must keep reading, and once the store comes back every call is
written exactly once, on the first connection.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

import ami_bridge.replay_pbx as replay_pbx
from ami_bridge.facts import CallProgress, CallRecord, Fact
from ami_bridge.link import AmiLink, LinkSettings
from ami_bridge.profile import PbxProfile
from ami_bridge.replay_pbx import ReplayPbx
from ami_bridge.tracker import CallTracker
from tests.paths import ASTERISK22

BURST = ASTERISK22 / "11-burst-20-concurrent" / "raw.ami"
LOOPS = 16
"""Plays of the 20-call burst, each with fresh ids: 320 calls, about 17 MB of AMI."""
QUEUE_MAX = 1600
"""The link's bound: fewer than the calls' facts (about 6 a call), more than they
make once a call's updates merge behind (about 4 a call: no ring is merged away)."""


class StuckStore:
    """A fact sink whose store takes nothing until ``open`` (then everything)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.records: Counter[str] = Counter()
        self.progress = 0

    async def __call__(self, fact: Fact) -> None:
        await self.gate.wait()
        if isinstance(fact, CallRecord):
            self.records[fact.linkedid] += 1
        elif isinstance(fact, CallProgress):
            self.progress += 1


async def test_a_stuck_store_behind_a_fast_pbx_loses_no_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The replay PBX drops a client that left 256 KB unread (Asterisk: 100 ms unwritten).
    monkeypatch.setattr(replay_pbx, "_WRITE_BUFFER_LIMIT", 256 * 1024)
    store = StuckStore()
    async with ReplayPbx(BURST, speed=0, loops=LOOPS, paused=True) as pbx:
        settings = LinkSettings(host="127.0.0.1", port=pbx.port, username="crm",
                                secret="crmsecret", queue_max=QUEUE_MAX, tick_interval=0.05,
                                ping_interval=0.5, ping_timeout=0.5,
                                backlog_alarm=0.2)  # fmt: skip
        link = AmiLink(settings, CallTracker(PbxProfile()), store)
        async with link:
            await link.wait_state("connected", timeout=5)
            pbx.resume()
            await pbx.wait_done(60)
            most = link.backlog
            deadline = time.monotonic() + 5  # the link reads the last of it
            while link.status.events_total < pbx.played:
                assert time.monotonic() < deadline, (link.status.events_total, pbx.played)
                most = max(most, link.backlog)
                await asyncio.sleep(0.01)
            status = link.status
            assert status.state == "connected" and status.reconnects == 0, status.last_error
            assert status.pauses == 0 and most <= QUEUE_MAX
            assert status.merged > 0  # the store fell behind: live updates merged
            await asyncio.sleep(0.25)  # behind for longer than backlog_alarm
            status = link.status
            assert status.behind_since is not None and status.overloaded  # /healthz: not ok
            store.gate.set()  # the store is back
            deadline = time.monotonic() + 30
            while len(store.records) < 20 * LOOPS:
                assert time.monotonic() < deadline, f"{len(store.records)} calls written"
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # anything twice would come now
            status = link.status
            assert status.reconnects == 0
            assert status.behind_since is None and not status.overloaded  # caught up
    assert len(store.records) == 20 * LOOPS
    assert set(store.records.values()) == {1}  # every call exactly once
    assert store.progress >= 20 * LOOPS  # every call was shown live at least once


def progress(state: str, ringing: tuple[str, ...], linkedid: str = "1.1") -> CallProgress:
    return CallProgress(linkedid, state, "inbound", "+14155550199", None, "5551000",  # type: ignore[arg-type]
                        "5551000", ringing, None, 1.0)  # fmt: skip


async def test_behind_a_call_s_updates_merge_but_no_ring_is_merged_away() -> None:
    link = AmiLink(LinkSettings(queue_max=100, merge_after=1), CallTracker(PbxProfile()))
    other = progress("ringing", ("103",), linkedid="2.2")
    more = progress("ringing", ("101", "102"))
    answered = progress("answered", ())
    ended = progress("ended", ())
    link._emit([other])  # one fact waits: the link is behind by merge_after
    link._emit([progress("ringing", ("101",)), more])  # 101 still rings: merged
    link._emit([answered])  # 101 and 102 stop ringing: kept, so their pops show
    link._emit([ended])  # nothing rang in the answered state: merged
    link._emit([progress("answered", ("104",), linkedid="2.2")])  # 103 stops: kept
    got = []
    while link.backlog:
        item = link._facts.get_nowait()
        got.append(getattr(item, "fact", item))
    assert got == [other, more, ended, progress("answered", ("104",), linkedid="2.2")]
    assert link.status.merged == 2
