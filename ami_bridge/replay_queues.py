"""What the replay PBX knows about queues, devices and registrations, to answer the
presence resync (``QueueStatus``, ``DeviceStateList``, ``ExtensionStateList``,
``PJSIPShowContacts``) and the board's actions (``QueuePause``, ``QueueAdd``,
``QueueRemove``) the way Asterisk 22 does (replies and refusals as recorded in
tests/fixtures/asterisk-22/presence).

The book starts from the whole timeline (the members a capture's events name are the
PBX's configured, static members; every handset named is registered and idle), then
follows the played events like Asterisk's own state.  An action that changes a member is
answered, then its event is played to every client, as Asterisk does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .protocol import Message, first

Send = Callable[[dict[str, object]], None]
Play = Callable[[dict[str, object]], None]

LIST_REPLIES = frozenset(
    {
        "QueueParams",
        "QueueMember",
        "QueueEntry",
        "QueueStatusComplete",
        "DeviceStateListComplete",
        "ExtensionStateListComplete",
        "ContactList",
        "ContactListComplete",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
    }
)
"""Events that only ever answer one client's list action: never part of a timeline."""

_DEVICE_RE = re.compile(r"^PJSIP/([^-/]+)$")
_EXTENSION_STATUS: dict[str, tuple[int, str]] = {
    "NOT_INUSE": (0, "Idle"),
    "INUSE": (1, "InUse"),
    "BUSY": (2, "Busy"),
    "UNAVAILABLE": (4, "Unavailable"),
    "RINGING": (8, "Ringing"),
    "ONHOLD": (16, "Hold"),
}
"""A device state as ``ExtensionStatus`` words it: Asterisk's extension-state bit (a
number: the flags combine, 9 is in use and ringing) and its ``StatusText``."""
_MEMBER_EVENTS = ("QueueMemberStatus", "QueueMemberPause", "QueueMemberAdded", "QueueCallerJoin")


def is_list_reply(msg: Message) -> bool:
    """A recorded answer to the recording client's own action (a resync listing)."""
    name = first(msg.get("Event"))
    return "ActionID" in msg and (
        name in LIST_REPLIES or name in ("DeviceStateChange", "ExtensionStatus")
    )


@dataclass
class _Member:
    fields: dict[str, str]
    dynamic: bool = False


