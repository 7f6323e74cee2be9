"""The presence tracker: a pure state machine from AMI events to presence facts.

Beside the call tracker, fed the same events by the link: no I/O, no clock of its own.
It follows four things Asterisk reports separately and joins them per rep (extension):

* registration (``ContactStatus``, ``DeviceStateChange`` UNAVAILABLE, the
  ``PJSIPShowContacts`` listing): offline or not;
* the rep's own channels (``Newchannel``/``Newstate``/``Hangup``, ``Hold``/``Unhold``,
  ``CoreShowChannel`` on resync): ringing, on a call, with whom, since when.  Device and
  extension states cannot tell ringing from talking on a PBX with ``device_state_busy_at``
  (both read BUSY), channel states can;
* queue membership and pauses (``QueueMemberAdded/Removed/Status/Pause``, the
  ``QueueStatus`` listing);
* callers waiting (``QueueCallerJoin/Leave/Abandon``, ``QueueEntry`` on resync).

After every (re)connect the link sends ``RESYNC_ACTIONS``; their listings replace what
the tracker believed (a member removed, a caller gone while the link was down), so the
board is right without waiting for the next change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..protocol import Message, first
from .facts import (
    AgentChange,
    AgentKind,
    CallDirection,
    PresenceChange,
    QueueCaller,
    QueueMember,
    QueueView,
    RepCall,
    RepView,
)

Fact = PresenceChange | AgentChange

RESYNC_ACTIONS: tuple[str, ...] = (
    "QueueStatus",
    "DeviceStateList",
    "ExtensionStateList",
    "PJSIPShowContacts",
)

_ON_CHANNEL = (
    "Newchannel",
    "Newstate",
    "Hangup",
    "Hold",
    "Unhold",
    "NewConnectedLine",
    "CoreShowChannel",
)
_ON_MEMBER = (
    "QueueMemberStatus",
    "QueueMemberPause",
    "QueueMemberPaused",
    "QueueMemberAdded",
    "QueueMemberRemoved",
    "QueueMember",
)
_ON_CALLER = ("QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "QueueEntry")
_CHANNEL_EVENTS = {*_ON_CHANNEL, "CoreShowChannelsComplete"}
_QUEUE_EVENTS = {
    *_ON_MEMBER,
    *_ON_CALLER,
    "AgentCalled",
    "AgentConnect",
    "AgentComplete",
    "AgentRingNoAnswer",
    "QueueParams",
    "QueueStatusComplete",
}
_DEVICE_EVENTS = {
    "DeviceStateChange",
    "ExtensionStatus",
    "ContactStatus",
    "ContactList",
    "ContactListComplete",
    "DeviceStateListComplete",
}
WANTED = frozenset(_CHANNEL_EVENTS | _QUEUE_EVENTS | _DEVICE_EVENTS)

_OFFLINE_DEVICE = {"UNAVAILABLE", "INVALID"}
_ONLINE_CONTACT = {"Created", "Reachable", "Updated", "NonQualified"}
_OFFLINE_CONTACT = {"Removed", "Unreachable"}
_ENDPOINT_RE = re.compile(r"^(?:PJSIP|SIP|IAX2)/([^-/@]+)")


# Alike in shape to facts.RepView on purpose: the tracker's state, not what it tells.
@dataclass
class _Channel:
    uniqueid: str
    linkedid: str
    extension: str
    state: int
    created: float
    originator: bool
    dialed: str | None
    other_number: str | None = None
    other_name: str | None = None
    answered_at: float | None = None
    on_hold: bool = False
    queue: str | None = None


@dataclass
class _Queue:
    name: str
    members: dict[str, QueueMember] = field(default_factory=dict)
    """By interface (``PJSIP/102``): the views themselves, replaced on every change, so a
    queue's view is these, sorted (no mutable twin of ``QueueMember`` to copy from)."""
    waiting: dict[str, QueueCaller] = field(default_factory=dict)
    """By the caller channel's uniqueid."""


@dataclass
class _Rep:
    extension: str
    registered: bool | None = None
    name: str | None = None
    device: str | None = None
    """The last device state (``NOT_INUSE``, ``BUSY`` ...): what the board falls back on
    for a call whose channels it never saw."""
    state: str = ""
    since: float = 0.0


