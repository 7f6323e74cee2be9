"""An Asterisk older than 13 is refused clearly, never recorded wrong.

Asterisk 11 speaks AMI 1.3: no Linkedid on channel events, and calls reported with
``Dial`` (SubEvent Begin/End), ``Bridge`` and ``Masquerade``.  Read as Asterisk 13+ traffic
each channel becomes a call of its own.  The stream below is written the way Asterisk 11
writes an inbound call answered by 101 (from its manager documentation and AMI 1.3 logs).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ami_bridge.facts import CallRecord, PbxIncompatible
from ami_bridge.link import AmiLink, LinkSettings
from ami_bridge.protocol import FrameReader
from ami_bridge.replay import PbxTooOld, replay_file
from ami_bridge.tracker import CallTracker

from .paths import ASTERISK22, ROOT


def _frame(**headers: str) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"


def _chan(event: str, channel: str, uid: str, **extra: str) -> str:
    return _frame(Event=event, Privilege="call,all", Channel=channel, Uniqueid=uid, **extra)


TRUNK, REP = ("SIP/trunk-00000000", "1400000000.0"), ("SIP/101-00000001", "1400000000.1")
CALL_EVENTS = "".join(
    [
        _chan("Newchannel", *TRUNK, ChannelState="4", ChannelStateDesc="Ring",
              CallerIDNum="+14155550199", CallerIDName="John Smith", AccountCode="",
              Exten="5551000", Context="from-trunk"),
        _chan("Newchannel", *REP, ChannelState="0", ChannelStateDesc="Down",
              CallerIDNum="101", CallerIDName="", AccountCode="", Exten="",
              Context="from-internal"),
        _frame(Event="Dial", Privilege="call,all", SubEvent="Begin", Channel=TRUNK[0],
               Destination=REP[0], CallerIDNum="+14155550199", CallerIDName="John Smith",
               ConnectedLineNum="101", ConnectedLineName="", UniqueID=TRUNK[1],
               DestUniqueID=REP[1], Dialstring="101"),
        _chan("Newstate", *REP, ChannelState="5", ChannelStateDesc="Ringing",
              CallerIDNum="101", CallerIDName="", ConnectedLineNum="+14155550199",
              ConnectedLineName="John Smith"),
        _chan("Newstate", *REP, ChannelState="6", ChannelStateDesc="Up", CallerIDNum="101",
              CallerIDName="", ConnectedLineNum="+14155550199", ConnectedLineName="John Smith"),
        _frame(Event="Dial", Privilege="call,all", SubEvent="End", Channel=TRUNK[0],
               UniqueID=TRUNK[1], DialStatus="ANSWER"),
        _chan("Newstate", *TRUNK, ChannelState="6", ChannelStateDesc="Up",
              CallerIDNum="+14155550199", CallerIDName="John Smith", ConnectedLineNum="101",
              ConnectedLineName=""),
        _frame(Event="Bridge", Privilege="call,all", Bridgestate="Link", Bridgetype="core",
               Channel1=TRUNK[0], Channel2=REP[0], Uniqueid1=TRUNK[1], Uniqueid2=REP[1],
               CallerID1="+14155550199", CallerID2="101"),
        _chan("Hangup", *REP, CallerIDNum="101", CallerIDName="", ConnectedLineNum="+14155550199",
              ConnectedLineName="John Smith", Cause="16", **{"Cause-txt": "Normal Clearing"}),
        _chan("Hangup", *TRUNK, CallerIDNum="+14155550199", CallerIDName="John Smith",
              ConnectedLineNum="101", ConnectedLineName="", Cause="16",
              **{"Cause-txt": "Normal Clearing"}),
    ]
)  # fmt: skip
ASTERISK11 = (
    "Asterisk Call Manager/1.3\r\n"
    + _frame(Response="Success", Message="Authentication accepted")
    + _frame(Event="FullyBooted", Privilege="system,all", Status="Fully Booted")
    + CALL_EVENTS
)


def _feed(text: str) -> list[object]:
    tracker = CallTracker()
    reader = FrameReader()
    facts: list[object] = []
    for i, msg in enumerate(reader.feed(text.encode()) + reader.close()):
        facts.extend(tracker.feed(msg, 1_400_000_000.0 + i))
    facts.extend(tracker.flush(include_live=True))
    return facts


@pytest.mark.parametrize("banner", [True, False], ids=["banner", "events-only"])
def test_asterisk_11_traffic_is_refused_not_recorded(banner: bool) -> None:
    """Told by the banner (AMI 1.3), or without one (a capture started mid-session) by
    the events themselves: one clear refusal and no call record at all."""
    facts = _feed(ASTERISK11 if banner else CALL_EVENTS)
    assert not [f for f in facts if isinstance(f, CallRecord)]
    (refusal,) = [f for f in facts if isinstance(f, PbxIncompatible)]
    assert "Asterisk 13" in refusal.message and "too old" in refusal.message
    if banner:
        assert "AMI 1.3" in refusal.message


def test_asterisk_22_banner_is_the_ami_version_not_asterisks() -> None:
    """Asterisk 22 greets with ``Asterisk Call Manager/11.0.0``: AMI 11, not Asterisk 11."""
    for scenario in ("01-inbound-answered", "16-attended-transfer"):
        records = replay_file(ASTERISK22 / scenario / "raw.ami")
        assert records and all(r.complete for r in records)


def test_old_tracker_would_have_made_a_record_per_channel() -> None:
    """What the refusal prevents: without it, each channel would be a call of its own."""
    tracker = CallTracker()
    tracker._too_old = lambda msg: None  # type: ignore[method-assign]
    reader = FrameReader()
    facts: list[object] = []
    for i, msg in enumerate(reader.feed(ASTERISK11.encode())):
        facts.extend(tracker.feed(msg, 1_400_000_000.0 + i))
    facts.extend(tracker.flush(include_live=True))
    assert len([f for f in facts if isinstance(f, CallRecord)]) == 2


def test_replay_of_an_asterisk_11_capture_exits_2_with_the_reason(tmp_path: Path) -> None:
    capture = tmp_path / "asterisk11.ami"
    capture.write_text(ASTERISK11)
    with pytest.raises(PbxTooOld):
        replay_file(capture)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "replay", str(capture)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert "too old" in proc.stderr and "Asterisk 13 or newer" in proc.stderr
    assert "Traceback" not in proc.stderr
    # the same as JSON lines (how our captures are kept) without a banner line
    jsonl = tmp_path / "asterisk11.jsonl"
    reader = FrameReader()
    msgs = [m for m in reader.feed(CALL_EVENTS.encode()) if "Event" in m]
    jsonl.write_text("".join(json.dumps(m) + "\n" for m in msgs))
    with pytest.raises(PbxTooOld):
        replay_file(jsonl)


async def _asterisk11_server() -> tuple[asyncio.Server, int]:
    """Just enough of an Asterisk 11 manager: the AMI 1.3 banner, Login, an empty
    CoreShowChannels, Pong."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/1.3\r\n")
        frames = FrameReader()
        while data := await reader.read(4096):
            for msg in frames.feed(data):
                action, aid = msg.get("Action"), msg.get("ActionID", "")
                if action == "Login":
                    writer.write(_frame(Response="Success", ActionID=str(aid),
                                        Message="Authentication accepted").encode())  # fmt: skip
                elif action == "CoreShowChannels":
                    writer.write(_frame(Response="Success", ActionID=str(aid),
                                        EventList="start").encode())  # fmt: skip
                    writer.write(_frame(Event="CoreShowChannelsComplete", ActionID=str(aid),
                                        EventList="Complete", ListItems="0").encode())  # fmt: skip
                elif action == "Ping":
                    pong = _frame(Response="Success", ActionID=str(aid), Ping="Pong")
                    writer.write(pong.encode())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_the_live_link_says_the_pbx_is_too_old() -> None:
    server, port = await _asterisk11_server()
    facts: list[object] = []

    async def deliver(fact: object) -> None:
        facts.append(fact)

    settings = LinkSettings(host="127.0.0.1", port=port, secret="x", connect_timeout=2.0)
    try:
        async with AmiLink(settings, CallTracker(), deliver) as link:  # type: ignore[arg-type]
            await link.wait_state("connected", timeout=5.0)
            for _ in range(100):
                if link.status.pbx_too_old:
                    break
                await asyncio.sleep(0.02)
            status = link.status
    finally:
        server.close()
    assert status.pbx_too_old is not None and "AMI 1.3" in status.pbx_too_old
    assert "Asterisk 13 or newer" in (status.last_error or "")


