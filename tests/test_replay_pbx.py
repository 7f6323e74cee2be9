"""The replay PBX speaks AMI over real TCP like Asterisk 22 does."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from pathlib import Path

import pytest
from panoramisk import Manager

from ami_bridge.capture import read_capture
from ami_bridge.protocol import FrameReader, Message, encode_action, first
from ami_bridge.replay_pbx import OriginateScript, ReplayPbx

FIXTURES = Path(__file__).parent / "fixtures" / "asterisk-22"
INBOUND = FIXTURES / "01-inbound-answered" / "raw.ami"
CLICK = FIXTURES / "06-click-to-call" / "raw.ami"


class AmiClient:
    """A bare AMI client: bytes in, dicts out, nothing hidden."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.frames = FrameReader()
        self.pending: list[Message] = []
        self.banner = ""

    @classmethod
    async def connect(cls, pbx: ReplayPbx) -> AmiClient:
        reader, writer = await asyncio.open_connection(pbx.host, pbx.port)
        client = cls(reader, writer)
        client.banner = (await asyncio.wait_for(reader.readline(), 2)).decode()
        return client

    async def send(self, **fields: object) -> None:
        self.writer.write(encode_action(fields))
        await self.writer.drain()

    async def next(self, timeout: float = 2.0) -> Message:
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                raise EOFError("the PBX closed the connection")
            self.pending.extend(self.frames.feed(data))
        return self.pending.pop(0)

    async def until(self, event: str, timeout: float = 2.0) -> list[Message]:
        out: list[Message] = []
        while True:
            msg = await self.next(timeout)
            out.append(msg)
            if msg.get("Event") == event:
                return out

    async def login(self, secret: str = "crmsecret", events: str = "on") -> Message:
        await self.send(Action="Login", ActionID="L1", Username="crm", Secret=secret, Events=events)
        return await self.next()


def capture_events(path: Path) -> list[Message]:
    return [m for m, _ in read_capture(path) if "Event" in m and m["Event"] != "FullyBooted"]


async def test_banner_and_login_ok() -> None:
    async with ReplayPbx(INBOUND, speed=0, paused=True) as pbx:
        client = await AmiClient.connect(pbx)
        assert client.banner == "Asterisk Call Manager/11.0.0\r\n"
        resp = await client.login()
        assert resp == {
            "Response": "Success",
            "ActionID": "L1",
            "Message": "Authentication accepted",
        }
        booted = await client.next()
        assert booted["Event"] == "FullyBooted"
        assert pbx.logins_ok == 1 and pbx.clients == 1
        assert all(r.get("Secret") != "crmsecret" for r in pbx.received)


async def test_wrong_secret_is_refused_and_closed() -> None:
    async with ReplayPbx(INBOUND, speed=0, paused=True) as pbx:
        client = await AmiClient.connect(pbx)
        resp = await client.login(secret="nope")
        assert resp["Response"] == "Error"
        assert resp["Message"] == "Authentication failed"
        assert resp["ActionID"] == "L1"
        with pytest.raises(EOFError):
            await client.next()
        assert pbx.logins_failed == 1 and pbx.clients == 0


async def test_ping_unknown_action_and_auth_required() -> None:
    async with ReplayPbx(INBOUND, speed=0, paused=True) as pbx:
        client = await AmiClient.connect(pbx)
        await client.send(Action="Ping", ActionID="p0")
        early = await client.next()
        assert early["Response"] == "Error" and early["ActionID"] == "p0"
        await client.login(events="off")
        await client.send(Action="Ping", ActionID="p1")
        pong = await client.next()
        assert pong["Response"] == "Success" and pong["Ping"] == "Pong"
        assert pong["ActionID"] == "p1"
        assert re.fullmatch(r"\d+\.\d{6}", first(pong["Timestamp"]))
        await client.send(Action="FrobnicateAll", ActionID="x9")
        bad = await client.next()
        assert bad == {
            "Response": "Error",
            "ActionID": "x9",
            "Message": "Invalid/unknown command",
        }
        await client.send(Action="Logoff", ActionID="bye")
        bye = await client.next()
        assert bye["Response"] == "Goodbye" and bye["ActionID"] == "bye"
        with pytest.raises(EOFError):
            await client.next()
        assert pbx.actions["ping"] == 2 and pbx.actions["frobnicateall"] == 1