@dataclass
class QueueBook:
    queues: dict[str, dict[str, _Member]] = field(default_factory=dict)
    entries: dict[str, dict[str, tuple[dict[str, str], float]]] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)
    hints: dict[str, str] = field(default_factory=dict)
    contacts: set[str] = field(default_factory=set)

    # -- state from the timeline ---------------------------------------------------------
    def seed(self, events: Iterable[tuple[Message, float]]) -> None:
        """The configuration a timeline implies: its members (static, free, unpaused) and
        its handsets (registered, idle)."""
        for msg, _ in events:
            name = first(msg.get("Event"))
            if name in _MEMBER_EVENTS or name == "QueueMember":
                queue = first(msg.get("Queue"))
                iface = first(msg.get("Interface")) or first(msg.get("Location"))
                if queue and iface and name != "QueueCallerJoin":
                    members = self.queues.setdefault(queue, {})
                    if iface not in members:
                        members[iface] = _Member(_member_fields(msg, queue, iface))
                elif queue:
                    self.queues.setdefault(queue, {})
            device = first(msg.get("Device")) or first(msg.get("Hint"))
            found = _DEVICE_RE.match(device)
            if found:
                self.devices.setdefault(device, "NOT_INUSE")
                self.contacts.add(found.group(1))
                self.hints.setdefault(found.group(1), device)
        for ext in list(self.hints):
            self.hints[ext] = f"PJSIP/{ext}"

    def apply(self, msg: Message, at: float) -> None:
        name = first(msg.get("Event"))
        queue = first(msg.get("Queue"))
        if name in ("QueueMemberStatus", "QueueMemberPause", "QueueMemberAdded"):
            iface = first(msg.get("Interface"))
            members = self.queues.setdefault(queue, {})
            member = members.get(iface)
            if member is None:
                member = members[iface] = _Member(
                    _member_fields(msg, queue, iface), dynamic=name == "QueueMemberAdded"
                )
            for key in ("Status", "Paused", "PausedReason", "InCall", "CallsTaken", "LastCall"):
                if key in msg:
                    member.fields[key] = first(msg.get(key))
        elif name == "QueueMemberRemoved":
            self.queues.get(queue, {}).pop(first(msg.get("Interface")), None)
        elif name == "QueueCallerJoin":
            uid = first(msg.get("Uniqueid"))
            entry = {
                k: first(msg.get(k))
                for k in (
                    "Channel",
                    "Uniqueid",
                    "CallerIDNum",
                    "CallerIDName",
                    "ConnectedLineNum",
                    "ConnectedLineName",
                    "Position",
                )
            }
            self.entries.setdefault(queue, {})[uid] = (entry, at)
        elif name in ("QueueCallerLeave", "QueueCallerAbandon"):
            waiting = self.entries.get(queue, {})
            gone = waiting.pop(first(msg.get("Uniqueid")), None)
            if gone is not None:
                pos = int(gone[0].get("Position") or 0)
                for e, _ in waiting.values():
                    if int(e.get("Position") or 0) > pos:
                        e["Position"] = str(int(e["Position"]) - 1)
        elif name == "DeviceStateChange":
            device = first(msg.get("Device"))
            found = _DEVICE_RE.match(device)
            if found:
                state = first(msg.get("State"))
                self.devices[device] = state
                self.hints.setdefault(found.group(1), device)
                if state in ("UNAVAILABLE", "INVALID"):
                    self.contacts.discard(found.group(1))
                else:
                    self.contacts.add(found.group(1))
        elif name == "ContactStatus":
            aor = first(msg.get("AOR"))
            status = first(msg.get("ContactStatus"))
            if status in ("Removed", "Unreachable"):
                self.contacts.discard(aor)
            elif status in ("Created", "Reachable", "Updated"):
                self.contacts.add(aor)

    # -- list actions --------------------------------------------------------------------
    def queue_status(self, send: Send, reply: dict[str, str], now: float) -> None:
        _list_start(send, reply, "Queue status will follow")
        n = 0
        for queue, members in sorted(self.queues.items()):
            waiting = self.entries.get(queue, {})
            send(
                {
                    "Event": "QueueParams",
                    "Queue": queue,
                    "Max": "0",
                    "Strategy": "linear",
                    "Calls": str(len(waiting)),
                    **reply,
                }
            )
            n += 1
            for iface, m in sorted(members.items()):
                f = m.fields
                send(
                    {
                        "Event": "QueueMember",
                        "Queue": queue,
                        "Name": f.get("MemberName", iface),
                        "Location": iface,
                        "StateInterface": f.get("StateInterface", iface),
                        "Membership": "dynamic" if m.dynamic else "static",
                        "Penalty": "0",
                        "CallsTaken": f.get("CallsTaken", "0"),
                        "InCall": f.get("InCall", "0"),
                        "Status": f.get("Status", "1"),
                        "Paused": f.get("Paused", "0"),
                        "PausedReason": f.get("PausedReason", ""),
                        **reply,
                    }
                )
                n += 1
            for e, joined in sorted(waiting.values(), key=lambda x: int(x[0]["Position"] or 0)):
                send(
                    {
                        "Event": "QueueEntry",
                        "Queue": queue,
                        **e,
                        "Wait": str(max(0, int(now - joined))),
                        **reply,
                    }
                )
                n += 1
        _list_end(send, reply, "QueueStatusComplete", n)

    def device_state_list(self, send: Send, reply: dict[str, str]) -> None:
        _list_start(send, reply, "Device State Changes will follow")
        for device, state in sorted(self.devices.items()):
            send({"Event": "DeviceStateChange", **reply, "Device": device, "State": state})
        _list_end(send, reply, "DeviceStateListComplete", len(self.devices))

    def extension_state_list(self, send: Send, reply: dict[str, str]) -> None:
        _list_start(send, reply, "Extension Statuses will follow")
        for ext, hint in sorted(self.hints.items()):
            code, text = _EXTENSION_STATUS.get(self.devices.get(hint, "NOT_INUSE"), (0, "Idle"))
            send(
                {
                    "Event": "ExtensionStatus",
                    **reply,
                    "Exten": ext,
                    "Context": "ext-hints",
                    "Hint": hint,
                    "Status": str(code),
                    "StatusText": text,
                }
            )
        _list_end(send, reply, "ExtensionStateListComplete", len(self.hints))

    def show_contacts(self, send: Send, reply: dict[str, str]) -> None:
        _list_start(send, reply, "A listing of Contacts follows, presented as ContactList events")
        for aor in sorted(self.contacts):
            send(
                {
                    "Event": "ContactList",
                    **reply,
                    "ObjectType": "contact",
                    "ObjectName": f"{aor};@replay",
                    "Aor": aor,
                    "Endpoint": aor,
                    "Status": "Reachable",
                }
            )
        _list_end(send, reply, "ContactListComplete", len(self.contacts))

    # -- changing actions (answer, then play the event) ----------------------------------
    def queue_pause(self, msg: Message, send: Send, play: Play, reply: dict[str, str]) -> None:
        iface = first(msg.get("Interface"))
        queue = first(msg.get("Queue"))
        paused = first(msg.get("Paused")).strip().lower() in ("true", "yes", "1", "on")
        reason = first(msg.get("Reason")) if paused else ""
        targets = [
            q
            for q, members in sorted(self.queues.items())
            if iface in members and (not queue or q == queue)
        ]
        if not iface or not targets:
            send({"Response": "Error", **reply, "Message": "Interface not found"})
            return
        word = "paused" if paused else "unpaused"
        send({"Response": "Success", **reply, "Message": f"Interface {word} successfully"})
        for q in targets:
            f = self.queues[q][iface].fields
            play(
                {
                    "Event": "QueueMemberPause",
                    "Privilege": "agent,all",
                    "Queue": q,
                    "MemberName": f.get("MemberName", iface),
                    "Interface": iface,
                    "StateInterface": f.get("StateInterface", iface),
                    "Status": f.get("Status", "1"),
                    "InCall": f.get("InCall", "0"),
                    "Paused": "1" if paused else "0",
                    "PausedReason": reason,
                }
            )

    def queue_add(self, msg: Message, send: Send, play: Play, reply: dict[str, str]) -> None:
        queue = first(msg.get("Queue"))
        iface = first(msg.get("Interface"))
        if queue not in self.queues:
            send(
                {
                    "Response": "Error",
                    **reply,
                    "Message": "Unable to add interface to queue: No such queue",
                }
            )
            return
        if iface in self.queues[queue]:
            send(
                {"Response": "Error", **reply, "Message": "Unable to add interface: Already there"}
            )
            return
        send({"Response": "Success", **reply, "Message": "Added interface to queue"})
        name = first(msg.get("MemberName")) or iface
        state_iface = first(msg.get("StateInterface")) or iface
        play(
            {
                "Event": "QueueMemberAdded",
                "Privilege": "agent,all",
                "Queue": queue,
                "MemberName": name,
                "Interface": iface,
                "StateInterface": state_iface,
                "Membership": "dynamic",
                "Status": "1",
                "Paused": "0",
                "PausedReason": "",
                "InCall": "0",
            }
        )

    def queue_remove(self, msg: Message, send: Send, play: Play, reply: dict[str, str]) -> None:
        queue = first(msg.get("Queue"))
        iface = first(msg.get("Interface"))
        member = self.queues.get(queue, {}).get(iface)
        if member is None:
            send({"Response": "Error", **reply, "Message": "Unable to remove interface: Not there"})
            return
        if not member.dynamic:
            send({"Response": "Error", **reply, "Message": "Member not dynamic"})
            return
        send({"Response": "Success", **reply, "Message": "Removed interface from queue"})
        play(
            {
                "Event": "QueueMemberRemoved",
                "Privilege": "agent,all",
                "Queue": queue,
                "MemberName": member.fields.get("MemberName", iface),
                "Interface": iface,
                "StateInterface": member.fields.get("StateInterface", iface),
            }
        )


def _list_start(send: Send, reply: dict[str, str], message: str) -> None:
    """The reply that opens a list action's answer (its events follow)."""
    send({"Response": "Success", **reply, "EventList": "start", "Message": message})


def _list_end(send: Send, reply: dict[str, str], event: str, items: int) -> None:
    """The event that closes a list action's answer, counting what was sent."""
    send({"Event": event, **reply, "EventList": "Complete", "ListItems": str(items)})


def _member_fields(msg: Message, queue: str, iface: str) -> dict[str, str]:
    return {
        "Queue": queue,
        "MemberName": first(msg.get("MemberName")) or first(msg.get("Name")) or iface,
        "StateInterface": first(msg.get("StateInterface")) or iface,
        "Status": "1",
        "Paused": "0",
        "PausedReason": "",
        "InCall": "0",
    }
