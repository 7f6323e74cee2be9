"""A real TCP AMI server that replays recorded Asterisk traffic.

The demo and the link's tests need a PBX that behaves like Asterisk on the wire (banner,
Login, Ping, CoreShowChannels, Originate, dropped and half-open sockets) without running
Asterisk.  The recorded events play on a PBX timeline that runs independently of the
clients, exactly like a real PBX: a client that connects late only sees what happens
after it logged in, and what a reconnecting client missed it can only learn through
``CoreShowChannels``, which this server answers from the channels the played events left
alive.

Usage::

    async with ReplayPbx("tests/fixtures/asterisk-22/01-inbound-answered/raw.ami",
                         speed=0, paused=True) as pbx:
        ...connect to pbx.host, pbx.port...
        pbx.resume()
        await pbx.wait_done()

Given ``cdr_csv``, it also appends every call's CDR rows to that Master.csv as Asterisk's
cdr_csv would (from the capture's ``Cdr`` events, with the ids re-mapped like the rest of
the traffic and the times moved to when the PBX played them).  Run on its own
(``python -m ami_bridge.replay_pbx --help``) it is a PBX in its own process, driven by
commands on stdin, that keeps carrying calls while the CRM is down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as _dt
import logging
import re
import ssl as _ssl
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .capture import read_capture
from .cdr import csv_line, row_from_cdr_event
from .protocol import FrameReader, Message, encode_action, first
from .replay_queues import QueueBook, is_list_reply

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
Timed = tuple[Message, float]

# Events that belong to one client's login, not to the PBX's timeline.
_PER_SESSION_EVENTS = frozenset({"FullyBooted"})
# Channel snapshot headers (Asterisk's ast_manager_build_channel_state_string order).
_SNAPSHOT = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)
# Prefixes under which events carry a second or third channel snapshot.
_SNAPSHOT_PREFIXES = ("", "Dest", "LocalOne", "LocalTwo")
# CEL and Cdr reuse header names with other meanings (their Exten is the CDR's dst).
_NOT_SNAPSHOTS = frozenset({"CEL", "Cdr"})
_TRUE = frozenset({"true", "yes", "1", "on", "y", "t"})
_WRITE_BUFFER_LIMIT = 16 * 1024 * 1024


# --------------------------------------------------------------------------- ids


_CHANNEL_SEQ = re.compile(r"([A-Za-z][A-Za-z0-9_]*/[^\s,;<>\"/]*?)-([0-9a-f]{8})(?![0-9A-Za-z])")
_UNIQUEID = re.compile(r"^(\d+)\.(\d+)$")


def _is_id_header(key: str) -> bool:
    low = key.lower()
    return low.endswith("uniqueid") or low.endswith("linkedid")


class IdAllocator:
    """Hands out uniqueid and channel sequence numbers that no earlier loop used.

    Asterisk numbers both from process-wide counters, so a repeated call must move past
    the highest number the capture ever used or the tracker would merge two calls.
    """

    def __init__(self) -> None:
        self.next_uid = 0
        self.next_chan = 0

    def observe(self, messages: Iterable[Message]) -> None:
        for msg in messages:
            for key, value in msg.items():
                text = first(value)
                if _is_id_header(key):
                    m = _UNIQUEID.match(text)
                    if m:
                        self.next_uid = max(self.next_uid, int(m.group(2)) + 1)
                for m in _CHANNEL_SEQ.finditer(text):
                    self.next_chan = max(self.next_chan, int(m.group(2), 16) + 1)

    def renamer(self) -> IdRenamer:
        return IdRenamer(self)


class IdRenamer:
    """One loop's consistent mapping of old ids to fresh ones.

    Uniqueid/Linkedid (and every ``*Uniqueid``/``*Linkedid`` header), BridgeUniqueid and
    channel-name sequence numbers are renamed everywhere in the loop, so a Linkedid still
    names the first channel and a Local pair's ``;1``/``;2`` halves still match.
    Recording file names are left alone: they name files that exist on disk.
    """

    def __init__(self, alloc: IdAllocator) -> None:
        self._alloc = alloc
        self._uids: dict[str, str] = {}
        self._chans: dict[str, str] = {}

    def _uid(self, old: str) -> str:
        new = self._uids.get(old)
        if new is None:
            m = _UNIQUEID.match(old)
            if m:
                new = f"{m.group(1)}.{self._alloc.next_uid}"
                self._alloc.next_uid += 1
            elif old and not old.startswith("<"):
                new = str(uuid.uuid4())
            else:
                new = old
            self._uids[old] = new
        return new

    def _chan(self, m: re.Match[str]) -> str:
        old = m.group(2)
        new = self._chans.get(old)
        if new is None:
            new = f"{self._alloc.next_chan:08x}"
            self._alloc.next_chan += 1
            self._chans[old] = new
        return f"{m.group(1)}-{new}"

    def _value(self, key: str, value: str) -> str:
        if _is_id_header(key):
            return self._uid(value)
        if "/" in value and "-" in value:
            return _CHANNEL_SEQ.sub(self._chan, value)
        return value

    def rename(self, msg: Message) -> Message:
        out: Message = {}
        for key, value in msg.items():
            if isinstance(value, list):
                out[key] = [self._value(key, v) for v in value]
            else:
                out[key] = self._value(key, value)
        return out


# ---------------------------------------------------------------------- channels


@dataclass(slots=True)
class LiveChannel:
    """What the PBX knows about one channel, enough to answer CoreShowChannels."""

    fields: dict[str, str]
    created: float
    bridge_id: str = ""
    application: str = ""
    application_data: str = ""

    def duration(self, now: float) -> str:
        secs = max(0, int(now - self.created))
        return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"


class ChannelTable:
    """Live channels, maintained from the played events the way Asterisk's stasis cache is."""

    def __init__(self) -> None:
        self.live: dict[str, LiveChannel] = {}

    def clear(self) -> None:
        self.live.clear()

    def apply(self, msg: Message, at: float) -> None:
        name = msg.get("Event")
        if name in _NOT_SNAPSHOTS:
            return
        if name == "Newchannel":
            uid = first(msg.get("Uniqueid"))
            if uid:
                snap = {k: first(msg.get(k)) for k in _SNAPSHOT}
                self.live[uid] = LiveChannel(snap, at)
            return
        if name == "Hangup":
            self.live.pop(first(msg.get("Uniqueid")), None)
            return
        for prefix in _SNAPSHOT_PREFIXES:
            uid = msg.get(prefix + "Uniqueid")
            chan = self.live.get(uid) if isinstance(uid, str) else None
            if chan is not None:
                for key in _SNAPSHOT:
                    value = msg.get(prefix + key)
                    if isinstance(value, str):
                        chan.fields[key] = value
        chan = self.live.get(first(msg.get("Uniqueid")))
        if chan is None:
            return
        if name == "Newexten":
            chan.application = first(msg.get("Application"))
            chan.application_data = first(msg.get("AppData"))
        elif name == "BridgeEnter":
            chan.bridge_id = first(msg.get("BridgeUniqueid"))
        elif name == "BridgeLeave":
            chan.bridge_id = ""
        elif name == "Rename":
            chan.fields["Channel"] = first(msg.get("Newname"))


