"""The PBX killed mid-call: the call is stored once, flagged incomplete, and ends when it
was last known alive, not when the link got back.

Before, the resync closed the vanished call at the time of the reconnect listing, so its
talk time counted the PBX's whole outage (14 s stored for about 6 s of real talk).  Now
it ends at the last moment the link heard from the PBX (its last event or Pong) before
the loss.
"""

from __future__ import annotations

import asyncio
import time

from ami_bridge.capture import read_capture
from ami_bridge.facts import CallProgress, CallRecord, Fact
from ami_bridge.link import AmiLink, LinkSettings
from ami_bridge.profile import PbxProfile
from ami_bridge.replay_pbx import ReplayPbx
from ami_bridge.tracker import CallTracker

from .paths import ASTERISK22

INBOUND = ASTERISK22 / "01-inbound-answered" / "raw.ami"
DOWN_FOR = 2.5
"""How long the PBX stays dead: what the old code added to the talk time."""


def live_timeline() -> list[tuple[dict[str, object], float]]:
    """The capture without its own Timestamp headers: event times are the link's clock,
    as with a PBX whose clock agrees with the CRM's."""
    return [({k: v for k, v in m.items() if k != "Timestamp"}, at)
            for m, at in read_capture(INBOUND)]  # fmt: skip


async def test_a_call_cut_by_the_pbx_dying_ends_when_it_was_last_alive() -> None:
    pbx = ReplayPbx(live_timeline(), speed=0, paused=True)  # type: ignore[arg-type]
    await pbx.start()
    facts: list[Fact] = []

    async def sink(fact: Fact) -> None:
        facts.append(fact)

    settings = LinkSettings(
        host=pbx.host, port=pbx.port, username="crm", secret="crmsecret",
        backoff_initial=0.05, backoff_max=0.2, ping_interval=0.2, ping_timeout=0.5,
        tick_interval=0.02, connect_timeout=1.0, login_timeout=1.0, resync_timeout=1.0,
    )  # fmt: skip
    link = AmiLink(settings, CallTracker(PbxProfile(finish_grace=0.1)), sink)
    try:
        await link.start()
        await link.wait_state("connected")

        def answered() -> bool:
            return any(isinstance(f, CallProgress) and f.state == "answered" for f in facts)

        deadline = time.monotonic() + 10
        while not answered():
            assert await pbx.step(), "the capture ended before the call was answered"
            await asyncio.sleep(0.01)
            assert time.monotonic() < deadline
        answered_seen = time.time()
        await asyncio.sleep(1.0)  # they talk; the link pings meanwhile
        killed = time.time()
        await pbx.restart(down_for=DOWN_FOR)  # every channel gone, no answer for a while

        deadline = time.monotonic() + 15
        while not any(isinstance(f, CallRecord) for f in facts):
            assert time.monotonic() < deadline, "the cut call was never finished"
            await asyncio.sleep(0.05)
        back = time.time()
    finally:
        await link.stop()
        await pbx.close()

    [rec] = [f for f in facts if isinstance(f, CallRecord)]
    assert not rec.complete, "a call cut by the PBX's death must say it is partial"
    assert rec.answered and rec.answered_at is not None
    assert back - killed >= DOWN_FOR
    # It ended when the link last heard the PBX: at most a ping interval before the kill.
    assert killed - 0.5 <= rec.ended_at <= killed + 0.1, (rec.ended_at - killed)
    real_talk = killed - rec.answered_at
    assert abs(rec.talk_seconds - real_talk) <= 0.5, (rec.talk_seconds, real_talk)
    assert rec.answered_at <= answered_seen + 0.1