@dataclass
class _Listing:
    """What one resync's listings named, to drop what they did not.  Each part is None
    once its listing completed (or before a resync): later list events (another client's
    actions are not sent to us, but a replayed capture may hold some) change nothing."""

    channels: set[str] | None = field(default_factory=set)
    queues: dict[str, tuple[set[str], set[str]]] | None = field(default_factory=dict)
    contacts: set[str] | None = field(default_factory=set)


class PresenceTracker:
    """Events in (with their time), presence facts out.  See the module docstring."""

    resync_actions = RESYNC_ACTIONS

    def __init__(self, is_extension: Callable[[str | None], bool] | None = None) -> None:
        pattern = re.compile(r"\d{2,6}")
        self._is_ext = is_extension or (lambda t: t is not None and bool(pattern.fullmatch(t)))
        self.reps: dict[str, _Rep] = {}
        self.queues: dict[str, _Queue] = {}
        self.channels: dict[str, _Channel] = {}
        self._listing = _Listing(None, None, None)
        self._listed_once = False
        self._dirty_reps: set[str] = set()
        self._dirty_queues: set[str] = set()
        self._changes: list[AgentChange] = []
        self._shown: dict[tuple[str, str], RepView | QueueView] = {}
        """The view last reported per ("rep", extension) or ("queue", name): one that
        did not change is not reported again (a rep ringing in twenty calls of a burst
        touched their view in each one's events, and every board heard it each time)."""

    # -- the tracker protocol ----------------------------------------------------------
    def wants(self, name: str, frame_text: str) -> bool:
        if name not in WANTED:
            return False
        if name in ("Newchannel", "Newstate", "Hangup", "Hold", "Unhold", "NewConnectedLine"):
            # only the reps' channels matter; the trunk's are most of the traffic
            return "Channel: PJSIP/" in frame_text or "Channel: SIP/" in frame_text
        return True

    def begin_resync(self, at: float) -> None:
        self._listing = _Listing()

    def tick(self, at: float) -> list[Fact]:
        return []

    def flush(self) -> list[Fact]:
        return []

    def feed(self, msg: Message, at: float) -> list[Fact]:
        name = first(msg.get("Event"))
        handler = _HANDLERS.get(name)
        if handler is None:
            return []
        handler(self, msg, at)
        return self._collect(at)

    # -- views -------------------------------------------------------------------------
    def rep_view(self, ext: str, at: float) -> RepView:
        rep = self._rep(ext)
        member_of = [
            q for q in self.queues.values() if any(m.extension == ext for m in q.members.values())
        ]
        paused = [
            (q.name, m)
            for q in member_of
            for m in q.members.values()
            if m.extension == ext and m.paused
        ]
        call = self._rep_call(ext)
        if rep.registered is False:
            state = "offline"
        elif call is not None and call.on_hold:
            state = "on_hold"
        elif call is not None and (call.answered or not call.ringing):
            state = "on_call"  # answered, or the rep is dialling out
        elif call is not None or rep.device in ("RINGING", "RINGINUSE"):
            state = "ringing"
        elif rep.device == "ONHOLD":
            state = "on_hold"
        elif rep.device in ("INUSE", "BUSY"):
            state = "on_call"  # a call this tracker has not seen the channels of
        elif paused:
            state = "paused"
        else:
            state = "available"
        if state != rep.state:
            rep.state, rep.since = state, at
        reason = next((m.paused_reason for _, m in paused if m.paused_reason), None)
        name = rep.name or next(
            (
                m.name
                for q in member_of
                for m in q.members.values()
                if m.extension == ext and m.name
            ),
            None,
        )
        return RepView(
            extension=ext,
            state=state,  # type: ignore[arg-type]
            since=rep.since,
            registered=rep.registered,
            name=name,
            paused_reason=reason,
            paused_queues=tuple(sorted(q for q, _ in paused)),
            queues=tuple(sorted(q.name for q in member_of)),
            call=call,
        )

    def queue_view(self, name: str) -> QueueView:
        q = self.queues.get(name)
        if q is None:
            return QueueView(queue=name, members=(), waiting=(), exists=False)
        members = tuple(sorted(q.members.values(), key=lambda m: m.extension))
        waiting = tuple(sorted(q.waiting.values(), key=lambda c: (c.position, c.joined_at)))
        return QueueView(queue=name, members=members, waiting=waiting)

    def snapshot(self, at: float) -> list[PresenceChange]:
        """Every rep and queue as it is now (a board that just opened)."""
        out = [PresenceChange(at=at, rep=self.rep_view(e, at)) for e in sorted(self.reps)]
        out += [PresenceChange(at=at, queue=self.queue_view(q)) for q in sorted(self.queues)]
        return out

    # -- internals ---------------------------------------------------------------------
    def _rep(self, ext: str) -> _Rep:
        rep = self.reps.get(ext)
        if rep is None:
            rep = self.reps[ext] = _Rep(ext)
        return rep

    def _collect(self, at: float) -> list[Fact]:
        out: list[Fact] = list(self._changes)
        self._changes.clear()
        for ext in sorted(self._dirty_reps):
            rep = self.rep_view(ext, at)
            if self._shown.get(("rep", ext)) != rep:
                self._shown["rep", ext] = rep
                out.append(PresenceChange(at=at, rep=rep))
        for q in sorted(self._dirty_queues):
            queue = self.queue_view(q)
            if self._shown.get(("queue", q)) != queue:
                self._shown["queue", q] = queue
                out.append(PresenceChange(at=at, queue=queue))
        self._dirty_reps.clear()
        self._dirty_queues.clear()
        return out

    def _extension_of(self, device: str) -> str | None:
        found = _ENDPOINT_RE.match(device or "")
        if found and self._is_ext(found.group(1)):
            return found.group(1)
        return None

    def _rep_call(self, ext: str) -> RepCall | None:
        mine = [c for c in self.channels.values() if c.extension == ext]
        if not mine:
            return None
        # an answered call first (a rep talking while a second call rings is "on a call")
        ch = min(mine, key=lambda c: (c.answered_at is None, c.created))
        if ch.originator:
            other = ch.dialed if ch.dialed and ch.dialed not in ("s", "") else ch.other_number
            direction: CallDirection = "internal" if self._is_ext(other) else "outbound"
            if ch.other_number and ch.answered_at is not None:
                other = ch.other_number
        else:
            other = ch.other_number
            direction = "internal" if self._is_ext(other) else "inbound"
        return RepCall(
            direction=direction,
            other_number=other,
            other_name=ch.other_name,
            answered=ch.answered_at is not None,
            ringing=ch.state == 5 or (not ch.originator and ch.state < 5),
            on_hold=ch.on_hold,
            since=ch.answered_at if ch.answered_at is not None else ch.created,
            linkedid=ch.linkedid,
            queue=ch.queue,
        )

    def _set_registered(self, ext: str, value: bool, at: float) -> None:
        rep = self._rep(ext)
        if rep.registered == value:
            return
        before = rep.registered
        rep.registered = value
        self._dirty_reps.add(ext)
        if before is not None or value is False:
            self._change(at, "registered" if value else "unregistered", ext)

    def _change(
        self,
        at: float,
        kind: AgentKind,
        ext: str,
        queue: str | None = None,
        reason: str | None = None,
    ) -> None:
        self._changes.append(AgentChange(at, kind, ext, queue, reason))

    # channels
    def _on_channel(self, msg: Message, at: float) -> None:
        name = first(msg.get("Event"))
        uid = first(msg.get("Uniqueid"))
        if name == "Hangup":
            ch = self.channels.pop(uid, None)
            if ch is not None:
                self._dirty_reps.add(ch.extension)
            return
        ext = self._extension_of(first(msg.get("Channel")))
        if ext is None:
            return
        ch = self.channels.get(uid)
        state = int(first(msg.get("ChannelState")) or 0)
        conn_num = _known(first(msg.get("ConnectedLineNum")))
        conn_name = _known(first(msg.get("ConnectedLineName")))
        if ch is None:
            if name not in ("Newchannel", "Newstate", "CoreShowChannel"):
                return
            linkedid = first(msg.get("Linkedid")) or uid
            created = at
            if name == "CoreShowChannel":
                created = at - _hms(first(msg.get("Duration")))
            ch = self.channels[uid] = _Channel(
                uniqueid=uid,
                linkedid=linkedid,
                extension=ext,
                state=state,
                created=created,
                originator=linkedid == uid,
                dialed=_known(first(msg.get("Exten"))),
            )
            caller_name = _known(first(msg.get("CallerIDName")))
            if caller_name and first(msg.get("CallerIDNum")) == ext:
                self._rep(ext).name = self._rep(ext).name or caller_name
        if name == "Hold":
            ch.on_hold = True
        elif name == "Unhold":
            ch.on_hold = False
        if name in ("Newchannel", "Newstate", "CoreShowChannel", "NewConnectedLine"):
            if name != "NewConnectedLine":
                ch.state = state
            if conn_num:
                ch.other_number = conn_num
                ch.other_name = conn_name
        if ch.state == 6 and ch.answered_at is None:
            ch.answered_at = at
            if name == "CoreShowChannel":
                ch.answered_at = ch.created  # the listing does not say when; the best guess
        if self._listing.channels is not None and name == "CoreShowChannel":
            self._listing.channels.add(uid)
        self._dirty_reps.add(ext)

    def _on_channels_listed(self, msg: Message, at: float) -> None:
        listed, self._listing.channels = self._listing.channels, None
        if listed is None:
            return
        for uid in [u for u in self.channels if u not in listed]:
            self._dirty_reps.add(self.channels.pop(uid).extension)

    # queues
    def _queue(self, name: str) -> _Queue:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = _Queue(name)
            self._dirty_queues.add(name)
        return q

    def _on_member(self, msg: Message, at: float) -> None:
        name = first(msg.get("Event"))
        qname = first(msg.get("Queue"))
        iface = first(msg.get("Interface")) or first(msg.get("Location"))
        state_iface = first(msg.get("StateInterface")) or iface
        ext = self._extension_of(state_iface) or self._extension_of(iface)
        if not qname or not iface or ext is None:
            return
        q = self._queue(qname)
        self._dirty_queues.add(qname)
        self._dirty_reps.add(ext)
        if name == "QueueMemberRemoved":
            if q.members.pop(iface, None) is not None:
                self._change(at, "removed", ext, qname)
            return
        m = q.members.get(iface)
        if m is None:
            m = QueueMember(
                ext, iface, name=None, paused=False, paused_reason=None, status=0, in_call=False
            )
            if name == "QueueMemberAdded" or (name == "QueueMember" and self._listed_once):
                self._change(at, "added", ext, qname)
        new: dict[str, Any] = {
            "name": _known(first(msg.get("MemberName")) or first(msg.get("Name"))) or m.name
        }
        if "Status" in msg:
            new["status"] = _int(first(msg.get("Status")), m.status)
        if "InCall" in msg:
            new["in_call"] = first(msg.get("InCall")) == "1"
        if "CallsTaken" in msg:
            new["calls_taken"] = _int(first(msg.get("CallsTaken")), m.calls_taken)
        if "Paused" in msg:
            paused = first(msg.get("Paused")) == "1"
            reason = _known(first(msg.get("PausedReason")) or first(msg.get("Reason"))) or None
            if paused != m.paused:  # a member first seen paused counts as a pause now
                self._change(
                    at, "paused" if paused else "unpaused", ext, qname, reason if paused else None
                )
            new["paused"] = paused
            new["paused_reason"] = reason if paused else None
        q.members[iface] = replace(m, **new)
        if name == "QueueMember" and self._listing.queues is not None:
            members, _ = self._listing.queues.setdefault(qname, (set(), set()))
            members.add(iface)

    def _on_queue_params(self, msg: Message, at: float) -> None:
        qname = first(msg.get("Queue"))
        if not qname:
            return
        self._queue(qname)
        if self._listing.queues is not None:
            self._listing.queues.setdefault(qname, (set(), set()))

    def _on_caller(self, msg: Message, at: float) -> None:
        name = first(msg.get("Event"))
        qname = first(msg.get("Queue"))
        uid = first(msg.get("Uniqueid"))
        if not qname or not uid:
            return
        q = self._queue(qname)
        self._dirty_queues.add(qname)
        if name in ("QueueCallerLeave", "QueueCallerAbandon"):
            gone = q.waiting.pop(uid, None)
            if gone is not None:  # the ones behind move up
                for key, c in list(q.waiting.items()):
                    if c.position > gone.position:
                        q.waiting[key] = _moved(c, c.position - 1)
            return
        joined = at
        if name == "QueueEntry":
            joined = at - _int(first(msg.get("Wait")), 0)
            if self._listing.queues is not None:
                _, entries = self._listing.queues.setdefault(qname, (set(), set()))
                entries.add(uid)
        before = q.waiting.get(uid)
        q.waiting[uid] = QueueCaller(
            uniqueid=uid,
            number=_known(first(msg.get("CallerIDNum"))),
            name=_known(first(msg.get("CallerIDName"))),
            position=_int(first(msg.get("Position")), len(q.waiting) + 1),
            joined_at=before.joined_at if before is not None else joined,
        )

    def _on_agent(self, msg: Message, at: float) -> None:
        """AgentCalled/Connect: the member's channel belongs to a queue call."""
        qname = first(msg.get("Queue"))
        ch = self.channels.get(first(msg.get("DestUniqueid")))
        if ch is not None and qname:
            ch.queue = qname
            self._dirty_reps.add(ch.extension)

    def _on_queue_listed(self, msg: Message, at: float) -> None:
        listing, self._listing.queues = self._listing.queues, None
        if listing is None:
            return
        self._listed_once = True
        for qname, q in list(self.queues.items()):
            if qname not in listing:
                for m in q.members.values():
                    self._dirty_reps.add(m.extension)
                del self.queues[qname]
                self._dirty_queues.add(qname)
                continue
            members, entries = listing[qname]
            for iface in [i for i in q.members if i not in members]:
                m = q.members.pop(iface)
                self._change(at, "removed", m.extension, qname)
                self._dirty_reps.add(m.extension)
            for uid in [u for u in q.waiting if u not in entries]:
                del q.waiting[uid]
            self._dirty_queues.add(qname)

    # devices
    def _on_device(self, msg: Message, at: float) -> None:
        ext = self._extension_of(first(msg.get("Device")))
        if ext is None:
            return
        state = first(msg.get("State"))
        rep = self._rep(ext)
        if rep.device != state:
            rep.device = state
            self._dirty_reps.add(ext)
        self._set_registered(ext, state not in _OFFLINE_DEVICE, at)

    def _on_extension(self, msg: Message, at: float) -> None:
        ext = first(msg.get("Exten"))
        hint = first(msg.get("Hint"))
        if not self._is_ext(ext) or self._extension_of(hint) is None:
            return
        status = _int(first(msg.get("Status")), 0)
        if status == 4 or status == -1:
            self._set_registered(ext, False, at)
        elif status >= 0 and self.reps.get(ext, _Rep(ext)).registered is None:
            self._set_registered(ext, True, at)

    def _on_contact(self, msg: Message, at: float) -> None:
        ext = (
            first(msg.get("AOR"))
            or first(msg.get("Aor"))
            or first(msg.get("Endpoint"))
            or first(msg.get("EndpointName"))
        )
        if not self._is_ext(ext):
            return
        status = first(msg.get("ContactStatus")) or first(msg.get("Status"))
        if first(msg.get("Event")) == "ContactList":
            if self._listing.contacts is not None:
                self._listing.contacts.add(ext)
            self._set_registered(ext, status != "Unreachable", at)
        elif status in _ONLINE_CONTACT:
            self._set_registered(ext, True, at)
        elif status in _OFFLINE_CONTACT:
            self._set_registered(ext, False, at)

    def _on_contacts_listed(self, msg: Message, at: float) -> None:
        listed, self._listing.contacts = self._listing.contacts, None
        if listed is None:
            return
        for ext, rep in list(self.reps.items()):
            if ext not in listed and rep.registered:
                self._set_registered(ext, False, at)