# ------------------------------------------------------------------- originate


@dataclass
class OriginateScript:
    """What the PBX does after it accepts an Originate.

    ``events`` are played (with their recorded spacing) after the "queued" response;
    every event whose ActionID was the recorded client's is given the requesting client's
    ActionID.  ``fill_from_action`` copies Channel/Context/Exten from the request into the
    OriginateResponse, the way Asterisk echoes the dial string on failure.
    ``respond=False`` models a PBX that swallows the action (no response at all).
    The recorded ActionID is also replaced inside header values (``CRM_CALL_ID=c2c-0001``,
    ``AccountCode: crm-c2c-0001``), because Asterisk echoes what the Originate asked for:
    the correlation variable must carry the requesting client's id, not the recorded one.
    ``gate``, when given, holds the events until it is set: a test's way to cut the link
    between the Originate's "queued" response and the call it places.
    """

    events: list[Timed] = field(default_factory=list)
    source_action_id: str | None = None
    fill_from_action: bool = False
    respond: bool = True
    gate: asyncio.Event | None = None
    answer_as: tuple[str, str] | None = None
    """(Channel, Exten) of the recorded Originate: when given, the recorded answer is
    played as the answer to *this* Originate, its extension and number swapped for the
    requested ones (a demo's click on any number rings that number, from that rep's
    phone).  Recording file names are left as recorded, so the file is still found."""

    @classmethod
    def from_capture(
        cls, path: str | Path, action_id: str, answer_as: tuple[str, str] | None = None
    ) -> OriginateScript:
        """The traffic that followed the recorded Originate ``action_id`` in a capture;
        ``answer_as``: see the field."""
        events: list[Timed] = []
        started = False
        for msg, at in read_capture(path):
            if not started:
                started = "Response" in msg and first(msg.get("ActionID")) == action_id
                continue
            if "Event" in msg and msg.get("Event") not in _PER_SESSION_EVENTS:
                events.append((msg, at))
        if not started:
            raise ValueError(f"{path}: no response to an Originate with ActionID {action_id}")
        return cls(events=events, source_action_id=action_id, answer_as=answer_as)

    @classmethod
    def failure(cls, reason: int = 3, delay: float = 0.0) -> OriginateScript:
        """An OriginateResponse Failure as Asterisk 22 sends it (fixture 13)."""
        msg: Message = {
            "Event": "OriginateResponse",
            "Privilege": "call,all",
            "ActionID": "",
            "Response": "Failure",
            "Channel": "",
            "Context": "",
            "Exten": "",
            "Reason": str(reason),
            "Uniqueid": "<unknown>",
            "CallerIDNum": "<unknown>",
            "CallerIDName": "<unknown>",
        }
        return cls(events=[(msg, delay)], source_action_id="", fill_from_action=True)

    @classmethod
    def silent(cls) -> OriginateScript:
        """A PBX that never answers this Originate (to test a link drop while in flight)."""
        return cls(respond=False)


