"""Mutable state the tracker keeps per channel and per call while a call is live."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..facts import Transfer

TRUNK = "trunk"
EXTENSION = "extension"
LOCAL = "local"
OTHER = "other"


def split_channel_name(name: str) -> tuple[str, str, str]:
    """``PJSIP/101-0000002a`` -> (``PJSIP``, ``101``, ``PJSIP/101``).

    For Local channels the last part is the pair's shared base (``Local/x@ctx-0000001a``),
    which is how the two halves ``;1`` and ``;2`` find each other.
    """
    tech, _, rest = name.partition("/")
    if tech == "Local":
        base = name[:-2] if name[-2:] in (";1", ";2") else name
        return tech, rest.split("@", 1)[0], base
    resource = rest.rsplit("-", 1)[0] if "-" in rest else rest
    return tech, resource, f"{tech}/{resource}"


def uniqueid_order(uid: str) -> tuple[float, str]:
    """Creation order of a uniqueid (``<epoch>.<seq>``, optionally ``<system>-`` first)."""
    tail = uid.rsplit("-", 1)[-1]
    try:
        epoch, _, seq = tail.partition(".")
        return (float(epoch) * 1e7 + float(seq or 0), uid)
    except ValueError:
        return (float("inf"), uid)


@dataclass(slots=True, eq=False)
class Channel:
    uniqueid: str
    name: str
    linkedid: str
    tech: str
    resource: str
    base: str
    kind: str
    created_at: float
    seen_from_start: bool
    first_cid_num: str = ""
    first_cid_name: str = ""
    cid_num: str = ""
    cid_name: str = ""
    first_exten: str = ""
    context: str = ""
    state: str = ""
    extension: str | None = None
    partner: str | None = None  # the other half of a Local pair
    bridge: str | None = None
    ringing_at: float | None = None
    up_at: float | None = None
    hangup_request_at: float | None = None
    hungup_at: float | None = None
    cause: int | None = None
    dialed: bool = False  # a DialBegin named it as destination
    originated: bool = False  # dialled by an Originate (DialBegin without a source)
    dial_source: str | None = None
    dial_begin_at: float | None = None
    dial_end_at: float | None = None
    dial_status: str | None = None
    dial_string: str = ""
    dialled_number: str = ""
    on_hold: bool = False  # hearing music on hold (MusicOnHoldStart .. Stop)

    @property
    def alive(self) -> bool:
        return self.hungup_at is None

    @property
    def is_local(self) -> bool:
        return self.kind == LOCAL


@dataclass(slots=True, eq=False)
class Call:
    linkedid: str
    started_at: float
    channels: dict[str, Channel] = field(default_factory=dict)
    alive: int = 0
    last_event_at: float = 0.0
    complete: bool = True
    # who is who
    a_party: str | None = None  # the uniqueid standing for the caller
    anchor: str | None = None  # the party the conversation follows through transfers
    anchor_is_caller: bool = True
    anchor_peer: str | None = None  # the last real party the anchor talked with
    # progress
    first_dial_at: float | None = None
    originate_dial_at: float | None = None
    dial_log: list[tuple[str, str | None]] = field(default_factory=list)  # (dest, number)
    answered_at: float | None = None
    answered_uid: str | None = None
    answered_label: str | None = None
    agents: list[str] = field(default_factory=list)  # extension labels, in order connected
    connected_since: float | None = None
    talk: float = 0.0
    talk_end: float | None = None
    held_since: float | None = None  # the anchor is on hold while connected: not talk
    ringing: set[str] = field(default_factory=set)  # uniqueids ringing now
    # the rep the caller is with now (who answered, then whom a transfer handed it to);
    # None while a transfer rings its target or once the call went out of the PBX
    agent: str | None = None
    handed_on: set[str] = field(default_factory=set)  # uniqueids that transferred it away
    hangup_by: str | None = None
    caller_hangup_at: float | None = None
    caller_hangup_while_ringing: bool = False
    transfers: list[Transfer] = field(default_factory=list)
    recordings: list[str] = field(default_factory=list)
    originate_id: str | None = None
    originate_reason: int | None = None
    originate_exten: str | None = None
    originate_failed: bool = False
    queue: str | None = None
    queue_abandoned: bool = False
    done_at: float | None = None
    progress_key: tuple[object, ...] | None = None

    def add_recording(self, value: str) -> None:
        for part in value.split(";"):
            name = part.strip().rsplit("/", 1)[-1]
            if name and "." in name and name not in self.recordings:
                self.recordings.append(name)