async def test_core_show_channels_mid_call() -> None:
    async with ReplayPbx(INBOUND, speed=0, paused=True) as pbx:
        answered = await pbx.play_until(
            lambda m: m.get("Event") == "BridgeEnter" and m.get("BridgeNumChannels") == "2"
        )
        assert answered is not None
        client = await AmiClient.connect(pbx)
        await client.login(events="off")
        await client.send(Action="CoreShowChannels", ActionID="r1")
        head = await client.next()
        assert head["Response"] == "Success" and head["ActionID"] == "r1"
        assert head["Message"] == "Channels will follow"
        frames = await client.until("CoreShowChannelsComplete")
        chans = {first(f["Channel"]): f for f in frames if f["Event"] == "CoreShowChannel"}
        assert set(chans) == {"PJSIP/trunk-00000000", "PJSIP/101-00000001"}
        trunk, rep = chans["PJSIP/trunk-00000000"], chans["PJSIP/101-00000001"]
        assert trunk["Uniqueid"] == trunk["Linkedid"] == "1795341294.0"
        assert rep["Uniqueid"] == "1795341294.1" and rep["Linkedid"] == "1795341294.0"
        assert trunk["ChannelStateDesc"] == "Up" and rep["ChannelState"] == "6"
        assert trunk["CallerIDNum"] == "+14155550199"
        assert trunk["BridgeId"] == rep["BridgeId"] == answered["BridgeUniqueid"]
        assert trunk["Application"] == "Dial"
        assert re.fullmatch(r"\d\d:\d\d:\d\d", first(trunk["Duration"]))
        expected = [
            "Event", "ActionID", "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum",
            "CallerIDName", "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode",
            "Context", "Exten", "Priority", "Uniqueid", "Linkedid", "BridgeId", "Application",
            "ApplicationData", "Duration",
        ]
        assert list(trunk) == expected
        complete = frames[-1]
        assert complete["ListItems"] == "2" and complete["EventList"] == "Complete"
        assert complete["ActionID"] == "r1"

        await client.send(Action="Status", ActionID="s1")
        assert (await client.next())["Message"] == "Channel status will follow"
        status = await client.until("StatusComplete")
        assert sum(1 for f in status if f["Event"] == "Status") == 2
        assert status[-1]["Items"] == "2"

        pbx.resume()
        await pbx.wait_done(2)
        await client.send(Action="CoreShowChannels", ActionID="r2")
        await client.next()
        after = await client.until("CoreShowChannelsComplete")
        assert after[-1]["ListItems"] == "0" and len(after) == 1


async def test_events_stream_to_a_panoramisk_client() -> None:
    expected = capture_events(INBOUND)
    async with ReplayPbx(INBOUND, speed=0, paused=True) as pbx:
        got: list[str] = []
        manager = Manager(host=pbx.host, port=pbx.port, username="crm", secret="crmsecret",
                          ping_delay=60, reconnect_timeout=60)
        manager.register_event("*", lambda _m, event: got.append(event.event))
        logged_in = asyncio.get_running_loop().create_future()
        manager.on_login = lambda _m: logged_in.set_result(True)
        await manager.connect()
        try:
            await asyncio.wait_for(logged_in, 2)
            pbx.resume()
            await pbx.wait_done(3)
            await pbx.wait_for(lambda: len(got) >= len(expected) + 1)
        finally:
            manager.close()
        assert got[0] == "FullyBooted"
        assert got[1:] == [m["Event"] for m in expected]


async def test_late_client_only_sees_what_is_played_after() -> None:
    events = capture_events(INBOUND)
    async with ReplayPbx(INBOUND, speed=0, paused=True) as pbx:
        await pbx.step(100)
        client = await AmiClient.connect(pbx)
        await client.login()
        await client.next()  # FullyBooted
        pbx.resume()
        await pbx.wait_done(2)
        got: list[Message] = []
        while len(got) < len(events) - 100:
            got.append(await client.next())
        assert got == events[100:]