# --------------------------------------------------------------------- sessions


class _Session(asyncio.Protocol):
    """One AMI client connection."""

    def __init__(self, pbx: ReplayPbx) -> None:
        self.pbx = pbx
        self.transport: asyncio.Transport | None = None
        self.reader = FrameReader()
        self.logged_in = False
        self.username = ""
        self.events_on = False
        self.event_classes: frozenset[str] | None = None  # None: every class
        self.muted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport, but not necessarily an asyncio.Transport subclass (uvloop)
        self.transport = transport  # type: ignore[assignment]
        self.pbx._sessions.add(self)
        self.pbx.connections_total += 1
        transport.write(BANNER)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pbx._sessions.discard(self)

    def data_received(self, data: bytes) -> None:
        if self.muted:
            return
        for msg in self.reader.feed(data):
            if self.muted or self.transport is None or self.transport.is_closing():
                return
            try:
                self.pbx._handle_action(self, msg)
            except Exception:
                log.exception("replay PBX failed on action %r", _masked(msg))
                self.send(
                    {
                        "Response": "Error",
                        "ActionID": first(msg.get("ActionID")),
                        "Message": "Internal error",
                    }
                )

    def send(self, fields: Message | dict[str, object]) -> None:
        if self.muted or self.transport is None or self.transport.is_closing():
            return
        self.send_bytes(encode_action(_drop_empty_actionid(fields)))

    def send_bytes(self, data: bytes) -> None:
        if self.muted or self.transport is None or self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() > _WRITE_BUFFER_LIMIT:
            log.warning("replay PBX: dropping a client that stopped reading")
            self.transport.abort()
            return
        self.transport.write(data)

    def wants_event(self, msg: Message) -> bool:
        if not (self.logged_in and self.events_on) or self.muted:
            return False
        if self.event_classes is None:
            return True
        classes = {c.strip().lower() for c in first(msg.get("Privilege")).split(",")}
        return bool(classes & self.event_classes)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _drop_empty_actionid(fields: Message | dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in fields.items() if not (k == "ActionID" and v in ("", None))}


def _replace_in_values(msg: Message, old: str, new: str) -> Message:
    out: Message = {}
    for key, value in msg.items():
        if isinstance(value, list):
            out[key] = [v.replace(old, new) for v in value]
        else:
            out[key] = value.replace(old, new) if old in value else value
    return out


def _endpoint(channel: str) -> str:
    """``PJSIP/101`` -> ``101``."""
    return channel.rsplit("/", 1)[-1].split("-", 1)[0]


