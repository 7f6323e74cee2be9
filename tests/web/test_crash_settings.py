"""A call in progress while the admin changes the PBX link settings.

Saving the settings restarts the link.  Before, the old link's tracker was thrown away
with the call in it: the call stayed "on call" on every live list and was never written.
Now the calls of the old link are handed over: the new link of the same name finishes
them after its first channel listing, so the call is written (incomplete, as the CRM
did not see its end) and leaves every live list.
"""

from __future__ import annotations

import asyncio
import socket
import time

from aiohttp.test_utils import TestClient

from ami_bridge.capture import read_capture
from ami_bridge.replay_pbx import ReplayPbx
from tests.waiting import until
from web.live import LIVE_HUB
from web.runtime import Runtime, start_link

from ..paths import ASTERISK22
from .conftest import People, login

INBOUND = ASTERISK22 / "01-inbound-answered" / "raw.ami"
SECRET = "pbx-secret-1"
FAST = {"ping_interval": 0.2, "ping_timeout": 0.5, "backoff_initial": 0.05, "backoff_max": 0.2}


def live_timeline() -> list[tuple[dict[str, object], float]]:
    return [({k: v for k, v in m.items() if k != "Timestamp"}, at)
            for m, at in read_capture(INBOUND)]  # fmt: skip


async def call_up_then_change_settings(
    client: TestClient, rt: Runtime, people: People, new_port: int, handover: float | None = None
) -> None:
    """A call answered on the old PBX, on the admin's live list; then the admin points
    the link at ``new_port``.  Returns once the call is written and off the live list."""
    old_pbx = ReplayPbx(live_timeline(), speed=0, paused=True, secret=SECRET)  # type: ignore[arg-type]
    await old_pbx.start()
    try:
        rt.settings["ami"].update(host="127.0.0.1", port=old_pbx.port, username="crm",
                                  secret=SECRET, **FAST)  # fmt: skip
        link = start_link(rt)
        assert link is not None
        await link.wait_state("connected")
        if handover is not None:
            rt.extras["link_manager"].handover = handover
        hub = client.app[LIVE_HUB]
        admin = await hub.viewer_for(people.admin)

        def answered_on_live_list() -> bool:
            return any(row.get("state") == "answered" for row in hub.live_calls_for(admin))

        deadline = time.monotonic() + 10
        while not answered_on_live_list():
            assert await old_pbx.step(), "the capture ended before the call was answered"
            await asyncio.sleep(0.02)
            assert time.monotonic() < deadline
        assert await rt.store.count_calls() == 0

        token = await login(client, "admin")
        form = {"host": "127.0.0.1", "port": str(new_port), "username": "crm",
                "secret": SECRET, "_csrf": token}  # fmt: skip
        resp = await client.post("/admin/pbx", data=form)
        assert "the link is reconnecting" in await resp.text()

        await until(lambda: rt.store.count_calls(), 10, "the call handed over is written")
        await until(lambda: not hub.live_calls_for(admin), 10, "the call leaves the live list")
        [call] = (await rt.service.list_calls(limit=10)).items
        assert not call.complete and call.answered and call.pbx_link_id is not None
        assert await rt.store.list_live_calls() == []
        await asyncio.sleep(0.5)
        assert await rt.store.count_calls() == 1  # written once
    finally:
        await old_pbx.close()


async def test_a_call_up_while_the_admin_changes_the_link_is_written_and_leaves_live_lists(
    client: TestClient, rt: Runtime, people: People
) -> None:
    new_pbx = ReplayPbx(None, secret=SECRET)  # another PBX: the call is not on it
    await new_pbx.start()
    try:
        await call_up_then_change_settings(client, rt, people, new_pbx.port)
    finally:
        await new_pbx.close()


async def test_new_settings_that_reach_no_pbx_still_finish_the_calls_handed_over(
    client: TestClient, rt: Runtime, people: People
) -> None:
    """The admin typed a wrong port: no channel list will come; after the handover time
    the calls are written (incomplete) rather than left on every live list."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = s.getsockname()[1]  # closed again: nothing listens there
    await call_up_then_change_settings(client, rt, people, nobody, handover=0.5)
