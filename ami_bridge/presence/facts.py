"""The presence facts handed to the CRM: plain, frozen snapshots.

A ``PresenceChange`` carries the whole new view of one rep or one queue (never a delta),
so a board that missed a message is right again at the next one, and a view can be sent
to a browser as it is.  An ``AgentChange`` is one of the few changes worth storing
(paused, unpaused, added, removed, registered, unregistered): the queue figures read pause
time and membership from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RepState = Literal["offline", "available", "ringing", "on_call", "on_hold", "paused"]
CallDirection = Literal["inbound", "outbound", "internal"]
AgentKind = Literal["paused", "unpaused", "added", "removed", "registered", "unregistered"]

__all__ = [
    "AgentChange",
    "PresenceChange",
    "QueueCaller",
    "QueueMember",
    "QueueView",
    "RepCall",
    "RepView",
]
"""What ``ami_bridge.presence`` hands on (the literal types stay here, for type hints)."""


@dataclass(frozen=True, slots=True)
class RepCall:
    """The call a rep's phone is on (the first, if several)."""

    direction: CallDirection
    other_number: str | None
    other_name: str | None
    answered: bool
    ringing: bool
    """The rep's phone rings (an offered call, or a click-to-call's first leg)."""
    on_hold: bool
    since: float
    """When it started ringing, then when it was answered: the board's ticking duration."""
    linkedid: str
    queue: str | None = None


# Alike in shape to the other views here (and the tracker's _Channel): frozen records.
@dataclass(frozen=True, slots=True)
class RepView:
    extension: str
    state: RepState
    since: float
    """When ``state`` began (a board shows "paused for 12 min")."""
    registered: bool | None
    """None: the PBX has not said yet."""
    name: str | None = None
    paused_reason: str | None = None
    paused_queues: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    call: RepCall | None = None


@dataclass(frozen=True, slots=True)
class QueueMember:
    extension: str
    interface: str
    name: str | None
    paused: bool
    paused_reason: str | None
    status: int
    """Asterisk's member status: 1 free, 2 in use, 3 busy, 5 unavailable, 6 ringing, 8 on hold."""
    in_call: bool
    calls_taken: int = 0


@dataclass(frozen=True, slots=True)
class QueueCaller:
    uniqueid: str
    number: str | None
    name: str | None
    position: int
    joined_at: float


@dataclass(frozen=True, slots=True)
class QueueView:
    queue: str
    members: tuple[QueueMember, ...]
    waiting: tuple[QueueCaller, ...]
    """In queue order (position 1 first)."""
    exists: bool = True
    """False: the PBX no longer lists the queue (a board drops it)."""


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """One rep's or one queue's new view (exactly one of the two is set)."""

    at: float
    rep: RepView | None = None
    queue: QueueView | None = None
    received_at: float | None = None
    """Wall time the live link read the event behind it (for the board latency figure)."""


@dataclass(frozen=True, slots=True)
class AgentChange:
    """A change worth storing (``crm.models.AgentEvent``); ``queue`` None: the device."""

    ts: float
    kind: AgentKind
    extension: str
    queue: str | None = None
    reason: str | None = None