def _answer_as(msg: Message, recorded: tuple[str, str], action: Message) -> Message:
    """``msg`` of a recorded click-to-call as if it answered ``action``: the recorded
    extension and number, as whole tokens, become the requested ones."""
    old_ext, old_num = _endpoint(recorded[0]), recorded[1]
    new_ext = _endpoint(first(action.get("Channel")))
    new_num = first(action.get("Exten"))
    swaps = [(re.compile(rf"(?<![\d.]){re.escape(old_num)}(?![\d.])"), new_num)]
    swaps.append((re.compile(rf"(?<![\d.]){re.escape(old_ext)}(?![\d.])"), new_ext))

    def swap(value: str) -> str:
        if ".wav" in value or ".WAV" in value:
            return value  # the recording keeps its recorded name: the file exists
        for pattern, new in swaps:
            if new:
                value = pattern.sub(new, value)
        return value

    out: Message = {}
    for key, value in msg.items():
        out[key] = [swap(v) for v in value] if isinstance(value, list) else swap(value)
    return out


def _masked(msg: Message) -> Message:
    return {k: ("********" if k.lower() == "secret" else v) for k, v in msg.items()}


def _event_mask(value: str) -> tuple[bool, frozenset[str] | None]:
    """Login's ``Events`` / the Events action's ``EventMask``: on, off, or class list."""
    text = value.strip().lower()
    if text in ("", "on", "yes", "true", "all", "1"):
        return True, None
    if text in ("off", "no", "false", "0", "none"):
        return False, None
    return True, frozenset(c.strip() for c in text.split(",") if c.strip())


# ------------------------------------------------------------------------ server