async def test_loops_get_fresh_consistent_ids() -> None:
    events = capture_events(INBOUND)
    async with ReplayPbx(INBOUND, speed=0, loops=2, paused=True) as pbx:
        client = await AmiClient.connect(pbx)
        await client.login()
        await client.next()
        pbx.resume()
        await pbx.wait_done(2)
        got = [await client.next() for _ in range(2 * len(events))]
    first_loop, second_loop = got[: len(events)], got[len(events) :]
    assert first_loop == events

    def ids(msgs: list[Message], key: str) -> set[str]:
        return {first(m[key]) for m in msgs if key in m and m.get("Event") != "CEL"}

    assert not ids(first_loop, "Uniqueid") & ids(second_loop, "Uniqueid")
    assert not ids(first_loop, "Channel") & ids(second_loop, "Channel")
    assert not ids(first_loop, "BridgeUniqueid") & ids(second_loop, "BridgeUniqueid")
    new_chans = [m for m in second_loop if m.get("Event") == "Newchannel"]
    assert len(new_chans) == 3  # trunk, 101 and 102 (ring group)
    # Linkedid still names the first channel of the (renamed) call.
    assert ids(second_loop, "Linkedid") == {first(new_chans[0]["Uniqueid"])}
    trunk = first(new_chans[0]["Channel"])
    assert re.fullmatch(r"PJSIP/trunk-[0-9a-f]{8}", trunk) and trunk != "PJSIP/trunk-00000000"
    hangups = {first(m["Channel"]) for m in second_loop if m.get("Event") == "Hangup"}
    assert hangups == {first(m["Channel"]) for m in new_chans}


async def test_originate_failure_script_echoes_the_action_id() -> None:
    async with ReplayPbx(None, speed=0) as pbx:
        pbx.script_originate(OriginateScript.failure(reason=3))
        client = await AmiClient.connect(pbx)
        await client.login()
        await client.next()
        await client.send(Action="Originate", ActionID="c2c-9", Channel="PJSIP/103",
                          Context="from-internal", Exten="4155550123", Priority="1",
                          Async="true")
        queued = await client.next()
        assert queued["Message"] == "Originate successfully queued"
        assert queued["ActionID"] == "c2c-9"
        resp = await client.next()
        assert resp["Event"] == "OriginateResponse" and resp["ActionID"] == "c2c-9"
        assert resp["Response"] == "Failure" and resp["Reason"] == "3"
        assert resp["Channel"] == "PJSIP/103" and resp["Uniqueid"] == "<unknown>"
        assert pbx.actions["originate"] == 1


async def test_originate_success_script_plays_the_recorded_call() -> None:
    script = OriginateScript.from_capture(CLICK, "c2c-0001")
    async with ReplayPbx(None, speed=0) as pbx:
        pbx.script_originate(script)
        client = await AmiClient.connect(pbx)
        await client.login()
        await client.next()
        await client.send(Action="Originate", ActionID="mine-1", Channel="PJSIP/103",
                          Exten="4155550123", Context="from-internal", Async="true")
        await client.next()
        frames = await client.until("OriginateResponse")
        resp = frames[-1]
        assert resp["ActionID"] == "mine-1" and resp["Response"] == "Success"
        assert resp["Reason"] == "4" and resp["Channel"] == "PJSIP/103-0000000f"
        assert any(f.get("Event") == "Newchannel" for f in frames)


async def test_drop_half_open_and_restart() -> None:
    async with ReplayPbx(INBOUND, speed=0, paused=True) as pbx:
        await pbx.play_until(lambda m: m.get("Event") == "BridgeEnter")
        assert pbx.channels.live
        mute = await AmiClient.connect(pbx)
        await mute.login(events="off")
        assert pbx.half_open() == 1
        await mute.send(Action="Ping", ActionID="p")
        with pytest.raises(TimeoutError):
            await mute.next(timeout=0.3)
        fresh = await AmiClient.connect(pbx)  # new connections are served normally
        await fresh.login(events="off")
        await fresh.send(Action="Ping", ActionID="p2")
        assert (await fresh.next())["Ping"] == "Pong"
        assert pbx.drop_clients() == 2
        with pytest.raises(EOFError):
            await fresh.next()
        await pbx.restart()
        assert not pbx.channels.live
        assert pbx.actions["ping"] == 1  # a half-open socket hears nothing either


