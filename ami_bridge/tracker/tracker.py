"""The call tracker: a pure state machine from AMI events to call facts.

It never awaits, never reads a clock and never touches a database: each event comes with
its time, and the facts it returns are the whole output.  That makes it replayable from a
file, testable on real recordings and fast (it is the hot path of the live bridge).

How a call is seen (learned from Asterisk's behaviour, see tests/fixtures):
* A call is a Linkedid group.  Asterisk moves a channel to the older Linkedid when it is
  bridged with another call (pickups, attended transfers), so groups merge when an event
  shows a channel with a new Linkedid.
* "Answered" means the caller's side became connected, through bridges and Local
  channel pairs, to another real (non-Local) channel.  A channel being Up is not an
  answer: queues and IVRs answer the caller themselves.
* The conversation follows an *anchor* party through transfers: the outside caller for
  inbound calls, the outside callee once an outbound call is answered, and for internal
  calls the caller until they hand the call on.
* A call ends when all its channels have hung up; its record is held for a short grace
  so the Cdr and OriginateResponse events Asterisk sends around the hangups still count.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict, deque
from collections.abc import Callable

from ..facts import CallProgress, Fact, OriginateResult, PbxIncompatible, Transfer
from ..profile import PbxProfile
from ..protocol import Message, first
from .model import EXTENSION, LOCAL, OTHER, TRUNK, Call, Channel, split_channel_name, uniqueid_order
from .summary import (
    build_progress,
    build_record,
    direction_of,
    number_party,
    party_of,
    synthetic_failed_originate,
)

log = logging.getLogger(__name__)

# Events only Asterisk before 12 sends (the old bridging); 12+ never does.
_OLD_ASTERISK_EVENTS = frozenset({"Dial", "Bridge", "Masquerade", "Link", "Unlink"})
NEEDED_ASTERISK = "Asterisk 13 or newer (AMI 2.5+)"
# New channels without a Linkedid (always there from Asterisk 12 on) that show an old
# Asterisk: two, so that one mangled event cannot stop a link from recording.
_NO_LINKEDID_PROOF = 2
# Events the tracker reads; everything else is skipped before its headers are parsed.
_WANTED = frozenset(
    {
        "Newchannel",
        "Newstate",
        "NewCallerid",
        "Hangup",
        "HangupRequest",
        "DialBegin",
        "DialState",
        "DialEnd",
        "BridgeEnter",
        "BridgeLeave",
        "BridgeDestroy",
        "Rename",
        "BlindTransfer",
        "AttendedTransfer",
        "Cdr",
        "OriginateResponse",
        "QueueCallerJoin",
        "QueueCallerAbandon",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
        "VarSet",
        "MusicOnHoldStart",
        "MusicOnHoldStop",
        *_OLD_ASTERISK_EVENTS,
    }
)
_UNKNOWN = ("", "<unknown>")
_FINISHED_MEMORY = 20000
# Beyond this an event time is NaN or infinite: a garbage Timestamp header, not a moment.
_TIME_LIMIT = 1e300


class CallTracker:
    """Feed it every AMI event with its time; it returns the call facts each one produces."""

    def __init__(self, profile: PbxProfile | None = None) -> None:
        self.profile = profile or PbxProfile()
        self._channels: dict[str, Channel] = {}
        self._by_name: dict[str, str] = {}
        self._calls: dict[str, Call] = {}
        self._alias: dict[str, str] = {}  # merged linkedid -> surviving linkedid
        self._bridges: dict[str, set[str]] = {}
        self._local_halves: dict[str, list[str]] = {}
        self._pending: deque[Call] = deque()  # ended, waiting out the grace
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._resync_seen: set[str] | None = None
        self._alive_at: float | None = None  # the PBX last heard from before a resync
        self._last_at = 0.0  # the last usable time, standing in for one that is not
        self._no_linkedid = 0
        self.incompatible: PbxIncompatible | None = None
        """Set once the PBX shows it is older than Asterisk 13: from then on nothing is
        recorded (its events would make wrong records), and the admin is told why."""
        names = (*self.profile.recording_vars, self.profile.correlation_var)
        self._var_header = re.compile(
            "Variable: (?:" + "|".join(re.escape(v) for v in names) + ")[\r\n]"
        )
        """A VarSet of a variable we read: one search in C per VarSet, the most frequent
        event there is (about half of a busy PBX's traffic)."""
        self._handlers: dict[str, Callable[[Message, float, list[Fact]], None]] = {
            "Newchannel": self._on_newchannel,
            "Newstate": self._on_newstate,
            "NewCallerid": self._on_newcallerid,
            "Hangup": self._on_hangup,
            "HangupRequest": self._on_hangup_request,
            "DialBegin": self._on_dial_begin,
            "DialState": self._on_dial_state,
            "DialEnd": self._on_dial_end,
            "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave,
            "BridgeDestroy": self._on_bridge_destroy,
            "BridgeMerge": self._on_bridge_merge,
            "Rename": self._on_rename,
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "Cdr": self._on_cdr,
            "OriginateResponse": self._on_originate_response,
            "QueueCallerJoin": self._on_queue_join,
            "QueueCallerAbandon": self._on_queue_abandon,
            "CoreShowChannel": self._on_core_show_channel,
            "CoreShowChannelsComplete": self._on_core_show_complete,
            "VarSet": self._on_varset,
            "MusicOnHoldStart": self._on_hold_start,
            "MusicOnHoldStop": self._on_hold_stop,
        }

    # ------------------------------------------------------------------ public API

    def wants(self, name: str, frame: str) -> bool:
        """Whether an event is worth parsing; VarSet only for the variables we read."""
        if self.incompatible is not None:
            return False  # nothing is recorded from a PBX this old
        if name == "VarSet":
            return self._var_header.search(frame) is not None
        return name in _WANTED

    def feed(self, msg: Message, at: float) -> list[Fact]:
        out: list[Fact] = []
        if -_TIME_LIMIT < at < _TIME_LIMIT:
            self._last_at = at
        else:
            at = self._last_at
        if self.incompatible is not None:
            return out
        found = self._too_old(msg)
        if found is not None:
            return self._refuse(found, at)
        name = msg.get("Event")
        if name is not None:
            if isinstance(name, list):  # the header came twice: Asterisk sends it first
                name = first(name)
            handler = self._handlers.get(name)
            if handler is not None:
                handler(msg, at, out)
                if "ChanVariable" in msg:
                    self._chan_variables(msg, at)
        if self._pending:
            self._release(at, out)
        return out

    def greeting(self, banner: str, at: float) -> list[Fact]:
        """The banner the PBX greets with on connect (the link's, or a capture's first
        line): AMI 1.x is an Asterisk this tracker refuses."""
        if self.incompatible is not None:
            return []
        found = self._too_old({"Banner": banner})
        return self._refuse(found, at) if found is not None else []

    def _too_old(self, msg: Message) -> str | None:
        """What in this message shows an Asterisk older than 13, if anything.

        The banner carries the AMI version, not Asterisk's (Asterisk 22 says 11.0.0):
        AMI 1.x is Asterisk 11 and older.  Without a banner (a capture, a reconnect) the
        events tell: Asterisk 11 sends Dial/Bridge/Masquerade and no Linkedid.
        """
        banner = msg.get("Banner")
        if banner is not None:
            version = first(banner).rsplit("/", 1)[-1].strip()
            major = version.split(".", 1)[0]
            if major.isdigit() and int(major) < 2:
                return f"AMI {version}"
            return None
        name = first(msg.get("Event"))
        if name in _OLD_ASTERISK_EVENTS and (name != "Dial" or "SubEvent" in msg):
            return f"it sends {name} events"
        if name == "Newchannel" and "Linkedid" not in msg and first(msg.get("Uniqueid")):
            self._no_linkedid += 1
            if self._no_linkedid >= _NO_LINKEDID_PROOF:
                return "its channels carry no Linkedid"
        return None

    def _refuse(self, found: str, at: float) -> list[Fact]:
        """Stop: drop every call in progress (they would be recorded wrong)."""
        self.incompatible = PbxIncompatible(found=found, needed=NEEDED_ASTERISK, at=at)
        log.error("%s", self.incompatible.message)
        self._channels.clear()
        self._by_name.clear()
        self._calls.clear()
        self._alias.clear()
        self._bridges.clear()
        self._local_halves.clear()
        self._pending.clear()
        return [self.incompatible]

    def tick(self, at: float) -> list[Fact]:
        """Release calls whose grace has passed; the live link calls this about once a second."""
        out: list[Fact] = []
        if not -_TIME_LIMIT < at < _TIME_LIMIT:
            at = self._last_at
        self._release(at, out)
        return out

    def flush(self, include_live: bool = False) -> list[Fact]:
        """Everything still held: at the end of a replay, or on shutdown (``include_live``
        closes calls still in progress as incomplete)."""
        out: list[Fact] = []
        while self._pending:
            self._emit(self._pending.popleft(), out)
        if include_live:
            for call in list(self._calls.values()):
                if call.done_at is None:
                    call.complete = False
                    call.done_at = call.last_event_at
                    self._emit(call, out)
        return out

    def begin_resync(self, at: float) -> None:
        """The link reconnected and is about to list the PBX's channels (CoreShowChannels).

        Every call still open lived through the outage: whatever happened to it meanwhile
        (a ring, a transfer, the answer) reached us only as the listing's snapshot, so its
        record says it is not complete, and the CRM can flag its figures.
        """
        self._resync_seen = set()
        self._alive_at = at
        for call in self._calls.values():
            if call.done_at is None:
                call.complete = False

    @property
    def live_calls(self) -> int:
        return sum(1 for c in self._calls.values() if c.done_at is None)

    def open_ids(self) -> set[str]:
        """Linkedids and channel uniqueids of every call the tracker still holds (in
        progress, or ended and waiting out its grace): it will write those itself, so a
        CDR backfill leaves them alone (their CDR may be only part of the call yet)."""
        out: set[str] = set(self._alias)
        for call in self._calls.values():
            out.add(call.linkedid)
            out.update(call.channels)
        return out

    # ------------------------------------------------------------------ channels & calls

    def _call_for(self, linkedid: str, at: float) -> Call:
        linkedid = self._alias.get(linkedid, linkedid)
        call = self._calls.get(linkedid)
        if call is None:
            call = Call(linkedid=linkedid, started_at=at, last_event_at=at)
            self._calls[linkedid] = call
        return call

    def _channel(
        self, msg: Message, at: float, prefix: str = "", create: bool = True
    ) -> Channel | None:
        """The channel an event is about, created on first sight (we may attach mid-call)."""
        uid = first(msg.get(prefix + "Uniqueid"))
        if uid in _UNKNOWN:
            return None
        ch = self._channels.get(uid)
        linkedid = first(msg.get(prefix + "Linkedid")) or (ch.linkedid if ch else uid)
        if ch is not None:
            if linkedid != ch.linkedid and linkedid not in _UNKNOWN:
                self._relink(ch, linkedid, at)
            return ch
        if not create or uid in self._finished or linkedid in self._finished:
            return None  # a leftover of a call already recorded: never record it twice
        name = first(msg.get(prefix + "Channel"))
        if not name:
            return None
        return self._new_channel(uid, name, linkedid, msg, prefix, at, seen_from_start=False)

    def _new_channel(
        self,
        uid: str,
        name: str,
        linkedid: str,
        msg: Message,
        prefix: str,
        at: float,
        seen_from_start: bool,
    ) -> Channel:
        tech, resource, base = split_channel_name(name)
        context = first(msg.get(prefix + "Context"))
        if tech == "Local":
            kind = LOCAL
        elif self.profile.is_trunk(resource, context):
            kind = TRUNK
        else:
            kind = OTHER
        cid = first(msg.get(prefix + "CallerIDNum"))
        cid = "" if cid in _UNKNOWN else cid
        cname = first(msg.get(prefix + "CallerIDName"))
        cname = "" if cname in _UNKNOWN else cname
        ch = Channel(
            uniqueid=uid,
            name=name,
            linkedid=linkedid,
            tech=tech,
            resource=resource,
            base=base,
            kind=kind,
            created_at=at,
            seen_from_start=seen_from_start,
            first_cid_num=cid,
            first_cid_name=cname,
            cid_num=cid,
            cid_name=cname,
            first_exten=first(msg.get(prefix + "Exten")),
            context=context,
            state=first(msg.get(prefix + "ChannelStateDesc")),
        )
        if kind == OTHER:
            ext = self._extension_of(ch)
            if ext is not None:
                ch.kind, ch.extension = EXTENSION, ext
        self._channels[uid] = ch
        self._by_name[name] = uid
        if kind == LOCAL:
            halves = self._local_halves.setdefault(base, [])
            for other_uid in halves:
                other = self._channels.get(other_uid)
                if other is not None:
                    other.partner, ch.partner = uid, other_uid
            halves.append(uid)
        call = self._call_for(linkedid, at)
        if not seen_from_start:
            call.complete = False
        if not call.channels:
            call.started_at = at
        call.channels[uid] = ch
        call.alive += 1
        if call.done_at is not None:  # a channel joined a call we thought over
            call.done_at = None
            if call in self._pending:
                self._pending.remove(call)
        return ch

    def _extension_of(self, ch: Channel) -> str | None:
        mapped = self.profile.extension_map.get(ch.resource)
        if mapped:
            return mapped
        for candidate in (ch.resource, ch.first_cid_num, ch.cid_num):
            if self.profile.is_extension(candidate):
                return candidate
        return None

    def _relink(self, ch: Channel, linkedid: str, at: float) -> None:
        """Asterisk moved the channel into an older call: the two calls are one now."""
        old = self._calls.get(self._alias.get(ch.linkedid, ch.linkedid))
        target_id = self._alias.get(linkedid, linkedid)
        if target_id in self._finished:
            return  # that call is recorded already; this one stays on its own
        ch.linkedid = linkedid
        if old is None or old.linkedid == target_id:
            return
        target = self._call_for(target_id, at)
        self._merge(old, target)

    def _merge(self, src: Call, dst: Call) -> None:
        for uid, ch in src.channels.items():
            dst.channels[uid] = ch
            ch.linkedid = dst.linkedid
        dst.alive += src.alive
        dst.started_at = min(dst.started_at, src.started_at)
        dst.complete = dst.complete and src.complete
        dst.ringing |= src.ringing
        dst.handed_on |= src.handed_on
        dst.transfers.extend(src.transfers)
        for rec in src.recordings:
            if rec not in dst.recordings:
                dst.recordings.append(rec)
        dst.originate_id = dst.originate_id or src.originate_id
        dst.queue = dst.queue or src.queue
        if (
            dst.first_dial_at is None
            or (src.first_dial_at or dst.first_dial_at) < dst.first_dial_at
        ):
            dst.first_dial_at = src.first_dial_at
        if dst.done_at is not None and dst.alive:
            dst.done_at = None
            if dst in self._pending:
                self._pending.remove(dst)
        if src in self._pending:
            self._pending.remove(src)
        del self._calls[src.linkedid]
        self._alias[src.linkedid] = dst.linkedid
        for old, new in list(self._alias.items()):
            if new == src.linkedid:
                self._alias[old] = dst.linkedid

    def _call_of(self, ch: Channel) -> Call | None:
        return self._calls.get(self._alias.get(ch.linkedid, ch.linkedid))

    # ------------------------------------------------------------------ who is the caller

    def _a_party(self, call: Call) -> Channel | None:
        """The caller's channel: the first channel, unless it is a Local channel of an
        Originate, in which case the first real party that answered stands for the caller."""
        if call.a_party is not None:
            ch = self._channels.get(call.a_party)
            if ch is not None:
                return ch
        origin = call.channels.get(call.linkedid)
        if origin is not None and origin.kind != LOCAL:
            call.a_party = origin.uniqueid
            return origin
        real = [c for c in call.channels.values() if c.kind != LOCAL]
        if not real:
            return None
        if origin is not None:  # an Originate into a Local channel
            up = [c for c in real if c.up_at is not None]
            if not up:
                return None
            chosen = min(up, key=lambda c: (c.up_at, uniqueid_order(c.uniqueid)))
        else:  # attached mid-call: the oldest channel we know
            chosen = min(real, key=lambda c: uniqueid_order(c.uniqueid))
        call.a_party = chosen.uniqueid
        return chosen

    def _connected(self, start: Channel) -> list[Channel]:
        """Real channels talking with ``start`` now: through bridges and Local pairs."""
        seen = {start.uniqueid}
        stack = [start]
        found: list[Channel] = []
        channels = self._channels
        bridges = self._bridges
        while stack:
            ch = stack.pop()
            neighbours: list[str] = []
            if ch.bridge is not None:
                neighbours.extend(bridges.get(ch.bridge, ()))
            if ch.partner is not None and ch.kind == LOCAL:
                neighbours.append(ch.partner)
            for uid in neighbours:
                if uid in seen:
                    continue
                seen.add(uid)
                other = channels.get(uid)
                if other is None or other.hungup_at is not None:
                    continue
                if other.kind == LOCAL:
                    stack.append(other)
                else:
                    found.append(other)
                    # a real channel is an end point: don't walk through it
        return found

    def _update_links(self, call: Call, at: float, out: list[Fact]) -> None:
        """Re-evaluate who talks with whom after a bridge or hangup change."""
        a = self._a_party(call)
        if a is None:
            return
        if call.answered_at is None:
            if a.hungup_at is not None:
                return
            parties = self._connected(a)
            if not parties:
                return
            party = max(parties, key=lambda c: (c.up_at or 0.0, uniqueid_order(c.uniqueid)))
            call.answered_at = at
            call.answered_uid = party.uniqueid
            call.answered_label = party_of(party, call, self.profile)
            call.anchor = a.uniqueid
            call.anchor_is_caller = True
            if a.kind != TRUNK and party.kind == TRUNK:
                call.anchor = party.uniqueid
                call.anchor_is_caller = False
            call.ringing.clear()
            anchor = self._channels[call.anchor]
            peers = parties if anchor is a else self._connected(anchor)
            self._note_agents(call, anchor, peers)
            call.anchor_peer = peers[-1].uniqueid if peers else None
            call.agent = self._agent_among(call, anchor, peers)
            if anchor.on_hold:
                call.held_since = at
            else:
                call.connected_since = at
            self._progress(call, at, out)
            return
        anchor = self._channels.get(call.anchor or "")
        if anchor is None:
            return
        parties = self._connected(anchor) if anchor.hungup_at is None else []
        if parties:
            self._note_agents(call, anchor, parties)
            call.anchor_peer = parties[-1].uniqueid
            agent = self._agent_among(call, anchor, parties)
            if agent != call.agent:
                call.agent = agent  # a transfer handed the call on: the pops follow it
                self._progress(call, at, out)
        # Talk is time the anchor spends with someone, not on hold: an attended transfer
        # puts the caller on music while the rep consults, bridged or not.
        held = anchor.on_hold and anchor.hungup_at is None
        if parties and not held:
            if call.connected_since is None:
                call.connected_since = at
        elif call.connected_since is not None:
            call.talk += max(0.0, at - call.connected_since)
            call.connected_since = None
            call.talk_end = at
        if not held:
            call.held_since = None
        elif call.held_since is None:
            call.held_since = at

    def _agent_among(self, call: Call, anchor: Channel, parties: list[Channel]) -> str | None:
        """The rep the anchor talks with now (the newest, as for ``agents``); a rep who
        transferred the call away is no longer it, even before their phone leaves."""
        reps = [
            p
            for p in parties
            if p.kind == EXTENSION
            and p.extension
            and p.uniqueid not in call.handed_on
            and (p.uniqueid != call.a_party or anchor.kind == TRUNK)
        ]
        if not reps:
            return None
        return max(reps, key=lambda c: uniqueid_order(c.uniqueid)).extension

    def _note_agents(self, call: Call, anchor: Channel, parties: list[Channel]) -> None:
        """Remember the reps the anchor talked with, latest last: that is the final agent."""
        for party in sorted(parties, key=lambda c: uniqueid_order(c.uniqueid)):
            if party.uniqueid == call.a_party and anchor.kind != TRUNK:
                continue  # the caller is never their own agent, unless facing a customer
            ext = party.extension
            if party.kind != EXTENSION or ext is None or (call.agents and call.agents[-1] == ext):
                continue
            if ext in call.agents:
                call.agents.remove(ext)
            call.agents.append(ext)
        ext = anchor.extension or ""
        is_agent = anchor.kind == EXTENSION and anchor.uniqueid != call.a_party
        if ext and is_agent and ext not in call.agents:
            call.agents.append(ext)

    def _progress(self, call: Call, at: float, out: list[Fact]) -> None:
        fact = build_progress(self, call, at)
        key = (fact.state, fact.ringing, fact.answered_by, fact.agent, fact.handed_on)
        if key != call.progress_key:
            call.progress_key = key
            out.append(fact)

    # ------------------------------------------------------------------ event handlers

    def _on_newchannel(self, msg: Message, at: float, out: list[Fact]) -> None:
        uid = first(msg.get("Uniqueid"))
        if uid in _UNKNOWN or uid in self._channels or uid in self._finished:
            return
        if first(msg.get("Linkedid")) in self._finished:
            return
        name = first(msg.get("Channel"))
        if not name:
            return
        linkedid = first(msg.get("Linkedid")) or uid
        ch = self._new_channel(uid, name, linkedid, msg, "", at, seen_from_start=True)
        call = self._call_of(ch)
        if call is not None:
            call.last_event_at = at
            if uid == call.linkedid and ch.seen_from_start and len(call.channels) == 1:
                call.complete = True

    def _on_newstate(self, msg: Message, at: float, out: list[Fact]) -> None:
        ch = self._channel(msg, at)
        if ch is None:
            return
        state = first(msg.get("ChannelStateDesc"))
        ch.state = state
        cid = first(msg.get("CallerIDNum"))
        if cid not in _UNKNOWN:
            ch.cid_num = cid
        call = self._call_of(ch)
        if call is None:
            return
        call.last_event_at = at
        if state == "Ringing":
            self._ringing(ch, call, at, out)
        elif state == "Up" and ch.up_at is None:
            ch.up_at = at
            if ch.uniqueid in call.ringing:
                call.ringing.discard(ch.uniqueid)
                self._progress(call, at, out)

    def _ringing(self, ch: Channel, call: Call, at: float, out: list[Fact]) -> None:
        if ch.ringing_at is None:
            ch.ringing_at = at
        if ch.kind != EXTENSION or ch.hungup_at is not None or ch.up_at is not None:
            return
        if ch.uniqueid in call.ringing:
            return
        # After the answer a phone rings only when the call is offered on (a transfer's
        # target, an attended transfer's consult): a phone made before the answer (a ring
        # group's other leg reporting late) is not.
        if call.answered_at is None or ch.created_at >= call.answered_at:
            call.ringing.add(ch.uniqueid)
            self._progress(call, at, out)

    def _on_newcallerid(self, msg: Message, at: float, out: list[Fact]) -> None:
        ch = self._channel(msg, at)
        if ch is None:
            return
        cid = first(msg.get("CallerIDNum"))
        if cid not in _UNKNOWN:
            ch.cid_num = cid
            if not ch.first_cid_num:
                ch.first_cid_num = cid
                if ch.kind == OTHER:
                    ext = self._extension_of(ch)
                    if ext is not None:
                        ch.kind, ch.extension = EXTENSION, ext
        name = first(msg.get("CallerIDName"))
        if name not in _UNKNOWN:
            ch.cid_name = name
            if not ch.first_cid_name:
                ch.first_cid_name = name

    def _on_hangup_request(self, msg: Message, at: float, out: list[Fact]) -> None:
        ch = self._channel(msg, at)
        if ch is None or ch.hangup_request_at is not None:
            return
        ch.hangup_request_at = at
        call = self._call_of(ch)
        if call is None or ch.kind == LOCAL:
            return
        call.last_event_at = at
        a = self._a_party(call)
        if call.answered_at is None:
            if a is ch and call.caller_hangup_at is None:
                call.caller_hangup_at = at
                call.caller_hangup_while_ringing = bool(call.ringing) or self._dials_open(call)
            return
        if call.hangup_by is not None:
            return
        if call.connected_since is None and call.held_since is None:
            return
        anchor = self._channels.get(call.anchor or "")
        if anchor is None:
            return
        if ch is anchor:
            call.hangup_by = "caller" if call.anchor_is_caller else "callee"
        elif ch in self._connected(anchor):
            call.hangup_by = "callee" if call.anchor_is_caller else "caller"

    def _dials_open(self, call: Call) -> bool:
        return any(
            c.dialed and c.dial_end_at is None and c.hungup_at is None
            for c in call.channels.values()
        )

    def _on_hangup(self, msg: Message, at: float, out: list[Fact]) -> None:
        ch = self._channel(msg, at)
        if ch is None or ch.hungup_at is not None:
            return
        ch.hungup_at = at
        try:
            ch.cause = int(first(msg.get("Cause")) or 0)
        except ValueError:
            ch.cause = None
        self._close_channel(ch, at, out)

    def _close_channel(self, ch: Channel, at: float, out: list[Fact]) -> None:
        if ch.bridge is not None:
            self._leave_bridge(ch.uniqueid, ch.bridge)
            ch.bridge = None
        call = self._call_of(ch)
        if call is None:
            return
        call.last_event_at = at
        if ch.uniqueid in call.ringing:
            call.ringing.discard(ch.uniqueid)
            self._progress(call, at, out)
        self._update_links(call, at, out)
        call.alive -= 1
        if call.alive <= 0:
            call.alive = 0
            call.done_at = at
            if call.connected_since is not None:
                call.talk += max(0.0, at - call.connected_since)
                call.connected_since = None
                call.talk_end = at
            self._hold(call, at)

    def _on_dial_begin(self, msg: Message, at: float, out: list[Fact]) -> None:
        dest = self._channel(msg, at, prefix="Dest")
        if dest is None:
            return
        src = self._channel(msg, at)
        call = self._call_of(dest)
        if call is None:
            return
        call.last_event_at = at
        dest.dialed = True
        dest.dial_begin_at = at
        dest.dial_string = first(msg.get("DialString"))
        if src is None:
            dest.originated = True
            if call.originate_dial_at is None:
                call.originate_dial_at = at
        else:
            dest.dial_source = src.uniqueid
            if call.first_dial_at is None:
                call.first_dial_at = at
            call.dial_log.append((dest.uniqueid, _dialled(msg)))
        number = dest.dial_string.split("@", 1)[0].rsplit("/", 1)[-1]
        dest.dialled_number = number
        if dest.state == "Ringing":
            self._ringing(dest, call, at, out)

    def callee_number(self, call: Call) -> str | None:
        """What the caller dialled: the first dial that does not lead back to the caller
        (an Originate's first leg rings the caller's own phone)."""
        a = self._a_party(call)
        for dest_uid, number in call.dial_log:
            if number is None:
                continue
            dest = self._channels.get(dest_uid)
            if dest is not None and a is not None and self._leads_to(dest, a):
                continue
            return number
        return None

    def _leads_to(self, start: Channel, target: Channel) -> bool:
        """Whether ``target`` was reached by dialling from ``start`` (through Local pairs)."""
        c: Channel | None = target
        for _ in range(64):
            if c is None:
                return False
            if c is start or c.partner == start.uniqueid:
                return True
            if c.kind == LOCAL and c.dial_source is None and c.partner:
                c = self._channels.get(c.partner)
                if c is start:
                    return True
                if c is None:
                    return False
            c = self._channels.get(c.dial_source or "")
        return False

    def _on_dial_state(self, msg: Message, at: float, out: list[Fact]) -> None:
        if first(msg.get("DialStatus")) != "RINGING":
            return
        dest = self._channel(msg, at, prefix="Dest")
        if dest is None:
            return
        call = self._call_of(dest)
        if call is not None:
            call.last_event_at = at
            self._ringing(dest, call, at, out)

    def _on_dial_end(self, msg: Message, at: float, out: list[Fact]) -> None:
        dest = self._channel(msg, at, prefix="Dest")
        if dest is None:
            return
        dest.dial_end_at = at
        dest.dial_status = first(msg.get("DialStatus"))
        call = self._call_of(dest)
        if call is None:
            return
        call.last_event_at = at
        if dest.uniqueid in call.ringing and dest.dial_status != "ANSWER":
            call.ringing.discard(dest.uniqueid)
            self._progress(call, at, out)

    def _on_bridge_enter(self, msg: Message, at: float, out: list[Fact]) -> None:
        ch = self._channel(msg, at)
        bridge = first(msg.get("BridgeUniqueid"))
        if ch is None or not bridge:
            return
        self._join_bridge(ch, bridge, at, out)

    def _join_bridge(self, ch: Channel, bridge: str, at: float, out: list[Fact]) -> None:
        if ch.bridge is not None and ch.bridge != bridge:
            self._leave_bridge(ch.uniqueid, ch.bridge)
        ch.bridge = bridge
        members = self._bridges.setdefault(bridge, set())
        members.add(ch.uniqueid)
        for call in self._calls_touching(members):
            call.last_event_at = at
            self._update_links(call, at, out)

    def _leave_bridge(self, uid: str, bridge: str) -> set[str]:
        """Take a channel out of a bridge; the members left.  An emptied bridge is
        forgotten here, not only on BridgeDestroy: that event may never come (a dropped
        link), and a long-running bridge must not keep every bridge it ever saw."""
        members = self._bridges.get(bridge)
        if members is None:
            return set()
        members.discard(uid)
        if not members:
            del self._bridges[bridge]
        return members

    def _calls_touching(self, uids: set[str]) -> list[Call]:
        calls: list[Call] = []
        for uid in list(uids):
            ch = self._channels.get(uid)
            if ch is None:
                continue
            for c in (ch, self._channels.get(ch.partner or "")):
                if c is None:
                    continue
                call = self._call_of(c)
                if call is not None and call not in calls:
                    calls.append(call)
        # Local chains can carry the change further; a Local;2's bridge peers matter too.
        for call in list(calls):
            for c in call.channels.values():
                if c.kind == LOCAL and c.partner:
                    other = self._channels.get(c.partner)
                    if other is not None:
                        oc = self._call_of(other)
                        if oc is not None and oc not in calls:
                            calls.append(oc)
        return calls

    def _on_bridge_leave(self, msg: Message, at: float, out: list[Fact]) -> None:
        ch = self._channel(msg, at, create=False)
        bridge = first(msg.get("BridgeUniqueid"))
        if ch is None:
            return
        members = self._leave_bridge(ch.uniqueid, bridge)
        if ch.bridge == bridge:
            ch.bridge = None
        affected = members | {ch.uniqueid}
        for call in self._calls_touching(affected):
            call.last_event_at = at
            self._update_links(call, at, out)

    def _on_bridge_destroy(self, msg: Message, at: float, out: list[Fact]) -> None:
        bridge = first(msg.get("BridgeUniqueid"))
        members = self._bridges.pop(bridge, None)
        for uid in members or ():
            ch = self._channels.get(uid)
            if ch is not None and ch.bridge == bridge:
                ch.bridge = None

    def _on_bridge_merge(self, msg: Message, at: float, out: list[Fact]) -> None:
        """Everyone in the From bridge is now in the To bridge (attended transfers)."""
        src = first(msg.get("FromBridgeUniqueid"))
        dst = first(msg.get("ToBridgeUniqueid"))
        if not src or not dst or src == dst:
            return
        for uid in list(self._bridges.get(src, ())):
            ch = self._channels.get(uid)
            if ch is not None:
                self._join_bridge(ch, dst, at, out)

    def _on_rename(self, msg: Message, at: float, out: list[Fact]) -> None:
        ch = self._channel(msg, at, create=False)
        new = first(msg.get("Newname"))
        if ch is None or not new:
            return
        self._by_name.pop(ch.name, None)
        ch.name = new
        self._by_name[new] = ch.uniqueid

    def _on_blind_transfer(self, msg: Message, at: float, out: list[Fact]) -> None:
        if first(msg.get("Result")) not in ("", "Success"):
            return
        transferer = self._channel(msg, at, prefix="Transferer", create=False)
        transferee = self._channel(msg, at, prefix="Transferee", create=False)
        call = self._transferred_call(at, transferer, transferee)
        if call is None:
            return
        # A transfer out of the PBX names the outside number as every outside party is
        # named in a record: in E.164, not as the rep keyed it in.
        target = number_party(first(msg.get("Extension")), self.profile)
        from_ = party_of(transferer, call, self.profile) if transferer else None
        call.transfers.append(Transfer("blind", from_, target, at))
        self._move_anchor(call, transferer, transferee)
        self._hand_on(call, at, out, transferer)

    def _on_attended_transfer(self, msg: Message, at: float, out: list[Fact]) -> None:
        if first(msg.get("Result")) not in ("", "Success"):
            return
        orig = self._channel(msg, at, prefix="OrigTransferer", create=False)
        second = self._channel(msg, at, prefix="SecondTransferer", create=False)
        transferee = self._channel(msg, at, prefix="Transferee", create=False)
        target = self._channel(msg, at, prefix="TransferTarget", create=False)
        call = self._transferred_call(at, orig, transferee, second)
        if call is None:
            return
        to_label = self._attended_target(msg, call, target, (orig, second, transferee))
        from_ = party_of(orig, call, self.profile) if orig else None
        call.transfers.append(Transfer("attended", from_, to_label, at))
        self._move_anchor(call, orig, transferee)
        self._hand_on(call, at, out, orig, second)

    def _transferred_call(self, at: float, *parties: Channel | None) -> Call | None:
        """The call a transfer happened in, found through the first of ``parties`` that
        is known, with its last event now; None when that one is in no tracked call."""
        holder = next((ch for ch in parties if ch is not None), None)
        call = None if holder is None else self._call_of(holder)
        if call is not None:
            call.last_event_at = at
        return call

    def _attended_target(
        self,
        msg: Message,
        call: Call,
        target: Channel | None,
        transfer: tuple[Channel | None, ...],
    ) -> str | None:
        """Whom an attended transfer handed the caller to.

        Asterisk names the target only while the transferer is still in the consult
        bridge when it completes the transfer: a transferer that hangs up may leave first,
        and then the event names no TransferTarget at all.  Its events may also come
        before or after the bridges merge and the consult's Local pair optimizes away.  So
        the target is the real party found, in that order, behind the named target, the
        second transferer, the transferee, or in the consult or destination bridge; else
        what the consult dialled (a named Local/103@ctx) or the second transferer's
        connected line (who they consulted)."""
        if target is not None and target.kind != LOCAL:
            return party_of(target, call, self.profile)
        leave = {c for c in transfer if c is not None}
        _orig, second, transferee = transfer
        starts = [c for c in (target, second, transferee) if c is not None]
        for key in ("SecondBridgeUniqueid", "DestBridgeUniqueid"):
            for uid in sorted(self._bridges.get(first(msg.get(key)), ())):
                ch = self._channels.get(uid)
                if ch is not None and ch not in leave and ch.hungup_at is None:
                    starts.append(ch)
        for start in starts:
            peers = [p for p in self._connected(start) if p not in leave]
            if start not in leave and start.kind != LOCAL:
                peers.append(start)
            if peers:
                peers.sort(key=lambda p: (p.kind != EXTENSION, uniqueid_order(p.uniqueid)))
                return party_of(peers[0], call, self.profile)
        if target is not None and self.profile.is_extension(target.resource):
            return target.resource  # Local/103@from-internal: what was dialled
        for key in ("DestExten", "SecondTransfererExten", "SecondTransfererConnectedLineNum"):
            number = first(msg.get(key))
            if number and number not in _UNKNOWN:
                return number_party(number, self.profile)
        return None

    def _hand_on(
        self, call: Call, at: float, out: list[Fact], *transferers: Channel | None
    ) -> None:
        """The transferers' phones handed the call on: they are no longer its rep (their
        pops leave them), whoever the call reaches next becomes it."""
        left = {ch.uniqueid: ch.extension for ch in transferers if ch is not None}
        call.handed_on.update(left)
        self._update_links(call, at, out)
        if call.agent is not None and call.agent in left.values():
            call.agent = None  # nobody has the caller yet (a blind transfer's target rings)
        if call.answered_at is not None:
            self._progress(call, at, out)

    def _move_anchor(
        self, call: Call, transferer: Channel | None, transferee: Channel | None
    ) -> None:
        """The party that hands the call on leaves it: the conversation now follows the
        party it was handed (whose side is the other one)."""
        if transferee is None or transferee.kind == LOCAL:
            # Older Asterisks name no transferee in AttendedTransfer: it is whoever the
            # transferer was talking with.
            transferee = self._channels.get(call.anchor_peer or "")
        if transferer is None or transferee is None:
            return
        if call.anchor == transferer.uniqueid and transferee.hungup_at is None:
            call.anchor = transferee.uniqueid
            call.anchor_is_caller = not call.anchor_is_caller

    def _on_hold_start(self, msg: Message, at: float, out: list[Fact]) -> None:
        self._on_hold(msg, at, out, True)

    def _on_hold_stop(self, msg: Message, at: float, out: list[Fact]) -> None:
        self._on_hold(msg, at, out, False)

    def _on_hold(self, msg: Message, at: float, out: list[Fact], on: bool) -> None:
        """Music on hold on a channel: its party hears music, so is not talking."""
        ch = self._channel(msg, at, create=False)
        if ch is None or ch.on_hold == on:
            return
        ch.on_hold = on
        call = self._call_of(ch)
        if call is not None and call.answered_at is not None:
            call.last_event_at = at
            self._update_links(call, at, out)

    def _on_varset(self, msg: Message, at: float, out: list[Fact]) -> None:
        ch = self._channel(msg, at)
        call = self._call_of(ch) if ch is not None else None
        if call is None:
            return
        var = first(msg.get("Variable"))
        value = first(msg.get("Value"))
        if not value:
            return
        if var == self.profile.correlation_var:
            call.originate_id = call.originate_id or value
        elif var in self.profile.recording_vars:
            call.add_recording(value)

    def _chan_variables(self, msg: Message, at: float) -> None:
        """``channelvars`` in manager.conf puts ``ChanVariable: NAME=value`` on every event
        of a channel: the audit-friendly way to learn the recording's name."""
        ch = self._channels.get(first(msg.get("Uniqueid")) or first(msg.get("UniqueID")))
        call = self._call_of(ch) if ch is not None else None
        if call is None:
            return
        items = msg["ChanVariable"]
        for item in items if isinstance(items, list) else [items]:
            name, _, value = item.partition("=")
            if value and name == self.profile.correlation_var:
                call.originate_id = call.originate_id or value
            elif value and name in self.profile.recording_vars:
                call.add_recording(value)

    def _on_cdr(self, msg: Message, at: float, out: list[Fact]) -> None:
        uid = first(msg.get("UniqueID")) or first(msg.get("Uniqueid"))
        ch = self._channels.get(uid)
        if ch is None:
            ch = self._channels.get(self._by_name.get(first(msg.get("Channel")), ""))
        call = self._call_of(ch) if ch is not None else None
        if call is None:
            return
        field = first(msg.get("UserField"))
        if field:
            call.add_recording(field)

    def _on_originate_response(self, msg: Message, at: float, out: list[Fact]) -> None:
        action_id = first(msg.get("ActionID"))
        success = first(msg.get("Response")) == "Success"
        try:
            reason: int | None = int(first(msg.get("Reason")))
        except ValueError:
            reason = None
        uid = first(msg.get("Uniqueid"))
        dial = first(msg.get("Channel"))
        out.append(
            OriginateResult(
                action_id=action_id,
                success=success,
                reason=reason,
                reason_text=_ORIGINATE_REASONS.get(reason or 0, "unknown")
                if not success
                else "answered",
                channel=dial or None,
                uniqueid=None if uid in _UNKNOWN else uid,
                at=at,
            )
        )
        if not action_id:
            return
        call = self._originated_call(action_id, uid, dial)
        if call is None:
            if not success and "originate:" + action_id not in self._finished:
                out.append(synthetic_failed_originate(self, msg, action_id, reason, at))
            return
        call.originate_id = call.originate_id or action_id
        call.originate_reason = reason
        call.originate_failed = not success
        exten = first(msg.get("Exten"))
        if exten and exten != "s":
            call.originate_exten = exten

    def _originated_call(self, action_id: str, uid: str, dial: str) -> Call | None:
        ch = self._channels.get(uid) if uid not in _UNKNOWN else None
        if ch is not None:
            return self._call_of(ch)
        for call in self._calls.values():
            if call.originate_id == action_id:
                return call
        # Failure carries only the dial string (PJSIP/103): the newest originated channel on it.
        candidates = [
            c for c in self._channels.values() if c.originated and c.name.startswith(dial + "-")
        ]
        for c in sorted(candidates, key=lambda c: c.created_at, reverse=True):
            call = self._call_of(c)
            if call is not None and call.originate_id in (None, action_id):
                return call
        return None

    def _queue_call(self, msg: Message, at: float) -> Call | None:
        """The call a queue event is about, its queue noted (None: not a call we follow)."""
        ch = self._channel(msg, at)
        call = self._call_of(ch) if ch is not None else None
        if call is not None:
            call.queue = first(msg.get("Queue")) or call.queue
        return call

    def _on_queue_join(self, msg: Message, at: float, out: list[Fact]) -> None:
        self._queue_call(msg, at)

    def _on_queue_abandon(self, msg: Message, at: float, out: list[Fact]) -> None:
        call = self._queue_call(msg, at)
        if call is not None:
            call.queue_abandoned = True

    def _on_core_show_channel(self, msg: Message, at: float, out: list[Fact]) -> None:
        uid = first(msg.get("Uniqueid"))
        known = uid in self._channels
        ch = self._channel(msg, at)
        if ch is None:
            return
        if not known:
            ch.created_at = at - _hms(first(msg.get("Duration")))
            call = self._call_of(ch)
            if call is not None:
                call.started_at = min(call.started_at, ch.created_at)
        state = first(msg.get("ChannelStateDesc"))
        if state:
            ch.state = state
            if state == "Up" and ch.up_at is None:
                ch.up_at = at
        if self._resync_seen is not None:
            self._resync_seen.add(ch.uniqueid)
        bridge = first(msg.get("BridgeId"))
        if bridge and ch.bridge != bridge:
            self._join_bridge(ch, bridge, at, out)

    def _on_core_show_complete(self, msg: Message, at: float, out: list[Fact]) -> None:
        seen, self._resync_seen = self._resync_seen, None
        if seen is None:
            return
        # It was last known alive when the link last heard from the PBX, not now: a call
        # that died with the PBX must not be billed the minutes the PBX was down.
        alive = at if self._alive_at is None else min(at, self._alive_at)
        for ch in [
            c for c in self._channels.values() if c.hungup_at is None and c.uniqueid not in seen
        ]:
            # It ended while we were not connected: close it, and say the record is partial.
            call = self._call_of(ch)
            end = max(alive, call.last_event_at) if call is not None else alive
            ch.hungup_at = end
            if call is not None:
                call.complete = False
            self._close_channel(ch, end, out)

    # ------------------------------------------------------------------ finishing

    def _hold(self, call: Call, at: float) -> None:
        """Queue an ended call for release after the grace, kept in order of its end, so
        one call stamped far in the future (a bad Timestamp) does not hold up the rest."""
        pending = self._pending
        i = len(pending)
        while i and (pending[i - 1].done_at or 0.0) > at:
            i -= 1
        if i == len(pending):
            pending.append(call)
        else:
            pending.insert(i, call)

    def _release(self, at: float, out: list[Fact]) -> None:
        grace = self.profile.finish_grace
        pending = self._pending
        while pending and (pending[0].done_at or 0.0) + grace <= at:
            self._emit(pending.popleft(), out)

    def _emit(self, call: Call, out: list[Fact]) -> None:
        if self._calls.get(call.linkedid) is not call:
            return
        try:
            record = build_record(self, call)
        finally:
            self._forget(call)
        if record is not None:
            if call.progress_key is not None:
                out.append(
                    CallProgress(
                        linkedid=record.linkedid,
                        state="ended",
                        direction=record.direction,
                        caller=record.caller,
                        caller_name=record.caller_name,
                        callee=record.callee,
                        did=record.did,
                        ringing=(),
                        answered_by=record.answered_by,
                        at=record.ended_at,
                        originate_id=record.originate_id,
                    )
                )
            out.append(record)

    def _forget(self, call: Call) -> None:
        self._calls.pop(call.linkedid, None)
        for uid, ch in call.channels.items():
            if self._channels.get(uid) is ch:
                del self._channels[uid]
            if self._by_name.get(ch.name) == uid:
                del self._by_name[ch.name]
            if ch.bridge is not None:
                self._leave_bridge(uid, ch.bridge)
            halves = self._local_halves.get(ch.base)
            if halves is not None and uid in halves:
                halves.remove(uid)
                if not halves:
                    del self._local_halves[ch.base]
            self._remember_finished(uid)
        self._remember_finished(call.linkedid)
        if call.originate_id:
            self._remember_finished("originate:" + call.originate_id)
        for old in [k for k, v in self._alias.items() if v == call.linkedid]:
            del self._alias[old]
            # A merged-away linkedid names the same call: a late event carrying it must
            # not open a second one.
            self._remember_finished(old)

    def _remember_finished(self, uid: str) -> None:
        self._finished[uid] = None
        if len(self._finished) > _FINISHED_MEMORY:
            self._finished.popitem(last=False)

    # used by summary
    def channel(self, uid: str | None) -> Channel | None:
        return self._channels.get(uid or "")

    def a_party(self, call: Call) -> Channel | None:
        return self._a_party(call)

    def direction(self, call: Call) -> str:
        return direction_of(self, call)


_ORIGINATE_REASONS = {
    0: "failed: no such number or channel",
    1: "hung up",
    3: "your phone did not answer",
    5: "busy",
    8: "congestion: number unreachable",
}


def _dialled(msg: Message) -> str | None:
    """The number a DialBegin dials: the caller's extension if it is a number, else the
    dial string's (``00442079460958@trunk``, ``PJSIP/102``)."""
    exten = first(msg.get("Exten"))
    if exten and exten != "s" and _looks_dialable(exten):
        return exten
    number = first(msg.get("DialString")).split("@", 1)[0].rsplit("/", 1)[-1]
    return number if _looks_dialable(number) else None


def _looks_dialable(text: str) -> bool:
    return bool(text) and all(ch.isdigit() or ch in "+*#" for ch in text)


def _hms(text: str) -> float:
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        return 0.0
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + p
    return float(seconds)