class ReplayPbx:
    """An AMI server replaying a capture on its own timeline.

    ``speed`` 1.0 is real time, 50.0 fifty times faster, 0 as fast as possible.
    ``loops`` plays the capture that many times (``None``: forever), every loop after
    the first with fresh uniqueids, channel names and bridge ids.  ``paused`` starts the
    timeline stopped: call ``resume()`` or play events on demand with ``step()`` /
    ``play_until()``.
    """

    def __init__(
        self,
        capture: str | Path | Iterable[Timed] | None = None,
        *,
        username: str = "crm",
        secret: str = "crmsecret",
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        loops: int | None = 1,
        paused: bool = False,
        loop_gap: float = 1.0,
        ssl: _ssl.SSLContext | None = None,
        cdr_csv: str | Path | None = None,
    ) -> None:
        self._users = {username: secret}
        self._bind_host = host
        self._bind_port = port
        self._ssl = ssl
        self.speed = speed
        self.loops = loops
        self.loop_gap = loop_gap
        self._events = self._load(capture)
        self._ids = IdAllocator()
        self._ids.observe(m for m, _ in self._events)
        self._source = self._timeline_items()
        self._lookahead: Timed | None = None
        self._exhausted = False
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timeline_task: asyncio.Task[None] | None = None
        self._running = asyncio.Event()
        self._wake = asyncio.Event()
        self._reanchor = True
        self._done = asyncio.Event()
        self._scripts: deque[tuple[OriginateScript, int | None]] = deque()
        self._script_uses: Counter[int] = Counter()
        self.channels = ChannelTable()
        self.queues = QueueBook()
        self.queues.seed(self._events)
        self.now = self._events[0][1] if self._events else time.time()
        self.started_at = time.time()
        self.played = 0
        self.actions: Counter[str] = Counter()
        self.received: list[Message] = []
        self.connections_total = 0
        self.logins_ok = 0
        self.logins_failed = 0
        self.cdr_csv = Path(cdr_csv) if cdr_csv is not None else None
        """Master.csv that every call's CDR rows are appended to (None: no CDR kept)."""
        self.cdr_rows = 0
        self._played_captures: set[str] = set()
        if not paused:
            self._running.set()

    # -- lifecycle

    @staticmethod
    def _load(capture: str | Path | Iterable[Timed] | None) -> list[Timed]:
        if capture is None:
            return []
        items = read_capture(capture) if isinstance(capture, str | Path) else capture
        out: list[Timed] = []
        last = 0.0
        for msg, at in items:
            if "Event" not in msg or msg.get("Event") in _PER_SESSION_EVENTS:
                continue
            if is_list_reply(msg):  # the recording client's own listings, not the PBX's
                continue
            last = max(last, at)
            out.append((msg, last))
        return out

    async def start(self) -> None:
        await self._listen(self._bind_port)
        self._timeline_task = asyncio.create_task(self._timeline(), name="replay-pbx-timeline")

    async def _listen(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Session(self), self._bind_host, port, ssl=self._ssl
        )
        sock = self._server.sockets[0]
        self.host, self.port = sock.getsockname()[:2]

    async def close(self) -> None:
        if self._timeline_task is not None:
            self._timeline_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await asyncio.gather(
            *(t for t in [self._timeline_task, *self._tasks] if t is not None),
            return_exceptions=True,
        )

    async def __aenter__(self) -> ReplayPbx:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- timeline

    @property
    def total(self) -> int | None:
        """Events the timeline will play in all (None when looping forever)."""
        return None if self.loops is None else len(self._events) * self.loops

    def _timeline_items(self) -> Iterator[Timed]:
        if not self._events:
            return
        span = self._events[-1][1] - self._events[0][1] + self.loop_gap
        n = 0
        while self.loops is None or n < self.loops:
            renamer = self._ids.renamer() if n else None
            for msg, at in self._events:
                yield (renamer.rename(msg) if renamer else msg), at + n * span
            n += 1

    def _peek(self) -> Timed | None:
        if self._lookahead is None and not self._exhausted:
            self._lookahead = next(self._source, None)
            self._exhausted = self._lookahead is None
        return self._lookahead

    def _pop(self) -> Timed | None:
        item = self._peek()
        self._lookahead = None
        return item

    async def _timeline(self) -> None:
        loop = asyncio.get_running_loop()
        anchor_real = anchor_cap = 0.0
        burst = 0
        while True:
            if not self._running.is_set():
                self._reanchor = True
                await self._running.wait()
            item = self._peek()
            if item is None:
                break
            msg, at = item
            if self.speed > 0:
                if self._reanchor:
                    anchor_real, anchor_cap, self._reanchor = loop.time(), at, False
                delay = anchor_real + (at - anchor_cap) / self.speed - loop.time()
                if delay > 0.0005:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._wake.wait()
                    continue
            else:
                burst += 1
                if burst % 100 == 0:
                    await asyncio.sleep(0)
                    continue
            if self._peek() is item:
                self._pop()
                self._emit(msg, at)
        self._done.set()

    def _poke(self) -> None:
        self._reanchor = True
        self._wake.set()

    def pause(self) -> None:
        self._running.clear()
        self._poke()

    def resume(self) -> None:
        self._running.set()
        self._poke()

    def set_speed(self, speed: float) -> None:
        self.speed = speed
        self._poke()

    async def step(self, count: int = 1) -> list[Message]:
        """Play the next ``count`` events now, whatever the pace or pause."""
        played: list[Message] = []
        for _ in range(count):
            item = self._pop()
            if item is None:
                break
            self._emit(*item)
            played.append(item[0])
        self._poke()
        if self._peek() is None:
            self._done.set()
        await asyncio.sleep(0)
        return played

    async def play_until(self, predicate: Callable[[Message], bool]) -> Message | None:
        """Play events now until one matches (inclusive); None if the capture ran out."""
        found: Message | None = None
        n = 0
        while found is None:
            item = self._pop()
            if item is None:
                self._done.set()
                break
            self._emit(*item)
            if predicate(item[0]):
                found = item[0]
            n += 1
            if n % 100 == 0:
                await asyncio.sleep(0)
        self._poke()
        await asyncio.sleep(0)
        return found

    async def wait_done(self, timeout: float | None = None) -> None:
        """Until the timeline has played everything (and the sockets got it)."""
        async with asyncio.timeout(timeout):
            await self._done.wait()
        await self.drain()

    async def drain(self) -> None:
        """Let the kernel take what the transports buffered."""
        for _ in range(200):
            if not any(
                s.transport is not None and s.transport.get_write_buffer_size()
                for s in self._sessions
                if not s.muted
            ):
                return
            await asyncio.sleep(0.005)

    def inject(self, msg: Message, at: float | None = None) -> None:
        """Play one extra event now (it updates the live channels like any other)."""
        self._emit(msg, self.now if at is None else at)

    def _emit(self, msg: Message, at: float) -> None:
        if at > self.now:
            self.now = at
        self.played += 1
        self.channels.apply(msg, at)
        self.queues.apply(msg, at)
        if self.cdr_csv is not None and msg.get("Event") == "Cdr":
            self._write_cdr(msg)
        data: bytes | None = None
        for session in tuple(self._sessions):
            if session.wants_event(msg):
                if data is None:
                    data = encode_action(msg)
                session.send_bytes(data)

    def _write_cdr(self, msg: Message) -> None:
        """Append the row cdr_csv writes for this Cdr (clients or none).

        Asterisk writes a call's rows as the call ends, so the row's end time is now (wall
        clock, UTC as in the lab) and its start and answer move with it; the ids are
        already this loop's.  One short append per row, as cdr_csv does it."""
        row = row_from_cdr_event(msg, _dt.UTC)
        if row is None or self.cdr_csv is None:
            return
        shift = float(int(time.time())) - row.end
        row = dataclasses.replace(
            row,
            start=row.start + shift,
            answer=None if row.answer is None else row.answer + shift,
            end=row.end + shift,
        )
        try:
            with self.cdr_csv.open("a", encoding="utf-8") as f:
                f.write(csv_line(row, _dt.UTC))
            self.cdr_rows += 1
        except OSError as exc:
            log.error("replay PBX: cannot append to %s: %s", self.cdr_csv, exc)

    async def play(self, capture: str | Path, speed: float | None = None) -> int:
        """Play another capture now, on this PBX's timeline, whether or not anyone is
        connected (ids re-mapped when that capture was played before); returns the number
        of events played."""
        events = self._load(capture)
        if not events:
            return 0
        key = str(Path(capture).resolve())
        self._ids.observe(m for m, _ in events)
        renamer = self._ids.renamer() if key in self._played_captures else None
        self._played_captures.add(key)
        pace = self.speed if speed is None else speed
        loop = asyncio.get_running_loop()
        start_real, first_at = loop.time(), events[0][1]
        base = max(self.now, first_at)
        for n, (msg, at) in enumerate(events):
            if pace > 0:
                delay = start_real + (at - first_at) / pace - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif n % 100 == 0:
                await asyncio.sleep(0)
            self._emit(renamer.rename(msg) if renamer else msg, base + (at - first_at))
        await self.drain()
        return len(events)

    # -- faults

    def drop_clients(self) -> int:
        """Close every client connection (FIN), as a PBX restart or a network cut does."""
        sessions = list(self._sessions)
        for session in sessions:
            session.close()
        return len(sessions)

    def half_open(self) -> int:
        """Keep every current socket open but stop sending anything on it, Ping replies included.

        New connections are served normally, so a client that notices can recover.
        """
        sessions = list(self._sessions)
        for session in sessions:
            session.muted = True
        return len(sessions)

    async def restart(self, down_for: float = 0.0) -> None:
        """Drop every client and forget the live channels; optionally refuse connections a while."""
        self.drop_clients()
        self.channels.clear()
        self.started_at = time.time()
        if down_for > 0 and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            await asyncio.sleep(down_for)
            await self._listen(self.port)

    @property
    def clients(self) -> int:
        """Clients logged in right now."""
        return sum(1 for s in self._sessions if s.logged_in)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 2.0) -> None:
        """Poll a condition on this PBX (tests: "until the Originate arrived")."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise TimeoutError("replay PBX: condition not met in time")
            await asyncio.sleep(0.005)

    # -- originate scripting

    def script_originate(self, script: OriginateScript, *, times: int | None = 1) -> None:
        """Queue what the PBX does for the next Originate(s); ``times=None`` for all of them."""
        self._scripts.append((script, times))

    def _next_script(self) -> OriginateScript | None:
        if not self._scripts:
            return None
        script, times = self._scripts[0]
        if times is not None:
            if times <= 1:
                self._scripts.popleft()
            else:
                self._scripts[0] = (script, times - 1)
        return script

    # -- actions

    def _handle_action(self, session: _Session, msg: Message) -> None:
        name = first(msg.get("Action")).strip()
        action_id = first(msg.get("ActionID"))
        self.received.append(_masked(msg))
        self.actions[name.lower()] += 1
        reply = {"ActionID": action_id}
        if not name:
            session.send({"Response": "Error", **reply, "Message": "Missing action in request"})
            return
        low = name.lower()
        if low == "login":
            self._login(session, msg, reply)
            return
        if low == "logoff":
            session.send({"Response": "Goodbye", **reply, "Message": "Thanks for all the fish."})
            session.close()
            return
        if not session.logged_in:
            session.send({"Response": "Error", **reply, "Message": "Authentication Required"})
            return
        handler = self._handlers().get(low)
        if handler is None:
            session.send({"Response": "Error", **reply, "Message": "Invalid/unknown command"})
            return
        handler(session, msg, reply)

    def _handlers(self) -> dict[str, Callable[[_Session, Message, dict[str, str]], None]]:
        return {
            "ping": self._ping,
            "events": self._events_action,
            "coreshowchannels": self._core_show_channels,
            "status": self._status,
            "originate": self._originate,
            "queuestatus": lambda s, m, r: self.queues.queue_status(s.send, r, self.now),
            "devicestatelist": lambda s, m, r: self.queues.device_state_list(s.send, r),
            "extensionstatelist": lambda s, m, r: self.queues.extension_state_list(s.send, r),
            "pjsipshowcontacts": lambda s, m, r: self.queues.show_contacts(s.send, r),
            "queuepause": lambda s, m, r: self.queues.queue_pause(m, s.send, self.inject, r),
            "queueadd": lambda s, m, r: self.queues.queue_add(m, s.send, self.inject, r),
            "queueremove": lambda s, m, r: self.queues.queue_remove(m, s.send, self.inject, r),
        }

    def _login(self, session: _Session, msg: Message, reply: dict[str, str]) -> None:
        user = first(msg.get("Username"))
        secret = first(msg.get("Secret"))
        if user not in self._users or self._users[user] != secret:
            self.logins_failed += 1
            session.send({"Response": "Error", **reply, "Message": "Authentication failed"})
            session.close()
            return
        self.logins_ok += 1
        session.logged_in = True
        session.username = user
        session.events_on, session.event_classes = _event_mask(first(msg.get("Events")) or "on")
        session.send({"Response": "Success", **reply, "Message": "Authentication accepted"})
        if session.wants_event({"Privilege": "system,all"}):
            uptime = str(int(time.time() - self.started_at))
            session.send(
                {
                    "Event": "FullyBooted",
                    "Privilege": "system,all",
                    "Uptime": uptime,
                    "LastReload": uptime,
                    "Status": "Fully Booted",
                }
            )

    def _ping(self, session: _Session, msg: Message, reply: dict[str, str]) -> None:
        session.send(
            {
                "Response": "Success",
                **reply,
                "Ping": "Pong",
                "Timestamp": f"{time.time():.6f}",
            }
        )

    def _events_action(self, session: _Session, msg: Message, reply: dict[str, str]) -> None:
        session.events_on, session.event_classes = _event_mask(first(msg.get("EventMask")))
        state = "On" if session.events_on else "Off"
        session.send({"Response": "Success", **reply, "Events": state})

    def _core_show_channels(self, session: _Session, msg: Message, reply: dict[str, str]) -> None:
        session.send(
            {
                "Response": "Success",
                **reply,
                "EventList": "start",
                "Message": "Channels will follow",
            }
        )
        chans = list(self.channels.live.values())
        for chan in chans:
            event: dict[str, object] = {"Event": "CoreShowChannel", **reply}
            event.update(chan.fields)
            event.update(
                {
                    "BridgeId": chan.bridge_id,
                    "Application": chan.application,
                    "ApplicationData": chan.application_data,
                    "Duration": chan.duration(self.now),
                }
            )
            session.send(event)
        session.send(
            {
                "Event": "CoreShowChannelsComplete",
                **reply,
                "EventList": "Complete",
                "ListItems": str(len(chans)),
            }
        )

    def _status(self, session: _Session, msg: Message, reply: dict[str, str]) -> None:
        wanted = first(msg.get("Channel"))
        chans = [
            c for c in self.channels.live.values() if not wanted or c.fields["Channel"] == wanted
        ]
        if wanted and not chans:
            session.send({"Response": "Error", **reply, "Message": "No such channel"})
            return
        session.send(
            {
                "Response": "Success",
                **reply,
                "EventList": "start",
                "Message": "Channel status will follow",
            }
        )
        for chan in chans:
            event: dict[str, object] = {"Event": "Status", "Privilege": "Call", **reply}
            event.update(chan.fields)
            event.update(
                {
                    "Type": chan.fields["Channel"].split("/", 1)[0],
                    "DNID": "",
                    "TimeToHangup": "0",
                    "BridgeID": chan.bridge_id,
                    "Application": chan.application,
                    "Data": chan.application_data,
                    "Seconds": str(max(0, int(self.now - chan.created))),
                }
            )
            session.send(event)
        session.send(
            {
                "Event": "StatusComplete",
                **reply,
                "EventList": "Complete",
                "ListItems": str(len(chans)),
                "Items": str(len(chans)),
            }
        )

    def _originate(self, session: _Session, msg: Message, reply: dict[str, str]) -> None:
        script = self._next_script()
        if script is not None and not script.respond:
            return
        if not first(msg.get("Channel")):
            session.send({"Response": "Error", **reply, "Message": "Channel not specified"})
            return
        if not (first(msg.get("Exten")) or first(msg.get("Application"))):
            session.send({"Response": "Error", **reply, "Message": "Exten not specified"})
            return
        is_async = first(msg.get("Async")).strip().lower() in _TRUE
        if is_async:
            queued = "Originate successfully queued"
            session.send({"Response": "Success", **reply, "Message": queued})
        if script is None:
            if not is_async:
                session.send({"Response": "Error", **reply, "Message": "Originate failed"})
            return
        task = asyncio.create_task(self._play_script(session, script, msg, is_async))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play_script(
        self, session: _Session, script: OriginateScript, action: Message, is_async: bool
    ) -> None:
        uses = self._script_uses[id(script)]
        self._script_uses[id(script)] += 1
        renamer = self._ids.renamer() if uses else None
        action_id = first(action.get("ActionID"))
        loop = asyncio.get_running_loop()
        start_real = loop.time()
        start_cap = script.events[0][1] if script.events else 0.0
        base = self.now  # script times are another capture's: move them onto our timeline
        success = False
        if script.gate is not None:
            await script.gate.wait()
            start_real = loop.time()
        source_id = script.source_action_id or ""
        for msg, at in script.events:
            if self.speed > 0:
                delay = start_real + (at - start_cap) / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            out = renamer.rename(msg) if renamer else dict(msg)
            if "ActionID" in out and first(out["ActionID"]) == source_id:
                out["ActionID"] = action_id
            elif source_id and action_id:
                out = _replace_in_values(out, source_id, action_id)
            if script.answer_as is not None:
                out = _answer_as(out, script.answer_as, action)
            if out.get("Event") == "OriginateResponse":
                if script.fill_from_action:
                    for key in ("Channel", "Context", "Exten"):
                        out[key] = first(action.get(key))
                success = first(out.get("Response")) == "Success"
            self._emit(out, base + (at - start_cap))
            if self.speed <= 0:
                await asyncio.sleep(0)
        if not is_async:
            if success:
                session.send(
                    {
                        "Response": "Success",
                        "ActionID": action_id,
                        "Message": "Originate successfully queued",
                    }
                )
            else:
                session.send(
                    {"Response": "Error", "ActionID": action_id, "Message": "Originate failed"}
                )


# ------------------------------------------------------------------ its own process


async def _serve(args: argparse.Namespace) -> None:
    """Listen, say where (``listening HOST PORT``), then obey stdin line by line:
    ``play CAPTURE`` (answers ``played N``), ``drop`` (close every client), ``quit``."""
    pbx = ReplayPbx(
        None, host=args.host, port=args.port, speed=args.speed, cdr_csv=args.cdr_csv,
        username=args.username, secret=args.secret,
    )  # fmt: skip
    await pbx.start()
    print(f"listening {pbx.host} {pbx.port}", flush=True)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            cmd, _, arg = line.strip().partition(" ")
            try:
                if cmd == "play":
                    print(f"played {await pbx.play(arg)}", flush=True)
                elif cmd == "drop":
                    print(f"dropped {pbx.drop_clients()}", flush=True)
                elif cmd == "quit":
                    break
                elif cmd:
                    print(f"error unknown command {cmd!r}", flush=True)
            except Exception as exc:  # one bad command must not stop the PBX
                print(f"error {type(exc).__name__}: {exc}", flush=True)
    finally:
        await pbx.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ami_bridge.replay_pbx",
        description="A replay PBX in its own process: AMI over TCP, captures played on "
        "command (stdin: play CAPTURE | drop | quit), CDR rows appended to a Master.csv.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--speed", type=float, default=0.0, help="1 real time, 0 at once")
    parser.add_argument("--cdr-csv", default=None, help="Master.csv to append CDR rows to")
    parser.add_argument("--username", default="crm")
    parser.add_argument("--secret", default="crmsecret")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
