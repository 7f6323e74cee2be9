"""The hub's fan-out at call-centre scale (issue 17): a call's message is encoded once for
every connection that sees the same thing, a change of a call is offered only to the
connections it may concern (by extension), and a connection's handler wakes the moment
a message is queued (no timer in between).  Counted, never timed."""

from __future__ import annotations

import asyncio
from typing import Any

import web.live as live_module
from crm.events import Event
from web.live import LiveHub
from web.runtime import Runtime

from .conftest import People
from .test_live import progress


async def _say(rt: Runtime, hub: LiveHub, *facts: Any) -> None:
    """The ingest names the caller, the hub takes the event (no bus task in between)."""
    for fact in facts:
        live = await rt.ingest.progress(fact)
        await hub.handle(Event("call_progress", live))


def _lines(client: Any) -> list[str]:
    return [line for line, _ in client._queue]


async def test_a_message_is_encoded_once_for_every_tab_that_sees_it(
    rt: Runtime, people: People
) -> None:
    hub = LiveHub(rt)
    try:
        tabs = [hub.connect(await hub.viewer_for(people.alice)) for _ in range(30)]
        await _say(rt, hub, progress(ringing=("101",)))
        pops = [_lines(tab)[-1] for tab in tabs]
        assert '"pop":"ringing"' in pops[0]
        assert all(line is pops[0] for line in pops), "one encoding shared by every tab"
        # a change is a new version: encoded again, once
        await _say(rt, hub, progress("answered", (), "101"))
        after = [_lines(tab)[-1] for tab in tabs]
        assert after[0] is not pops[0] and '"pop":"on_call"' in after[0]
        assert all(line is after[0] for line in after)
    finally:
        await hub.close()


async def test_a_call_is_offered_only_to_the_connections_it_concerns(
    rt: Runtime, people: People, monkeypatch: Any
) -> None:
    hub = LiveHub(rt)
    looked_at: list[int] = []
    real_view_of = live_module.view_of

    def counting_view_of(viewer: Any, st: Any) -> Any:
        looked_at.append(viewer.user_id)
        return real_view_of(viewer, st)

    monkeypatch.setattr(live_module, "view_of", counting_view_of)
    try:
        assert people.bob.id is not None and people.alice.id is not None
        bobs = [hub.connect(await hub.viewer_for(people.bob)) for _ in range(200)]
        alice = hub.connect(await hub.viewer_for(people.alice))
        admin = hub.connect(await hub.viewer_for(people.admin))
        looked_at.clear()
        await _say(rt, hub, progress(ringing=("101",)))
        assert people.bob.id not in looked_at, "bob's 200 tabs were not even looked at"
        assert looked_at.count(people.alice.id) == 1 and len(looked_at) <= 4
        assert '"pop":"ringing"' in _lines(alice)[-1]
        assert '"listed":true' in _lines(admin)[-1]
        assert all(not _lines(b) or "call_progress" not in _lines(b)[-1] for b in bobs)
        # the ring group reaches 102: now bob's tabs are concerned, and each pops
        looked_at.clear()
        await _say(rt, hub, progress(ringing=("101", "102")))
        assert all('"pop":"ringing"' in _lines(b)[-1] for b in bobs)
        assert looked_at.count(people.bob.id) == 1, "bob's tabs share one decision"
        # 101 answers: bob's tabs were told of the call, so they hear their pop close
        await _say(rt, hub, progress("answered", (), "101"))
        assert all('"pop":null' in _lines(b)[-1] and '"listed":false' in _lines(b)[-1]
                   for b in bobs)  # fmt: skip
        for b in bobs:
            b._queue.clear()
        await _say(rt, hub, progress("ended", (), "101"))
        assert not any(_lines(b) for b in bobs)  # told it closed: nothing more
        assert '"state":"ended"' in _lines(alice)[-1]
        # a tab that closes leaves the index
        hub.disconnect(alice)
        looked_at.clear()
        await _say(rt, hub, progress(ringing=("101",), linkedid="second.1"))
        assert people.alice.id not in looked_at
    finally:
        await hub.close()


async def test_a_waiting_connection_wakes_when_a_message_is_queued_not_on_its_timer(
    rt: Runtime, people: People
) -> None:
    hub = LiveHub(rt)
    try:
        client = hub.connect(await hub.viewer_for(people.alice))
        await client.wait(0)  # the connect-time messages (link state)
        waiting = asyncio.ensure_future(client.wait(3600.0))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not waiting.done()
        await _say(rt, hub, progress(ringing=("101",)))
        for _ in range(3):  # a few turns of the loop, nowhere near the hour
            await asyncio.sleep(0)
        assert waiting.done(), "the pop waits for nothing"
        assert '"pop":"ringing"' in waiting.result()[-1]
        # the next messages reuse the connection's one poll timer (none per message)
        timer = client._timer
        assert timer is not None
        for n in range(3):
            waiting = asyncio.ensure_future(client.wait(3600.0))
            await asyncio.sleep(0)
            await _say(rt, hub, progress(ringing=("101",), linkedid=f"more.{n}"))
            for _ in range(3):
                await asyncio.sleep(0)
            assert waiting.done() and client._timer is timer
        hub.disconnect(client)
        assert client._timer is None and timer.cancelled()
    finally:
        await hub.close()