async def test_timeline_keeps_recorded_spacing_scaled_by_speed() -> None:
    """At speed 5 events 1 s apart in the capture are played 0.2 s apart: when the client
    has the first, the PBX has not played the next one yet (order, not a stopwatch)."""
    capture = [
        ({"Event": "UserEvent", "Privilege": "user,all", "N": str(n)}, 1000.0 + n) for n in range(3)
    ]
    async with ReplayPbx(capture, speed=5.0, paused=True) as pbx:
        client = await AmiClient.connect(pbx)
        await client.login()
        await client.next()
        pbx.resume()
        for n in range(3):
            event = await client.next()
            assert event["N"] == str(n)
            assert pbx.played == n + 1  # the next one is not due yet
        await pbx.wait_done(1)
        pbx.pause()
        assert pbx.played == 3


async def test_speed_zero_plays_as_fast_as_possible() -> None:
    capture = [
        ({"Event": "UserEvent", "Privilege": "user,all", "N": str(n)}, 1000.0 + 60 * n)
        for n in range(3)
    ]
    async with ReplayPbx(capture, speed=0, paused=True) as pbx:
        client = await AmiClient.connect(pbx)
        await client.login()
        await client.next()
        pbx.resume()
        await pbx.wait_done(1)  # three minutes of capture, no waiting
        assert [(await client.next())["N"] for _ in range(3)] == ["0", "1", "2"]


async def test_originate_script_carries_the_callers_correlation_id_and_waits_for_its_gate() -> None:
    gate = asyncio.Event()
    script = OriginateScript.from_capture(CLICK, "c2c-0001")
    script.gate = gate
    async with ReplayPbx(None, speed=0) as pbx:
        pbx.script_originate(script)
        client = await AmiClient.connect(pbx)
        await client.login()
        await client.next()
        await client.send(Action="Originate", ActionID="crm-77", Channel="PJSIP/103",
                          Exten="4155550123", Context="from-internal", Async="true",
                          Variable="CRM_CALL_ID=crm-77")
        assert (await client.next())["Message"] == "Originate successfully queued"
        with pytest.raises(TimeoutError):
            await client.next(timeout=0.2)  # held at the gate: nothing played
        assert pbx.played == 0
        gate.set()
        frames = await client.until("OriginateResponse")
        frames += await client.until("Cdr")
        correlation = [
            f["Value"] for f in frames
            if f.get("Event") == "VarSet" and f.get("Variable") == "CRM_CALL_ID"
        ]
        assert correlation and set(correlation) == {"crm-77"}
        assert not any("c2c-0001" in str(v) for f in frames for v in f.values())
        assert frames[-1]["AccountCode"] == "crm-crm-77"


async def test_cdr_rows_go_to_master_csv_as_cdr_csv_writes_them(tmp_path: Path) -> None:
    """Every Cdr the PBX plays is appended to Master.csv whether or not anyone listens:
    the capture's own rows, at the time they were played; played again, with new ids."""
    import datetime as dt

    from ami_bridge.cdr import csv_line, parse_lines

    master = tmp_path / "Master.csv"
    burst = FIXTURES / "11-burst-20-concurrent"
    async with ReplayPbx(None, speed=0, cdr_csv=master) as pbx:
        before = time.time()
        await pbx.play(burst / "events.jsonl")
        after = time.time()
        written = master.read_text().splitlines(keepends=True)
        original = parse_lines((burst / "cdr.csv").read_text().splitlines(), dt.UTC)
        rows = parse_lines(written, dt.UTC)
        assert len(rows) == len(original) == 42 == pbx.cdr_rows
        for row, orig in zip(rows, original, strict=True):
            assert int(before) <= row.end <= after
            shift = row.end - orig.end
            moved = dataclasses.replace(
                orig,
                start=orig.start + shift,
                answer=None if orig.answer is None else orig.answer + shift,
                end=row.end,
            )
            assert csv_line(row, dt.UTC) == csv_line(moved, dt.UTC)
        await pbx.play(burst / "events.jsonl")
        again = parse_lines(master.read_text().splitlines()[42:], dt.UTC)
        assert len(again) == 42
        assert not {r.uniqueid for r in again} & {r.uniqueid for r in rows}
        assert not {r.channel for r in again} & {r.channel for r in rows}
        assert [r.userfield for r in again] == [r.userfield for r in rows]