def test_one_mangled_event_does_not_stop_the_recording() -> None:
    """A single Newchannel without Linkedid is no proof: a second one is (Asterisk 11
    makes at least two channels per dialled call, and Dial events besides)."""
    tracker = CallTracker()
    lone = {"Event": "Newchannel", "Channel": "PJSIP/101-1", "Uniqueid": "1.1"}
    assert tracker.feed(lone, 1.0) == [] and tracker.incompatible is None
    assert tracker.feed({"Event": "Dial", "Channel": "x"}, 2.0) == []  # no SubEvent: noise
    second = {"Event": "Newchannel", "Channel": "PJSIP/102-2", "Uniqueid": "1.2"}
    (refusal,) = tracker.feed(second, 3.0)
    assert isinstance(refusal, PbxIncompatible) and "no Linkedid" in refusal.found


def test_the_link_managers_tracker_wrapper_passes_the_greeting_on() -> None:
    """Several links run the tracker inside ``ListingWatch``: the banner must reach it."""
    from web.linkmanager import ListingWatch

    watch = ListingWatch(CallTracker())
    (refusal,) = watch.greeting("Asterisk Call Manager/1.1", 5.0)
    assert isinstance(refusal, PbxIncompatible) and refusal.found == "AMI 1.1"
    assert watch.greeting("Asterisk Call Manager/1.1", 6.0) == []  # said once
    assert ListingWatch(CallTracker()).greeting("Asterisk Call Manager/11.0.0", 1.0) == []
