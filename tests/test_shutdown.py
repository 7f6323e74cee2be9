"""Every close path ends within a bounded time, whatever it waits for.

A link stopped with an Originate in flight (the PBX never answers it) and a sink that
never returns; a runtime whose parts hang on close: each returns within its bound, and
what waited is told what happened (the Originate fails with "PBX link down").
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ami_bridge.facts import Fact, OriginateResult
from ami_bridge.link import AmiLink
from ami_bridge.originate import OriginateRequest
from ami_bridge.replay_pbx import OriginateScript, ReplayPbx
from crm.closing import close_within
from tests.test_link import RecordingTracker, settings
from tests.web.conftest import web_settings
from web.runtime import open_runtime


class Deaf:
    """Work that shrugs off cancellation (as a write stuck in a shielded section would),
    until the test lets it go (so the test's event loop can still close)."""

    def __init__(self) -> None:
        self.released = False
        self.got: list[Fact] = []

    async def __call__(self, fact: Fact | None = None) -> None:
        if fact is not None:
            self.got.append(fact)
        while not self.released:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue

    async def release(self) -> None:
        self.released = True
        await asyncio.sleep(0.15)


async def test_stop_with_an_originate_in_flight_and_a_stuck_sink_is_bounded() -> None:
    sink = Deaf()
    async with ReplayPbx(None, speed=0) as pbx:
        pbx.script_originate(OriginateScript.silent())
        link = AmiLink(settings(pbx), RecordingTracker(), sink)
        await link.start()
        await link.wait_state("connected")
        req = OriginateRequest("c2c-stop", "PJSIP/103", "4155550123", timeout_ms=30_000)
        pending = asyncio.create_task(link.originate(req))
        await pbx.wait_for(lambda: pbx.actions["originate"] == 1)
        started = time.monotonic()
        await asyncio.wait_for(link.stop(drain_timeout=0.5), 10)
        assert time.monotonic() - started < 3
        result = await asyncio.wait_for(pending, 1)
        assert isinstance(result, OriginateResult)
        assert (result.success, result.reason_text) == (False, "PBX link down")
        assert link.status.state == "disconnected"
        assert pbx.actions["originate"] == 1
        assert sink.got  # the sink was stuck on the "PBX link down" fact
    await sink.release()


async def test_close_within_gives_up_on_a_part_that_ignores_cancellation() -> None:
    deaf = Deaf()
    started = time.monotonic()
    assert await close_within(deaf(), 0.2, "a deaf part") is False
    assert time.monotonic() - started < 2.5
    assert await close_within(asyncio.sleep(0), 0.2, "a quick part") is True
    await deaf.release()


async def test_a_runtime_whose_parts_hang_still_closes(tmp_path: Path) -> None:
    """An Originate in flight on the runtime's link, and a part that never closes: the
    runtime closes within its per-part bound and the store is closed after it."""
    async with ReplayPbx(None, speed=0, secret="s") as pbx:
        pbx.script_originate(OriginateScript.silent())
        cfg = web_settings(tmp_path, ami={"host": "127.0.0.1", "port": pbx.port,
                                          "username": "crm", "secret": "s"})  # fmt: skip
        rt = await open_runtime(cfg)
        assert rt.link is not None
        await rt.link.wait_state("connected", timeout=5)
        req = OriginateRequest("c2c-rt", "PJSIP/103", "4155550123", timeout_ms=30_000)
        pending = asyncio.create_task(rt.link.originate(req))
        await pbx.wait_for(lambda: pbx.actions["originate"] == 1)

        never = Deaf()
        rt.on_close(never)
        started = time.monotonic()
        await asyncio.wait_for(rt.close(step_timeout=0.5), 15)
        assert time.monotonic() - started < 6
        result = await asyncio.wait_for(pending, 1)
        assert result.reason_text == "PBX link down"
        # the store was closed after the stuck part: it refuses work now
        try:
            await rt.store.list_users()
        except Exception:
            pass
        else:
            raise AssertionError("the store still answers after close")
        await never.release()

