"""The hub's fan-out at call-centre scale (issue 17): a call's message is encoded once for
every connection that sees the same thing, a change of a call is offered only to the
connections it may concern (by extension), and a connection's handler wakes the moment
a message is queued (no timer in between).  Counted, never timed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

import web.live as live_module
from crm.events import Event
from web.live import LiveHub
from web.live_streams import Client
from web.runtime import Runtime

from .conftest import People
from .test_live import progress


@pytest.fixture
def looked_at(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The user ids the hub decided a call's view for (``view_of``), in order."""
    seen: list[int] = []
    real_view_of = live_module.view_of

    def counting_view_of(viewer: Any, st: Any) -> Any:
        seen.append(viewer.user_id)
        return real_view_of(viewer, st)

    monkeypatch.setattr(live_module, "view_of", counting_view_of)
    return seen


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
    rt: Runtime, people: People, looked_at: list[int]
) -> None:
    hub = LiveHub(rt)
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


async def test_a_slow_caller_lookup_holds_up_only_its_own_call(
    rt: Runtime, people: People, monkeypatch: Any
) -> None:
    """Events reach the hub over the bus; the lookup of call A's caller hangs until
    released.  Call B, from another number, pops meanwhile (before: B waited behind A's
    lookup for A's whole budget); A pops, with its details, once its lookup returns."""
    hub = LiveHub(rt, info_budget=30.0)
    gate = asyncio.Event()
    real = hub.details._fetch_info

    async def fetch(contact_id: Any, e164: Any) -> Any:
        if e164 == "+14155550111":
            await gate.wait()
        return await real(contact_id, e164)

    monkeypatch.setattr(hub.details, "_fetch_info", fetch)
    await hub.start()
    try:
        client = hub.connect(await hub.viewer_for(people.alice))
        await client.wait(0)
        await rt.ingest.progress(progress(linkedid="a.1", caller="+14155550111"))
        await rt.ingest.progress(progress(linkedid="b.1", caller="+14155550122"))
        first = " ".join(await client.wait(10.0))
        assert '"linkedid":"b.1"' in first and '"pop":"ringing"' in first
        assert '"linkedid":"a.1"' not in first
        # A's later events wait in A's lane, in order, behind its lookup
        await rt.ingest.progress(progress("answered", (), "101", linkedid="a.1",
                                          caller="+14155550111"))  # fmt: skip
        gate.set()
        got: list[str] = []
        while not any('"state":"answered"' in line for line in got):
            got += await client.wait(10.0)
        a_lines = [line for line in got if '"linkedid":"a.1"' in line]
        assert '"pop":"ringing"' in a_lines[0] and '"details":true' in a_lines[0]
        assert '"pop":"on_call"' in a_lines[-1]
    finally:
        await hub.close()


async def _waiting_with_writer(
    hub: LiveHub, people: People, write_now: Callable[[bytes], bool]
) -> tuple[Client, asyncio.Future[list[str]]]:
    """Alice's connection, its handler waiting, the hub writing to it through ``write_now``."""
    client = hub.connect(await hub.viewer_for(people.alice))
    await client.wait(0)
    client.attach(write_now, hub.flusher)
    waiting = asyncio.ensure_future(client.wait(3600.0))
    await asyncio.sleep(0)
    return client, waiting


async def test_the_hub_writes_to_a_waiting_connection_itself_once_per_turn(
    rt: Runtime, people: People
) -> None:
    """A connection whose handler waits gets its messages from the hub directly: every
    message of one turn of the loop in one write (in a burst, of the flusher's window),
    in order, the handler left asleep; a browser that cannot take more gets them queued
    for its handler instead."""
    hub = LiveHub(rt)
    writes: list[bytes] = []
    full = False

    def write_now(frame: bytes) -> bool:
        if full:
            return False
        writes.append(frame)
        return True

    # A burst is "within the window of the last write": a window wide enough that a
    # loaded test machine still sends the pop below inside it (5 ms is not).
    hub.flusher.window = 0.5
    try:
        client, waiting = await _waiting_with_writer(hub, people, write_now)
        for n in range(3):
            client.put("note", n)
        assert writes == []  # not yet: at the end of this turn
        for _ in range(3):
            await asyncio.sleep(0)
        assert writes == [b"".join(f'data: {{"kind":"note","data":{n}}}\n\n'.encode()
                                   for n in range(3))]  # fmt: skip
        assert client.written == 3 and not waiting.done(), "the handler slept through it"
        # a pop goes the same way, encoded once for every tab; this soon after the last
        # write (a burst), it waits for the flusher's window, then leaves in one write
        await _say(rt, hub, progress(ringing=("101",)))
        await asyncio.sleep(0)
        assert len(writes) == 1
        client.put("note", 5)
        await asyncio.sleep(hub.flusher.window)
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(writes) == 2 and not waiting.done()
        assert b'"pop":"ringing"' in writes[-1] and writes[-1].endswith(
            b'data: {"kind":"note","data":5}\n\n'
        )
        # the browser stops reading: the next messages wait in its queue, in order
        full = True
        client.put("note", 3)
        client.put("note", 4)
        await asyncio.sleep(hub.flusher.window)
        for _ in range(3):
            await asyncio.sleep(0)
        assert waiting.done()
        assert waiting.result() == ['{"kind":"note","data":3}', '{"kind":"note","data":4}']
    finally:
        await hub.close()