def _known(value: str | None) -> str | None:
    return None if not value or value in ("<unknown>", "<Unknown>") else value


def _int(value: str | None, default: int) -> int:
    try:
        return int(value or "")
    except ValueError:
        return default


def _hms(text: str | None) -> float:
    try:
        h, m, s = (int(x) for x in (text or "").split(":"))
    except ValueError:
        return 0.0
    return float(h * 3600 + m * 60 + s)


def _moved(c: QueueCaller, position: int) -> QueueCaller:
    return QueueCaller(c.uniqueid, c.number, c.name, position, c.joined_at)


_HANDLERS: dict[str, Callable[[PresenceTracker, Message, float], None]] = {
    **dict.fromkeys(_ON_CHANNEL, PresenceTracker._on_channel),
    "CoreShowChannelsComplete": PresenceTracker._on_channels_listed,
    **dict.fromkeys(_ON_MEMBER, PresenceTracker._on_member),
    "QueueParams": PresenceTracker._on_queue_params,
    **dict.fromkeys(_ON_CALLER, PresenceTracker._on_caller),
    **{n: PresenceTracker._on_agent for n in ("AgentCalled", "AgentConnect")},
    "QueueStatusComplete": PresenceTracker._on_queue_listed,
    "DeviceStateChange": PresenceTracker._on_device,
    "ExtensionStatus": PresenceTracker._on_extension,
    "ContactStatus": PresenceTracker._on_contact,
    "ContactList": PresenceTracker._on_contact,
    "ContactListComplete": PresenceTracker._on_contacts_listed,
}
