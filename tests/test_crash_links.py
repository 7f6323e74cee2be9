"""Two PBX links whose PBXes report the same linkedid (two replay PBXes playing one
capture, as two offices' Asterisks can): each office keeps its own call.  Before calls
were keyed by (link, linkedid), the second office's call overwrote the first's row."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ami_bridge.replay import replay_file
from ami_bridge.replay_pbx import ReplayPbx
from crm.models import CallFilter
from web.runtime import open_runtime

from .paths import ASTERISK22
from .web.conftest import web_settings

INBOUND = ASTERISK22 / "01-inbound-answered" / "raw.ami"
SECRET = "pbx-secret-1"


async def test_two_offices_with_the_same_linkedid_keep_a_call_each(tmp_path: Path) -> None:
    [expected] = replay_file(INBOUND)
    pbxes = [ReplayPbx(INBOUND, speed=0, paused=True, secret=SECRET) for _ in range(2)]
    for pbx in pbxes:
        await pbx.start()
    links = [
        {"name": name, "team": name.title(), "host": "127.0.0.1", "port": pbx.port,
         "username": "crm", "secret": SECRET}
        for name, pbx in zip(("east", "west"), pbxes, strict=True)
    ]  # fmt: skip
    settings = web_settings(tmp_path, pbx={"finish_grace": 0.1})
    settings["pbx_links"] = links
    rt = await open_runtime(settings)
    try:
        manager = rt.extras["link_manager"]
        deadline = time.monotonic() + 15
        while len(manager.running) < 2 or not all(
            r.link.status.state == "connected" for r in manager.running.values()
        ):
            assert time.monotonic() < deadline, "the two links never came up"
            await asyncio.sleep(0.05)
        for pbx in pbxes:
            pbx.resume()
        for pbx in pbxes:
            await pbx.wait_done(10)
        deadline = time.monotonic() + 15
        while await rt.store.count_calls() < 2:
            assert time.monotonic() < deadline, (
                f"{await rt.store.count_calls()} call(s) stored for two offices"
            )
            await asyncio.sleep(0.05)
        calls = await rt.store.list_calls(CallFilter())
        assert len(calls) == 2
        assert {c.linkedid for c in calls} == {expected.linkedid}
        rows = {r.name: r.id for r in await rt.store.list_pbx_links()}
        assert {c.pbx_link_id for c in calls} == {rows["east"], rows["west"]}
        for call in calls:
            assert call.complete and call.outcome == expected.outcome
    finally:
        await rt.close()
        for pbx in pbxes:
            await pbx.close()