async def test_tabs_of_one_viewer_share_one_frame_and_a_slow_tab_holds_up_no_other(
    rt: Runtime, people: People, looked_at: list[int]
) -> None:
    """The tabs of one viewer are one audience: a change of a call is decided once for
    them all (not once per tab), and the hub writes each reading tab the same frame
    object, built once, one write per tab per flush.  A tab whose browser stopped
    reading gets the messages queued for its own handler instead, and the others are
    written at once all the same."""
    hub = LiveHub(rt)
    writes: dict[int, list[bytes]] = {}

    def writer(n: int, reads: bool) -> Any:
        def write_now(frame: bytes) -> bool:
            if reads:
                writes.setdefault(n, []).append(frame)
            return reads

        return write_now

    try:
        viewer = await hub.viewer_for(people.alice)
        tabs = [hub.connect(viewer) for _ in range(20)]
        waits = []
        for n, tab in enumerate(tabs):
            await tab.wait(0)  # what ``connect`` queued (the link state)
            tab.attach(writer(n, reads=n != 7), hub.flusher)  # tab 7 stopped reading
            waits.append(asyncio.ensure_future(tab.wait(3600.0)))
        await asyncio.sleep(0)
        looked_at.clear()
        await _say(rt, hub, progress(ringing=("101",)), progress("answered", (), "101"))
        assert looked_at == [people.alice.id] * 2, "one decision per change, not per tab"
        for _ in range(3):
            await asyncio.sleep(0)
        readers = [n for n in range(20) if n != 7]
        flushes = len(writes[0])  # 1, or 2 if the store's await let a flush in between
        assert sorted(writes) == readers and all(len(writes[n]) == flushes for n in readers)
        for i in range(flushes):
            assert all(writes[n][i] is writes[0][i] for n in readers), "one frame for all"
        sent = b"".join(writes[0])
        assert sent.index(b'"pop":"ringing"') < sent.index(b'"pop":"on_call"')
        assert all(not waits[n].done() for n in readers), "their handlers slept"
        slow = await waits[7]  # the slow tab's handler has them, in order, to write itself
        if len(slow) < 2:  # the handler woke at the first: the second waits queued
            slow += await tabs[7].wait(3600.0)
        assert len(slow) == 2 and '"pop":"ringing"' in slow[0] and '"pop":"on_call"' in slow[1]
    finally:
        await hub.close()


async def test_in_a_burst_the_writes_space_out_and_after_it_a_pop_leaves_at_once(
    rt: Runtime, people: People
) -> None:
    """Each write is a system call here and in the browser's machine: while messages keep
    coming, the pause between two writes doubles up to the flusher's longest, each write
    carrying every message since; the first message after a quiet spell is written in
    the turn it came in."""
    hub = LiveHub(rt)
    hub.flusher.window, hub.flusher.window_max = 0.01, 0.08
    writes: list[bytes] = []

    def write_now(frame: bytes) -> bool:
        writes.append(frame)
        return True

    try:
        client, waiting = await _waiting_with_writer(hub, people, write_now)
        end = time.monotonic() + 0.5
        sent = 0
        while time.monotonic() < end:
            client.put("note", sent)
            sent += 1
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.2)  # the last pause ends, then a quiet spell
        # 0.5 s of messages: 0.01, 0.02, 0.04 then 0.08 s apart is about ten writes
        # (a write every 10 ms would be fifty)
        assert 4 <= len(writes) <= 14, len(writes)
        body = b"".join(writes)
        assert body == b"".join(f'data: {{"kind":"note","data":{n}}}\n\n'.encode()
                                for n in range(sent))  # fmt: skip
        before = len(writes)
        client.put("note", "alone")
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(writes) == before + 1 and b"alone" in writes[-1]
        assert not waiting.done(), "the handler slept through it"
    finally:
        await hub.close()
