"""Faults on the real PBX while a call is up: Asterisk killed (SIGKILL) and started again,
and ``manager reload``.  The CRM's link notices, reconnects, and the call is stored once:
after the kill flagged incomplete with the time it was last seen alive as its end (not the
time of the reconnect); through the reload complete and exact."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from .conftest import Live
from .rig import PING_INTERVAL, wait_for
from .test_calls import RING_GROUP

KILLED, RELOADED = "+14155550171", "+14155550172"


def answered_linkedid(live: Live, caller: str) -> str | None:
    for _, msg in list(live.obs.messages["alice"]):
        data = msg.get("data") or {}
        if msg.get("kind") == "call_progress" and data.get("caller") == caller \
                and data.get("state") == "answered":  # fmt: skip
            return str(data["linkedid"])
    return None


def test_asterisk_killed_mid_call_and_restarted(live: Live) -> None:
    since = time.time() - 1

    async def place(lab: Any) -> float:
        await lab.plan({"14155550171/101": "answer:2:hold", "14155550171/102": "ring"})
        await lab.carrier_call(RING_GROUP, KILLED, "Kill Me", talk=60)
        await asyncio.to_thread(wait_for, lambda: answered_linkedid(live, KILLED), 20,
                                "the CRM to see the call answered")  # fmt: skip
        await asyncio.sleep(3)  # talking
        killed_at = time.time()
        os.kill(live.rig.pid(), signal.SIGKILL)
        return killed_at

    killed_at = live.drive(place, idle=False)
    wait_for(lambda: live.crm.health().get("link") != "connected", 15, "the link to notice")
    live.rig.restart_pbx()
    wait_for(lambda: live.crm.health().get("link") == "connected", 30, "the link to reconnect")
    reconnected_at = time.time()
    call = live.call_of(KILLED, since, timeout=30)
    assert call["answered"] is True and call["answered_by"] == "101"
    assert call["complete"] is False  # the CRM did not see it end
    ended = _epoch(call["ended_at"])
    # The call ends when the link last heard the PBX: on a quiet call that is the last Pong,
    # at most one ping interval before the kill (never the reconnect, seconds later).
    slack = PING_INTERVAL + 0.5
    assert killed_at - slack <= ended <= killed_at + 1.0, (ended - killed_at, call)
    assert ended < reconnected_at - 5
    # talked 3 s after the CRM saw the answer, then the PBX died
    assert 3.0 - slack <= call["talk_seconds"] <= 7.0, call["talk_seconds"]
    time.sleep(3)
    assert len(live.calls(number=KILLED, since=since)) == 1  # still once after the resync


def test_manager_reload_during_a_call(live: Live) -> None:
    since = time.time() - 1

    async def place(lab: Any) -> None:
        await lab.plan({"14155550172/101": "answer:2:hold", "14155550172/102": "ring"})
        await lab.carrier_call(RING_GROUP, RELOADED, "Reload Me", talk=8)
        await asyncio.to_thread(wait_for, lambda: answered_linkedid(live, RELOADED), 20,
                                "the CRM to see the call answered")  # fmt: skip
        await asyncio.sleep(1)
        out = await asyncio.to_thread(live.rig.cli, "manager reload")
        assert "rror" not in out, out

    live.drive(place)
    call = live.call_of(RELOADED, since)
    assert call["answered"] is True and call["answered_by"] == "101"
    assert call["outcome"] == "answered" and call["hangup_by"] == "caller"
    assert 6.5 <= call["talk_seconds"] <= 9.5, call["talk_seconds"]
    assert call["complete"] is True
    assert live.crm.health().get("link") == "connected"


def _epoch(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
