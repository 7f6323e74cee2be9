"""The live AMI link against the replay PBX over real TCP."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from ami_bridge.capture import read_capture
from ami_bridge.facts import CallProgress, CallRecord, Fact, OriginateResult
from ami_bridge.link import (
    AmiLink,
    LinkSettings,
    _FastProtocol,
    backoff_delay,
    probe_connection,
    settings_from_config,
)
from ami_bridge.originate import OriginateRequest
from ami_bridge.profile import PbxProfile
from ami_bridge.protocol import Message, first
from ami_bridge.replay_pbx import OriginateScript, ReplayPbx
from ami_bridge.tracker import CallTracker

FIXTURES = Path(__file__).parent / "fixtures" / "asterisk-22"
INBOUND = FIXTURES / "01-inbound-answered" / "raw.ami"
CLICK = FIXTURES / "06-click-to-call" / "raw.ami"
BURST = FIXTURES / "11-burst-20-concurrent" / "raw.ami"
SECRET = "crmsecret"
RESYNC_EVENTS = {"CoreShowChannel", "CoreShowChannelsComplete", "FullyBooted"}


class RecordingTracker:
    """Stands in for CallTracker: wants everything, remembers everything."""

    def __init__(self) -> None:
        self.fed: list[tuple[Message, float]] = []
        self.resyncs: list[tuple[float, int]] = []  # (at, how many events fed before)
        self.ticks: list[float] = []
        self.fail_on: set[str] = set()
        self.fact_for: Callable[[Message, float], list[Fact]] = lambda m, at: []

    def wants(self, name: str, frame_text: str) -> bool:
        if name in self.fail_on and name == "RTCPSent":
            raise RuntimeError("wants exploded")
        return True

    def feed(self, msg: Message, at: float) -> list[Fact]:
        self.fed.append((msg, at))
        if msg.get("Event") in self.fail_on:
            raise RuntimeError(f"tracker exploded on {msg['Event']}")
        return self.fact_for(msg, at)

    def tick(self, at: float) -> list[Fact]:
        self.ticks.append(at)
        return []

    def begin_resync(self, at: float) -> None:
        self.resyncs.append((at, len(self.fed)))

    def flush(self) -> list[Fact]:
        return []

    def events(self, *, calls_only: bool = True) -> list[Message]:
        return [m for m, _ in self.fed if not calls_only or m.get("Event") not in RESYNC_EVENTS]

    def names(self) -> list[str]:
        return [first(m.get("Event")) for m, _ in self.fed]


def settings(pbx: ReplayPbx, **overrides: object) -> LinkSettings:
    base: dict[str, object] = {
        "host": pbx.host,
        "port": pbx.port,
        "username": "crm",
        "secret": SECRET,
        "backoff_initial": 0.02,
        "backoff_max": 0.1,
        "ping_interval": 0.5,
        "ping_timeout": 0.5,
        "tick_interval": 0.05,
        "connect_timeout": 1.0,
        "login_timeout": 1.0,
        "resync_timeout": 1.0,
    }
    base.update(overrides)
    return LinkSettings(**base)  # type: ignore[arg-type]


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.005)


def capture_events(path: Path) -> list[Message]:
    return [m for m, _ in read_capture(path) if "Event" in m and m["Event"] != "FullyBooted"]


def is_answer(msg: Message) -> bool:
    return msg.get("Event") == "BridgeEnter" and msg.get("BridgeNumChannels") == "2"


async def test_every_event_reaches_the_tracker() -> None:
    expected = capture_events(INBOUND)
    tracker = RecordingTracker()
    async with ReplayPbx(INBOUND, speed=0, paused=True) as pbx:
        async with AmiLink(settings(pbx), tracker) as link:
            await link.wait_state("connected")
            assert len(tracker.resyncs) == 1
            assert tracker.names()[-1] == "CoreShowChannelsComplete"
            pbx.resume()
            await pbx.wait_done(2)
            await until(lambda: len(tracker.events()) == len(expected))
            assert tracker.events() == expected
            status = link.status
            assert status.state == "connected" and status.reconnects == 0
            assert status.events_total >= len(expected)
            assert status.events_per_s > 0 and status.last_event_at is not None
            assert status.last_error is None
            assert pbx.actions["login"] == 1 and pbx.actions["coreshowchannels"] == 1
            # Events are stamped at receipt with the wall clock.
            assert all(abs(at - time.time()) < 5 for _, at in tracker.fed)
        assert link.status.state == "disconnected"
        await pbx.wait_for(lambda: pbx.actions["logoff"] == 1)


async def test_wrong_secret_reports_login_failed_without_hammering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with ReplayPbx(INBOUND, speed=0, paused=True, secret="the-real-one") as pbx:
        link = AmiLink(settings(pbx, login_retry_delay=30.0), RecordingTracker())
        async with link:
            status = await link.wait_state("login_failed")
            assert "Authentication failed" in (status.last_error or "")
            await asyncio.sleep(0.4)  # backoff is 0.02 s: a hot loop would log in many times
            assert pbx.logins_failed == 1 and pbx.logins_ok == 0
            assert link.status.state == "login_failed"
            shown = repr(link.settings) + repr(link.status) + repr(link) + caplog.text
            assert SECRET not in shown
            assert "secret" not in repr(link.settings).lower()


async def test_drop_mid_call_reconnects_and_resyncs() -> None:
    tracker = RecordingTracker()
    async with (
        ReplayPbx(INBOUND, speed=0, paused=True) as pbx,
        AmiLink(settings(pbx), tracker) as link,
    ):
        await link.wait_state("connected")
        await pbx.play_until(is_answer)
        await until(lambda: any(is_answer(m) for m in tracker.events()))
        pbx.drop_clients()
        await until(lambda: link.status.reconnects == 1)
        status = await link.wait_state("connected")
        assert "connection lost" in (status.last_error or "")
        assert len(tracker.resyncs) == 2 and pbx.actions["coreshowchannels"] == 2
        after_resync = [m for m, _ in tracker.fed[tracker.resyncs[1][1] :]]
        listed = {first(m["Channel"]) for m in after_resync if m["Event"] == "CoreShowChannel"}
        assert listed == {"PJSIP/trunk-00000000", "PJSIP/101-00000001"}
        pbx.resume()
        await pbx.wait_done(2)
        await until(
            lambda: sum(1 for m in tracker.events() if m["Event"] == "Hangup") == 3
        )
        # Every event of the capture arrived exactly once: nothing was lost in the drop
        # (the PBX played nothing while we were away) and nothing was replayed.
        assert tracker.events() == capture_events(INBOUND)


async def test_half_open_link_is_noticed_by_the_watchdog() -> None:
    tracker = RecordingTracker()
    async with ReplayPbx(INBOUND, speed=0, paused=True) as pbx:
        link = AmiLink(settings(pbx, ping_interval=0.1, ping_timeout=0.2), tracker)
        async with link:
            await link.wait_state("connected")
            await pbx.step(20)
            assert pbx.half_open() == 1
            # No byte ever comes back: only the watchdog can notice (TCP never will).
            await until(lambda: link.status.state != "connected", timeout=3)
            await until(lambda: link.status.reconnects == 1)
            await link.wait_state("connected")
            assert "half-open" in (link.status.last_error or "")
            assert pbx.logins_ok == 2 and len(tracker.resyncs) == 2
            pbx.resume()
            await pbx.wait_done(2)
            await until(lambda: any(m["Event"] == "Cdr" for m in tracker.events()))


async def test_a_raising_handler_does_not_drop_the_link() -> None:
    tracker = RecordingTracker()
    tracker.fail_on = {"VarSet", "Newexten", "RTCPSent"}
    tracker.fact_for = lambda m, at: (
        [CallProgress("x", "ended", "inbound", None, None, None, None, (), None, at)]
        if m.get("Event") == "Hangup"
        else []
    )
    delivered: list[Fact] = []

    async def sink(fact: Fact) -> None:
        delivered.append(fact)
        if len(delivered) == 1:
            raise RuntimeError("the CRM exploded")

    expected = capture_events(INBOUND)
    async with (
        ReplayPbx(INBOUND, speed=0, paused=True) as pbx,
        AmiLink(settings(pbx), tracker, sink) as link,
    ):
        await link.wait_state("connected")
        pbx.resume()
        await pbx.wait_done(2)
        await until(lambda: len(tracker.events()) == len(expected))
        await until(lambda: len(delivered) == 3)
        assert tracker.events() == expected
        assert link.status.state == "connected" and link.status.reconnects == 0
        assert pbx.logins_ok == 1


async def test_facts_are_delivered_in_order_and_tick_runs() -> None:
    tracker = RecordingTracker()
    tracker.fact_for = lambda m, at: [
        CallProgress(first(m.get("Uniqueid")), "ringing", "inbound", None, None, None, None,
                     (), None, at)
    ] if m.get("Event") == "Newchannel" else []
    got: list[Fact] = []

    async def sink(fact: Fact) -> None:
        await asyncio.sleep(0.001)  # a slow sink must not reorder anything
        got.append(fact)

    async with (
        ReplayPbx(INBOUND, speed=0, paused=True) as pbx,
        AmiLink(settings(pbx, tick_interval=0.02), tracker, sink) as link,
    ):
        await link.wait_state("connected")
        pbx.resume()
        await pbx.wait_done(2)
        await until(lambda: len(got) == 3)
        await until(lambda: len(tracker.ticks) >= 3)
    assert [f.linkedid for f in got if isinstance(f, CallProgress)] == [
        "1795341294.0", "1795341294.1", "1795341294.2",
    ]


async def test_originate_in_flight_is_not_resent_after_reconnect() -> None:
    facts: list[Fact] = []
    async with ReplayPbx(None, speed=0) as pbx:
        pbx.script_originate(OriginateScript.silent())
        async with AmiLink(settings(pbx), RecordingTracker(), facts.append) as link:
            await link.wait_state("connected")
            req = OriginateRequest("c2c-drop", "PJSIP/103", "4155550123")
            pending = asyncio.create_task(link.originate(req))
            await pbx.wait_for(lambda: pbx.actions["originate"] == 1)
            pbx.drop_clients()
            result = await asyncio.wait_for(pending, 2)
            assert result.action_id == "c2c-drop" and not result.success
            assert result.reason_text == "PBX link down"
            await until(lambda: link.status.reconnects == 1)
            await link.wait_state("connected")
            await asyncio.sleep(0.2)  # panoramisk would re-send right after login
            assert pbx.actions["originate"] == 1
            assert pbx.logins_ok == 2
            assert [f for f in facts if isinstance(f, OriginateResult)] == [result]
            with pytest.raises(ValueError, match="already sent"):
                await link.originate(req)


def click_request() -> OriginateRequest:
    """The Originate the click-to-call capture answers (its ActionID is scripted)."""
    return OriginateRequest(
        action_id="c2c-0001",
        channel="PJSIP/103",
        exten="4155550123",
        context="from-internal",
        caller_id='"Call to 4155550123" <4155550123>',
        account="crm-c2c-0001",
    )


async def test_originate_success_against_the_recorded_click_to_call() -> None:
    async with ReplayPbx(None, speed=0) as pbx:
        pbx.script_originate(OriginateScript.from_capture(CLICK, "c2c-0001"))
        tracker = RecordingTracker()
        async with AmiLink(settings(pbx), tracker) as link:
            await link.wait_state("connected")
            result = await asyncio.wait_for(link.originate(click_request()), 2)
            await until(lambda: tracker.names().count("Hangup") == 2)
        assert result.success and result.action_id == "c2c-0001"
        assert result.reason == 4 and result.reason_text == "answered"
        assert result.channel == "PJSIP/103-0000000f"
        assert result.uniqueid == "1795341391.15"
        sent = [m for m in pbx.received if m.get("Action") == "Originate"]
        assert len(sent) == 1
        assert sent[0]["Async"] == "true"
        assert sent[0]["Variable"] == "CRM_CALL_ID=c2c-0001"
        assert sent[0]["ActionID"] == "c2c-0001"
        # The tracker saw the whole call and the OriginateResponse too.
        names = tracker.names()
        assert "OriginateResponse" in names and names.count("Newchannel") == 2


async def test_originate_failure_and_link_down() -> None:
    async with ReplayPbx(None, speed=0) as pbx:
        pbx.script_originate(OriginateScript.failure(reason=3))
        link = AmiLink(settings(pbx), RecordingTracker())
        down = await link.originate(OriginateRequest("early", "PJSIP/103", "101"))
        assert not down.success and down.reason_text == "PBX link down"
        async with link:
            await link.wait_state("connected")
            result = await link.originate(OriginateRequest("c2c-13", "PJSIP/103", "4155550123"))
        assert not result.success and result.reason == 3
        assert result.channel == "PJSIP/103" and result.uniqueid is None
        assert pbx.actions["originate"] == 1


def test_originate_request_validation() -> None:
    req = OriginateRequest(
        "id-1", "PJSIP/103", "4155550123", variables={"LANG": "en"}, caller_id="Rep <103>"
    )
    fields = req.to_fields()
    assert fields["Async"] == "true" and fields["Timeout"] == "30000"
    assert fields["Variable"] == ["LANG=en", "CRM_CALL_ID=id-1"]
    assert fields["Channel"] == "PJSIP/103" and fields["ActionID"] == "id-1"
    bad = [
        {"action_id": "", "channel": "PJSIP/103", "exten": "1"},
        {"action_id": "a", "channel": "", "exten": "1"},
        {"action_id": "a", "channel": "PJSIP/103", "exten": ""},
        {"action_id": "a", "channel": "PJSIP/103", "exten": "1\r\nAction: Logoff"},
        {"action_id": "a", "channel": "PJSIP/103\n", "exten": "1"},
        {"action_id": "a", "channel": "PJSIP/103", "exten": "1", "caller_id": "x\ry"},
        {"action_id": "a", "channel": "PJSIP/103", "exten": "1", "variables": {"A": "1\n"}},
        {"action_id": "a", "channel": "PJSIP/103", "exten": "1", "timeout_ms": 0},
        {"action_id": "a", "channel": "103", "exten": "1"},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            OriginateRequest(**kwargs)  # type: ignore[arg-type]


async def test_event_timestamp_header_wins_over_receipt_time_unless_absurd() -> None:
    tracker = RecordingTracker()
    async with ReplayPbx(None, speed=0) as pbx, AmiLink(settings(pbx), tracker) as link:
        await link.wait_state("connected")
        stamp = f"{time.time() - 2.5:.6f}"
        pbx.inject({"Event": "UserEvent", "Privilege": "user,all", "Timestamp": stamp})
        await until(lambda: tracker.names()[-1] == "UserEvent")
        assert tracker.fed[-1][1] == float(stamp)
        # a PBX clock a day off (or garbage) is not trusted: the receive time is used
        for bad in ("1700000000.5", "nan", "inf"):
            before = time.time()
            pbx.inject({"Event": "UserEvent", "Privilege": "user,all", "Timestamp": bad,
                        "UserEvent": bad})  # fmt: skip
            await until(lambda b=bad: tracker.fed[-1][0].get("UserEvent") == b)
            assert before - 1 <= tracker.fed[-1][1] <= time.time() + 1


class _NullTransport:
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


async def test_fast_protocol_path_gives_every_burst_call() -> None:
    """bytes in 64 KiB chunks -> FrameReader -> tracker: all 20 burst calls, each once.

    The speed of this path is measured by benchmarks/bench_tracker.py, not here.
    """
    data = BURST.read_bytes()
    tracker = CallTracker()
    link = AmiLink(LinkSettings(), tracker)
    proto = _FastProtocol(link)
    proto.connection_made(_NullTransport())  # type: ignore[arg-type]
    for offset in range(0, len(data), 65536):
        proto.data_received(data[offset : offset + 65536])
    facts: list[Fact] = []
    while not link._facts.empty():
        facts.append(link._facts.get_nowait())
    facts += tracker.flush()
    records = [f for f in facts if isinstance(f, CallRecord)]
    assert proto.reader.frames >= 2328
    assert len(records) == 20
    assert len({r.linkedid for r in records}) == 20


async def test_real_tracker_records_the_call_once_across_a_drop() -> None:
    """End to end: a drop mid-call and the resync neither lose nor duplicate the call."""
    facts: list[Fact] = []
    tracker = CallTracker(PbxProfile(finish_grace=0.1))
    async with (
        ReplayPbx(INBOUND, speed=0, paused=True) as pbx,
        AmiLink(settings(pbx), tracker, facts.append) as link,
    ):
        await link.wait_state("connected")
        await pbx.play_until(is_answer)
        await asyncio.sleep(0.05)
        pbx.drop_clients()
        await until(lambda: link.status.reconnects == 1)
        await link.wait_state("connected")
        pbx.resume()
        await pbx.wait_done(2)
        await until(lambda: any(isinstance(f, CallRecord) for f in facts))
        await asyncio.sleep(0.2)  # a duplicate would come out with the next ticks
    records = [f for f in facts if isinstance(f, CallRecord)]
    assert [r.linkedid for r in records] == ["1795341294.0"]
    assert records[0].answered and records[0].answered_by == "101"


# -- backoff, configuration and the admin's "test connection" button

CONFIG = Path(__file__).parent.parent / "config" / "default.toml"


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    s = LinkSettings(backoff_initial=0.5, backoff_max=30.0, backoff_jitter=0.2)
    assert [backoff_delay(s, n) for n in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff_delay(s, 3, 1.0) == pytest.approx(4.8)
    assert backoff_delay(s, 3, -1.0) == pytest.approx(3.2)
    assert backoff_delay(s, 10_000, 5.0) == pytest.approx(36.0)  # never beyond cap + jitter


async def test_unreachable_pbx_is_shown_and_retried() -> None:
    port = closed_port()
    link = AmiLink(settings_for("127.0.0.1", port), RecordingTracker())
    async with link:
        await until(lambda: link.status.reconnects >= 3)
        status = link.status
        assert status.state in ("connecting", "disconnected")
        assert status.last_error == "connection refused"
        assert status.endpoint == f"127.0.0.1:{port}"


async def test_secret_never_logged_during_a_good_login(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with ReplayPbx(INBOUND, speed=0, paused=True) as pbx:
        async with AmiLink(settings(pbx), RecordingTracker()) as link:
            await link.wait_state("connected")
            shown = repr(link.settings) + repr(link.status) + repr(link)
        ok, _ = await probe_connection(settings(pbx))
        assert ok and pbx.logins_ok == 2
    assert SECRET not in shown + caplog.text
    assert all(SECRET not in str(r.args) for r in caplog.records)


def test_settings_from_the_default_config() -> None:
    ami = tomllib.loads(CONFIG.read_text())["ami"]
    s = settings_from_config(ami)
    assert (s.host, s.port, s.username, s.secret) == ("127.0.0.1", 5038, "crm", "crmsecret")
    assert s.ssl is None
    assert (s.ping_interval, s.ping_timeout) == (10.0, 5.0)
    assert (s.backoff_initial, s.backoff_max) == (0.5, 30.0)
    assert (s.queue_max, s.merge_after) == (100_000, 2_000)
    assert "crmsecret" not in repr(s)
    tls = settings_from_config({**ami, "tls": True, "port": "5039", "ping_timeout": 2})
    assert isinstance(tls.ssl, ssl.SSLContext) and tls.port == 5039 and tls.ping_timeout == 2.0
    assert tls.ssl.verify_mode == ssl.CERT_REQUIRED


def test_bad_config_names_the_key_and_hides_the_secret() -> None:
    ami = tomllib.loads(CONFIG.read_text())["ami"]
    cases = {
        "port": {"port": 0},
        "port ": {"port": "x"},
        "ping_timeout": {"ping_timeout": -1},
        "backoff_max": {"backoff_max": 0.1},
        "tls": {"tls": "yes"},
        "host": {"host": " "},
        "secret": {"secret": "crmsecret\r\nAction: Logoff"},
        "merge_after": {"merge_after": 0},
    }
    for key, change in cases.items():
        with pytest.raises(ValueError, match=key.strip()) as info:
            settings_from_config({**ami, **change})
        assert "crmsecret" not in str(info.value)


async def test_probe_connection_success_and_wrong_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with ReplayPbx(INBOUND, speed=0, paused=True) as pbx:
        ok, text = await probe_connection(settings(pbx))
        assert (ok, text) == (True, f"Connected to Asterisk at 127.0.0.1:{pbx.port} as crm")
        await pbx.wait_for(lambda: pbx.actions["logoff"] == 1)
        assert pbx.actions["login"] == 1 and pbx.actions["ping"] == 1
        bad = settings(pbx, secret="not-the-secret")
        assert await probe_connection(bad) == (False, "Login refused: wrong user or secret")
        bad_user = settings(pbx, username="nobody")
        assert await probe_connection(bad_user) == (False, "Login refused: wrong user or secret")
        assert pbx.logins_failed == 2 and pbx.clients == 0
    assert "not-the-secret" not in caplog.text and SECRET not in caplog.text


async def test_probe_connection_explains_what_is_wrong() -> None:
    port = closed_port()
    ok, text = await probe_connection(settings_for("127.0.0.1", port))
    assert not ok and text == f"No answer from 127.0.0.1:{port} (connection refused)"

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def web(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    for handler, expected in (
        (mute, "accepted the connection but sent no AMI greeting"),
        (web, "answered, but it is not an Asterisk manager interface"),
    ):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            ok, text = await probe_connection(settings_for("127.0.0.1", port), timeout=0.3)
            assert not ok and text.startswith(f"127.0.0.1:{port} ") and expected in text

    async with ReplayPbx(INBOUND, speed=0, paused=True) as pbx:
        tls = settings_from_config(
            {"host": pbx.host, "port": pbx.port, "secret": SECRET, "tls": True}
        )
        ok, text = await probe_connection(tls, timeout=2)
        assert not ok and text.startswith(f"TLS error with 127.0.0.1:{pbx.port}")
        assert pbx.logins_ok == 0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_for(host: str, port: int) -> LinkSettings:
    return LinkSettings(
        host=host, port=port, secret=SECRET, backoff_initial=0.01, backoff_max=0.02,
        connect_timeout=1.0,
    )
