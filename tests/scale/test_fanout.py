"""Cross-process fan-out over LISTEN/NOTIFY, two buses standing in for two processes."""

from __future__ import annotations

import asyncio

import asyncpg

from ami_bridge.facts import CallProgress
from crm.events import Event, EventBus
from crm.fanout import Fanout
from crm.ingest import LiveCall
from crm.store import open_store
from crm.store.pg_notify import PgChannel
from crm.store.postgres import split_url
from tests.fanout_wire import Wire


def _progress(linkedid: str, name: str = "Ann") -> LiveCall:
    p = CallProgress(linkedid, "ringing", "inbound", "+14155550201", name, "5551000", "5551000",
                     ("101",), None, 100.0)  # fmt: skip
    return LiveCall(p, None, None, "none")


async def _pair(url: str) -> tuple[EventBus, Fanout, EventBus, Fanout]:
    store = await open_store(url)  # migrated schema (event_spill)
    await store.close()
    buses, fanouts = [], []
    for _ in range(2):
        bus = EventBus()
        fan = Fanout(bus, PgChannel(url))
        await fan.start()
        buses.append(bus)
        fanouts.append(fan)
    for fan in fanouts:
        await asyncio.wait_for(fan.channel.listening.wait(), 10)  # type: ignore[attr-defined]
    return buses[0], fanouts[0], buses[1], fanouts[1]


async def test_events_reach_the_other_process_once_and_are_not_echoed(pg_url: str) -> None:
    bus_a, fan_a, bus_b, fan_b = await _pair(pg_url)
    try:
        sub_a = bus_a.subscribe(maxsize=1000)
        sub_b = bus_b.subscribe(extensions=["101"], maxsize=1000)
        big = "x" * 20_000  # far over the NOTIFY limit: goes through event_spill
        sent = [Event("call_progress", _progress(f"1.{i}"), frozenset({"101"})) for i in range(50)]
        sent.insert(25, Event("call_progress", _progress("1.24"), frozenset({"101"})))
        sent.append(Event("call_progress", _progress("1.big", big), frozenset({"101"})))
        # published in one turn: sent in one statement (each message numbered: PostgreSQL
        # delivers identical payloads of one transaction once, and a burst's repeats had
        # split it into a round trip each), the big one spilled in a second
        for event in sent:
            bus_a.publish(event)
        got = [await asyncio.wait_for(sub_b.get(), 10) for _ in sent]
        assert [e.payload for e in got] == [e.payload for e in sent]  # in order, rebuilt
        assert all(e.origin == fan_a.origin for e in got)
        await fan_a.drain()
        await fan_b.drain()
        await asyncio.sleep(0.3)
        assert sub_a.pending() == len(sent)  # its own events, none came back
        assert fan_b.sent == 0 and fan_a.received == 0  # B never re-sent what it got
        assert fan_a.channel.spilled == 1  # type: ignore[attr-defined]
        assert fan_a.channel.statements == 2  # type: ignore[attr-defined]
        assert fan_b.missed == 0
    finally:
        await fan_a.close()
        await fan_b.close()


async def test_events_lost_on_the_way_are_counted_by_the_receiver() -> None:
    wire = Wire()
    bus_a, bus_b = EventBus(), EventBus()
    fan_a, fan_b = Fanout(bus_a, wire.channel()), Fanout(bus_b, wire.channel())
    await fan_a.start()
    await fan_b.start()
    try:
        sub_b = bus_b.subscribe(maxsize=100)
        await asyncio.sleep(0)  # both listening
        wire.lose = lambda text: '"3.2"' in text or '"3.3"' in text
        for i in range(1, 6):
            bus_a.publish(Event("call_progress", _progress(f"3.{i}"), frozenset({"101"})))
        await fan_a.drain()
        got = [sub_b.get_nowait().payload.progress.linkedid for _ in range(sub_b.pending())]
        assert got == ["3.1", "3.4", "3.5"]
        assert fan_b.missed == 2 and fan_b.received == 3
        # identical events are told apart (PostgreSQL would fold equal payloads)
        texts: list[str] = []
        wire.lose = lambda text: texts.append(text) is not None
        same = Event("call_progress", _progress("3.6"), frozenset({"101"}))
        bus_a.publish(same)
        bus_a.publish(same)
        await fan_a.drain()
        assert len(texts) == 2 and texts[0] != texts[1]
    finally:
        await fan_a.close()
        await fan_b.close()


async def test_listener_reconnects_after_its_connection_is_killed(pg_url: str) -> None:
    bus_a, fan_a, bus_b, fan_b = await _pair(pg_url)
    try:
        sub_b = bus_b.subscribe(maxsize=1000)
        dsn, _ = split_url(pg_url)
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'crm-fanout-listen' AND query LIKE 'LISTEN%'"
            )
        finally:
            await admin.close()
        channel_b: PgChannel = fan_b.channel  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while channel_b.reconnects == 0 or not channel_b.listening.is_set():
            assert loop.time() < deadline, "listener did not come back"
            await asyncio.sleep(0.05)
        bus_a.publish(Event("call_progress", _progress("2.1"), frozenset({"101"})))
        got = await asyncio.wait_for(sub_b.get(), 10)
        assert got.payload == _progress("2.1")
    finally:
        await fan_a.close()
        await fan_b.close()


async def test_a_listener_cancelled_as_a_message_arrives_ends(pg_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A process closing its fan-out while an event comes in must see its listener end.

    Python 3.11's ``asyncio.wait_for`` returned the message and dropped the cancellation
    when both landed in the same turn: the listener ran on and ``Fanout.close`` waited for
    it for ever (a click-relay test hung the CI run for 300 s that way).  Here the real
    PostgreSQL notification and the cancellation arrive in the same turn, every time."""
    from crm.store import pg_notify

    store = await open_store(pg_url)  # migrated schema
    await store.close()
    real_connect = pg_notify.connect
    task: asyncio.Task[None] | None = None

    class CancelOnNotify:
        def __init__(self, conn: asyncpg.Connection) -> None:
            self._conn = conn

        def __getattr__(self, name: str) -> object:
            return getattr(self._conn, name)

        async def add_listener(self, channel: str, callback: object) -> None:
            def then_cancel(*args: object) -> None:
                callback(*args)  # type: ignore[operator]
                assert task is not None
                task.cancel()  # the close, in the same turn as the message

            await self._conn.add_listener(channel, then_cancel)

    async def connect(url: str, application_name: str) -> CancelOnNotify:
        return CancelOnNotify(await real_connect(url, application_name))

    monkeypatch.setattr(pg_notify, "connect", connect)
    channel = PgChannel(pg_url)
    got: list[str] = []
    task = asyncio.create_task(channel.listen(got.append))
    sender = await real_connect(pg_url, "test-sender")
    try:
        await asyncio.wait_for(channel.listening.wait(), 10)
        await sender.execute("SELECT pg_notify($1, 'hello')", channel.channel)
        done, _ = await asyncio.wait({task}, timeout=5)
        assert task in done, "the listener ran on after being cancelled"
        assert task.cancelled()
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        await sender.close()
        await channel.close()
