"""The link's fact queue is bounded, and a peer faster than the sink is slowed down by
TCP, not buffered in memory.

A flooding peer once drove the process from 51 MB to 2.37 GB in 45 s while ``/healthz``
said ok.  Here a real TCP peer floods the link with ``Newchannel`` events as fast as its
socket takes them, while the sink (the store, in production) takes its time: the queue
never exceeds its bound, memory stays flat, every event reaches the tracker and every
fact the sink, and the peer is held back (its writes wait) while the link catches up.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
import tracemalloc
from dataclasses import dataclass, field

from aiohttp.test_utils import TestClient

from ami_bridge.facts import CallProgress, Fact
from ami_bridge.link import AmiLink, LinkSettings
from ami_bridge.protocol import FrameReader, Message, encode_action, first
from web.app import create_app
from web.runtime import Runtime

SECRET = "floodsecret"


def newchannel(n: int) -> bytes:
    uid = f"1700000000.{n}"
    return (
        "Event: Newchannel\r\nPrivilege: call,all\r\n"
        f"Channel: PJSIP/trunk-{n:08x}\r\nChannelState: 4\r\nChannelStateDesc: Ring\r\n"
        "CallerIDNum: +14155550199\r\nCallerIDName: Flood\r\nConnectedLineNum: <unknown>\r\n"
        "ConnectedLineName: <unknown>\r\nLanguage: en\r\nAccountCode: \r\n"
        "Context: from-trunk\r\nExten: 5551000\r\nPriority: 1\r\n"
        f"Uniqueid: {uid}\r\nLinkedid: {uid}\r\n\r\n"
    ).encode()


@dataclass
class FloodPeer:
    """An AMI server that answers Login, CoreShowChannels and Ping, then floods
    ``count`` Newchannel events, writing as fast as its socket lets it."""

    count: int
    host: str = "127.0.0.1"
    port: int = 0
    sent: int = 0
    waits: int = 0
    """Writes that had to wait for the socket (the reader was not reading)."""
    logins: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def drop(self) -> None:
        """Close every client connection, as an Asterisk that gave up on a slow reader."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def __aenter__(self) -> FloodPeer:
        self._server = await asyncio.start_server(self._client, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        small_buffers(writer.get_extra_info("socket"))
        self._writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        frames = FrameReader()
        flood: asyncio.Task[None] | None = None
        try:
            while data := await reader.read(65536):
                for msg in frames.feed(data):
                    flood = self._answer(msg, writer) or flood
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if flood is not None:
                await flood
            writer.close()

    def _answer(self, msg: Message, writer: asyncio.StreamWriter) -> asyncio.Task[None] | None:
        action = first(msg.get("Action", "")).lower()
        aid = first(msg.get("ActionID", ""))
        if action == "login":
            self.logins += 1
            ok = first(msg.get("Secret", "")) == SECRET
            writer.write(encode_action({"Response": "Success" if ok else "Error",
                                        "ActionID": aid, "Message": "ok"}))  # fmt: skip
        elif action == "coreshowchannels":
            writer.write(encode_action({"Response": "Success", "ActionID": aid,
                                        "EventList": "start"}))  # fmt: skip
            writer.write(encode_action({"Event": "CoreShowChannelsComplete", "ActionID": aid,
                                        "EventList": "Complete", "ListItems": "0"}))  # fmt: skip
            return asyncio.ensure_future(self._flood(writer))
        else:
            writer.write(encode_action({"Response": "Success", "ActionID": aid}))
        return None

    async def _flood(self, writer: asyncio.StreamWriter) -> None:
        batch = 200
        for start in range(0, self.count, batch):
            writer.write(b"".join(newchannel(n) for n in range(start, start + batch)))
            self.sent += batch
            if writer.transport.get_write_buffer_size() > 0:
                self.waits += 1  # the socket is full: the reader is not reading
            await writer.drain()
        self.done.set()


def small_buffers(sock: socket.socket) -> None:
    """Small kernel buffers, so that the megabytes a fast peer sends cannot all hide in
    them: the back-pressure shows within a short test."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)


class CountingTracker:
    """One fact per Newchannel, so that every event can be accounted for at the sink.
    Each carries about a kilobyte (as a finished call with its recordings does), so a
    queue that grows shows in the memory."""

    def __init__(self) -> None:
        self.fed = 0

    def wants(self, name: str, frame_text: str) -> bool:
        return True

    def feed(self, msg: Message, at: float) -> list[Fact]:
        if first(msg.get("Event", "")) != "Newchannel":
            return []
        self.fed += 1
        name = first(msg["Channel"]) * 40
        return [CallProgress(first(msg["Linkedid"]), "ringing", "inbound", "+14155550199",
                             name, "5551000", "5551000", ("101",), None, at)]  # fmt: skip

    def tick(self, at: float) -> list[Fact]:
        return []

    def begin_resync(self, at: float) -> None:
        return None

    def flush(self) -> list[Fact]:
        return []


class SlowSink:
    """A sink slower than the wire: it yields to the loop for every fact (a store write
    would take far longer) and sleeps a little every few hundred."""

    def __init__(self, link_ref: list[AmiLink]) -> None:
        self.got: list[str] = []
        self.max_backlog = 0
        self._link_ref = link_ref
        self.paused = True

    async def __call__(self, fact: Fact) -> None:
        assert isinstance(fact, CallProgress)
        self.got.append(fact.linkedid)
        link = self._link_ref[0]
        self.max_backlog = max(self.max_backlog, link.backlog)
        if len(self.got) % 300 == 0:
            await asyncio.sleep(0.002)
        else:
            await asyncio.sleep(0)


def link_settings(peer: FloodPeer, **overrides: object) -> LinkSettings:
    base: dict[str, object] = {"host": peer.host, "port": peer.port, "secret": SECRET,
                               "ping_interval": 0.3, "ping_timeout": 0.3, "tick_interval": 0.05,
                               "queue_max": 1000}  # fmt: skip
    base.update(overrides)
    return LinkSettings(**base)  # type: ignore[arg-type]


async def until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_flooding_peer_is_held_back_not_buffered() -> None:
    count = 20_000
    tracker = CountingTracker()
    ref: list[AmiLink] = []
    sink = SlowSink(ref)
    tracemalloc.start()
    try:
        async with FloodPeer(count) as peer:
            link = AmiLink(link_settings(peer), tracker, sink)
            ref.append(link)
            baseline = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            async with link:
                await link.wait_state("connected", timeout=5)
                assert link._proto is not None
                small_buffers(link._proto.transport.get_extra_info("socket"))
                seen_full = False
                while len(sink.got) < count:
                    st = link.status
                    assert st.backlog <= st.backlog_max == 1000
                    seen_full = seen_full or st.full_since is not None
                    await asyncio.sleep(0.005)
                    assert link.status.state == "connected", link.status.last_error
                peak = tracemalloc.get_traced_memory()[1] - baseline
                await until(lambda: link.backlog == 0, 5)
                assert link.status.full_since is None  # caught up
    finally:
        tracemalloc.stop()
    # nothing dropped, nothing twice, in order
    assert tracker.fed == count
    assert sink.got == [f"1700000000.{n}" for n in range(count)]
    assert sink.max_backlog <= 1000
    # back-pressure, not buffering: the link stopped reading, the peer had to wait
    assert seen_full and link.status.pauses > 0
    assert peer.waits > 0
    # 20 k facts of a kilobyte would be 20+ MB held; bounded to 1000 it is a few MB
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert link.status.reconnects == 0  # the watchdog took a paused link for busy, not dead


async def test_healthz_reports_the_backlog_and_an_overloaded_link(
    aiohttp_client: object, tmp_path: object
) -> None:
    from tests.web.conftest import PASSWORD, login, web_settings
    from web.runtime import open_runtime

    rt: Runtime = await open_runtime(web_settings(tmp_path), with_link=False)
    await rt.service.create_user("admin", "Ada Admin", PASSWORD, "admin")
    gate = asyncio.Event()
    taken: list[str] = []

    async def stuck_sink(fact: Fact) -> None:
        await gate.wait()  # the database is very slow today
        assert isinstance(fact, CallProgress)
        taken.append(fact.linkedid)

    try:
        async with FloodPeer(5_000) as peer:
            tracker = CountingTracker()
            link = AmiLink(link_settings(peer, queue_max=200, backlog_alarm=0.3), tracker,
                           stuck_sink)  # fmt: skip
            rt.link = link
            client: TestClient = await aiohttp_client(create_app(rt))  # type: ignore[operator]
            async with link:
                await link.wait_state("connected", timeout=5)
                await until(lambda: link.status.full_since is not None, 5)
                body = await (await client.get("/healthz")).json()
                assert body["backlog"] >= 199 and body["backlog_max"] == 200
                assert body["backlog_full"] is True
                await asyncio.sleep(0.35)  # full for longer than backlog_alarm
                body = await (await client.get("/healthz")).json()
                assert body["ok"] is False and body["overloaded"] is True
                assert body["link"] == "connected"
                await login(client, "admin")
                page = await (await client.get("/admin")).text()
                shown = re.search(r'id="link-backlog">(\d+)<', page)
                assert shown is not None and int(shown.group(1)) >= 199
                assert "overloaded: the PBX sends more than this process can handle" in page
                assert 'id="backlog-flag" hidden' not in page
                assert link.backlog <= 200
                gate.set()  # the sink catches up
                await until(lambda: len(taken) == 5_000, 20)
                body = await (await client.get("/healthz")).json()
                assert body == {**body, "ok": True, "overloaded": False, "backlog": 0,
                                "backlog_full": False}  # fmt: skip
                assert tracker.fed == 5_000
    finally:
        await rt.close()


async def test_no_reconnect_until_the_last_connections_backlog_has_room() -> None:
    """The PBX gives up on the slow reader and drops it: the link reconnects only once
    the backlog is down to half, so its Login and resync answers are read at once."""
    gate = asyncio.Event()
    taken: list[str] = []

    async def sink(fact: Fact) -> None:
        await gate.wait()
        assert isinstance(fact, CallProgress)
        taken.append(fact.linkedid)

    tracker = CountingTracker()
    async with FloodPeer(3_000) as peer:
        quick = link_settings(peer, queue_max=200, backoff_initial=0.05, backoff_max=0.1,
                              login_timeout=1.0)  # fmt: skip
        link = AmiLink(quick, tracker, sink)
        async with link:
            await link.wait_state("connected", timeout=5)
            await until(lambda: link.status.full_since is not None, 5)
            peer.drop()
            await link.wait_state("connecting", "disconnected", timeout=5)
            await asyncio.sleep(0.5)
            assert peer.logins == 1  # waiting for room, not knocking
            assert link.backlog <= 200
            gate.set()
            await link.wait_state("connected", timeout=10)
            assert peer.logins == 2
            await until(lambda: len(taken) == tracker.fed and link.backlog == 0, 20)
            assert link.status.reconnects == 1
