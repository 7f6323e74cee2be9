"""The CRM's domain objects: plain dataclasses that the store reads and writes.

They carry no behaviour that needs I/O, so services, the web layer and tests can build
them freely; the store is the only place that knows how they map to tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Generic, Literal, TypeVar

from ami_bridge.facts import CallRecord, Direction, Outcome

Role = Literal["rep", "manager", "admin"]
LeadStatus = Literal["new", "contacted", "qualified", "converted", "junk"]
LeadSource = Literal["inbound_call", "missed_call", "outbound_call", "manual", "import"]
CallbackStatus = Literal["open", "closed"]
CallbackKind = Literal["missed", "follow_up"]
T = TypeVar("T")
MatchReason = str
"""How a call found its contact: ``unique``, ``most_recent_of_N`` (N contacts share the
number), ``new_lead`` (the call created the lead), ``kept`` (an update of a call that was
already linked), ``none`` (an outside number nobody has), ``internal``, ``withheld``,
``own_number`` (the PBX's own DID or an extension), ``erased``."""

ROLES: tuple[Role, ...] = ("rep", "manager", "admin")
LEAD_STATUSES: tuple[LeadStatus, ...] = ("new", "contacted", "qualified", "converted", "junk")
LEAD_SOURCES: tuple[LeadSource, ...] = (
    "inbound_call",
    "missed_call",
    "outbound_call",
    "manual",
    "import",
)
MISSED_OUTCOMES: frozenset[str] = frozenset({"missed", "abandoned", "busy", "no_answer"})
"""Inbound outcomes that leave a caller waiting for a callback."""


@dataclass(slots=True)
class Team:
    """Groundwork for per-team figures; users may belong to one."""

    id: int | None
    name: str


@dataclass(slots=True)
class PbxLink:
    """One PBX (an office, a tenant) the CRM listens to; its calls carry its id, and it
    serves one team (``team_id``), whose managers see its calls."""

    id: int | None
    name: str
    team_id: int | None = None


@dataclass(slots=True)
class LiveCallRow:
    """The last known state of a call in progress on a link (``crm.recovery``).  Shaped
    like ``crm.ingest.LiveSnapshot`` on purpose: that is what is written, this what the
    store reads back (with the time it was written)."""

    linkedid: str
    pbx_link_id: int | None
    snapshot: dict[str, Any]
    updated_at: float


# Alike in shape to CallFilter and tracker.model.Channel: plain records, a field a line.
@dataclass(slots=True)
class BackfillState:
    """A link's CDR backfill bookkeeping (``crm.backfill``): when the link was last known
    alive (the next backfill starts there), where reading Master.csv stopped, and what
    the last backfill did, for the admin page."""

    link: str
    alive_at: float | None = None
    file_id: str | None = None
    """``device:inode`` of the Master.csv read last, so a rotated file is noticed."""
    file_offset: int | None = None
    last_run_at: float | None = None
    last_window_start: float | None = None
    last_window_end: float | None = None
    last_count: int = 0
    total_count: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class User:
    id: int | None
    username: str
    display_name: str
    role: Role = "rep"
    extensions: list[str] = field(default_factory=list)
    password_hash: str = ""
    active: bool = True
    team_id: int | None = None
    language: str | None = None
    """The user's own language ("ru", "ja", "zh_Hans"...); None: not chosen."""
    timezone: str | None = None
    """The user's own IANA time zone; None: the install's."""


@dataclass(slots=True)
class PhoneNumber:
    """A number as typed (``raw``) and as matched (``e164``); ``e164`` is None when the
    input could not be read as a dialable number but the user still wanted it kept."""

    raw: str
    e164: str | None
    label: str = ""


@dataclass(slots=True)
class Lead:
    """The lead state of a contact: present while the contact came from a call or a
    campaign and has not been turned into a customer yet (then ``converted``)."""

    status: LeadStatus = "new"
    source: LeadSource = "manual"
    created_at: float = 0.0


@dataclass(slots=True)
class Contact:
    id: int | None
    name: str
    company: str = ""
    email: str = ""
    owner_id: int | None = None
    tags: list[str] = field(default_factory=list)
    custom: dict[str, Any] = field(default_factory=dict)
    phones: list[PhoneNumber] = field(default_factory=list)
    lead: Lead | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    last_contact_at: float | None = None
    erased: bool = False


@dataclass(frozen=True, slots=True)
class Call(CallRecord):
    """One finished call as the CRM keeps it: the bridge's facts (every ``CallRecord``
    field, so a new fact is declared once, there) plus what the CRM worked out (the
    remote party's E.164, contact, rep, why that contact).  Frozen like the record: the
    store hands back a copy with its ids (``dataclasses.replace``)."""

    id: int | None = None
    remote_e164: str | None = None
    contact_id: int | None = None
    user_id: int | None = None
    match_reason: MatchReason = "none"
    recording_ids: list[int] = field(default_factory=list)
    pbx_link_id: int | None = None

    @classmethod
    def from_record(cls, rec: CallRecord, **extra: Any) -> Call:
        return cls(**{name: getattr(rec, name) for name in _RECORD_FIELDS}, **extra)


_RECORD_FIELDS = tuple(f.name for f in fields(CallRecord))


@dataclass(slots=True)
class Note:
    id: int | None
    call_id: int
    author_id: int | None
    topic: str = ""
    result: str = ""
    comment: str = ""
    created_at: float = 0.0
    updated_at: float | None = None
    updated_by: int | None = None


@dataclass(slots=True)
class CallbackTask:
    """A promise to ring someone back; one open task per number however often they tried."""

    id: int | None
    number_e164: str | None
    contact_id: int | None
    owner_id: int | None
    opened_at: float
    due_at: float
    closed_at: float | None = None
    closed_by_user_id: int | None = None
    closed_by_call: int | None = None
    time_to_callback: float | None = None
    missed_count: int = 1
    status: CallbackStatus = "open"
    attempts: int = 0
    """Callback attempts logged by reps (``CallbackAttempt``), counted apart from misses."""
    snoozed_until: float | None = None
    close_reason: str = ""
    claimed_at: float | None = None
    overdue_at: float | None = None
    """When the overdue signal (live and ``callback.overdue``) went out; None: not yet."""
    kind: CallbackKind = "missed"
    rung_user_ids: tuple[int, ...] = ()
    """Users whose extensions the task's calls rang: an unowned task is theirs to see
    (``crm.access.can_see_callback``).  Read from ``call_rang``, never stored here."""


ATTEMPT_RESULTS: tuple[str, ...] = ("no_answer", "left_message", "reached", "wrong_number")
"""What a callback attempt came to (``callback_attempts.result``)."""


@dataclass(slots=True)
class CallbackAttempt:
    """One try at ringing a callback task's number, logged by a rep."""

    id: int | None
    task_id: int
    user_id: int | None
    at: float
    result: str
    comment: str = ""


@dataclass(slots=True)
class AuditEntry:
    id: int | None
    at: float
    actor: str
    action: str
    target: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


# Alike in shape to BackfillState on purpose: optional typed fields, one a line.
@dataclass(slots=True)
class CallFilter:
    """What the calls list can be narrowed by; every field is optional."""

    since: float | None = None
    until: float | None = None
    direction: Direction | None = None
    outcome: Outcome | None = None
    user_id: int | None = None
    number_e164: str | None = None
    contact_id: int | None = None
    number_digits: str | None = None
    """Any part of the remote number: digits found inside its E.164 form
    (``crm.phones.number_fragment`` reads them from what was typed)."""


@dataclass(slots=True)
class MissedCallRow:
    """One line of the managers' missed-calls audit: who was rung, who called back, how fast."""

    call: Call
    task_id: int | None
    task_status: CallbackStatus | None
    owner_id: int | None
    closed_by_user_id: int | None
    closed_at: float | None
    time_to_callback: float | None


@dataclass(slots=True)
class Page(Generic[T]):
    """A keyset page: ``next_cursor`` is opaque to callers and None on the last page."""

    items: list[T]
    next_cursor: str | None


RecordingStatus = Literal["pending", "ready", "missing", "corrupt", "deleted"]
RECORDING_STATUSES: tuple[RecordingStatus, ...] = (
    "pending",
    "ready",
    "missing",
    "corrupt",
    "deleted",
)


# Alike in shape to ami_bridge's OriginateRequest: both plain records, not one thing.
@dataclass(slots=True)
class RecordingRow:
    """One file a call's MixMonitor wrote, as the recordings module tracks it: ``path`` is
    the name the tracker reported, ``media_path`` the transcoded file once ``ready``."""

    id: int
    call_id: int
    path: str
    status: RecordingStatus = "pending"
    duration_seconds: float | None = None
    media_path: str | None = None
    size_bytes: int | None = None
    error: str | None = None
    checked_at: float | None = None
    created_at: float = 0.0


@dataclass(slots=True)
class ApiToken:
    """An integration's credential as listed to its owner; the secret itself is never
    stored, only its SHA-256."""

    id: int
    user_id: int
    name: str
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None
    expires_at: float | None = None
    """None: until revoked."""
    scope: str = "full"
    """``full`` (whatever the user may do) or ``read`` (GET and HEAD only)."""

    def live(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(slots=True)
class WebSession:
    """One login of a browser, kept in the store so a logout holds in every web process.
    ``id`` is the SHA-256 of the random id in the cookie, never the id itself."""

    id: str
    user_id: int
    created_at: float
    last_seen_at: float
    ended_at: float | None = None
    address: str = ""
    user_agent: str = ""


TimelineKind = Literal["call", "note", "callback", "lead"]


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One entry of a contact's history page; ``item`` is the Call, Note or CallbackTask,
    or the AuditEntry of a lead status change (``lead.status``, ``lead.converted``)."""

    kind: TimelineKind
    at: float
    item: Call | Note | CallbackTask | AuditEntry


@dataclass(frozen=True, slots=True)
class MissedByRep:
    """A rep's side of the missed-calls story: missed inbound calls that rang their phone,
    inbound calls they answered, callbacks they made and how fast on average."""

    user_id: int
    name: str
    rung_missed: int
    answered: int
    callbacks_closed: int
    avg_time_to_callback: float | None


@dataclass(frozen=True, slots=True)
class MissedByLine:
    """Inbound figures of one line (the DID the caller dialled)."""

    did: str | None
    inbound: int
    missed: int
    missed_rate: float


@dataclass(frozen=True, slots=True)
class MissedSummary:
    """The managers' headline figures for a period.  ``missed`` counts inbound calls that
    ended missed, abandoned, busy or unanswered; time to callback and the SLA share are
    over the callback tasks those calls opened or joined."""

    since: float
    until: float
    total_inbound: int
    missed: int
    missed_rate: float
    callbacks: int
    """Distinct callback tasks behind the missed calls."""
    returned: int
    """Of those, closed by a later answered call."""
    median_time_to_callback: float | None
    returned_within_sla: float | None
    """Share (0..1) of the tasks closed within the SLA; None when there were none."""
    by_rep: list[MissedByRep] = field(default_factory=list)
    by_line: list[MissedByLine] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class QueueCallGroup:
    """Queue calls of one queue and slot (a day, or an hour of the day) that share an
    outcome (answered or not) and a wait class, as the store groups them for
    ``crm.queue_stats``: every wait in the group is at most ``wait_limit`` (None: above
    every limit asked for) and above the next lower limit asked for."""

    queue: str
    slot: int
    """Day number since the epoch, or hour of the day 0-23, in the report's time zone."""
    answered: bool
    wait_limit: float | None
    calls: int
    wait_sum: float
    wait_max: float
    talk_sum: float


@dataclass(frozen=True, slots=True)
class QueueRepGroup:
    """A rep's queue calls in one queue: answered (and their talk), rang not answered."""

    user_id: int
    queue: str
    answered: int
    talk_seconds: float
    rona: int


@dataclass(frozen=True, slots=True)
class AgentEventRow:
    """One stored agent event (``agent_events``) with the user its extension maps to now."""

    ts: float
    kind: str
    extension: str
    queue: str | None
    reason: str | None
    user_id: int | None


@dataclass(frozen=True, slots=True)
class RepFigures:
    """Per-rep report row: calls the rep ended up with (answered), missed inbound calls
    that rang them, and their talk time."""

    user_id: int
    name: str
    answered: int
    missed: int
    talk_seconds: float


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """A stored change of a rep's queue presence (table ``agent_events``): paused /
    unpaused (with the reason), added to / removed from a queue, phone registered /
    unregistered (``queue`` None).  The queue figures read pause time from these."""

    ts: float
    kind: str
    extension: str
    queue: str | None
    reason: str | None
    pbx_link_id: int | None


@dataclass(frozen=True, slots=True)
class LeadStatRow:
    """Leads created in a period with one source and one owner (None: unassigned): how
    many, how many became customers, and the time those took (where it is known)."""

    source: LeadSource
    owner_id: int | None
    leads: int
    converted: int
    conversion_seconds: float
    """Sum of (converted at - created at) over the ``timed`` conversions."""
    timed: int
    """Conversions with a known time (conversions before migration 0014 have none)."""


@dataclass(frozen=True, slots=True)
class HandoverShare:
    """What one receiving rep gets from a handover."""

    user_id: int
    contacts: int
    """Contacts that are not open leads (customers, converted or junk leads)."""
    leads: int
    """Open leads (new, contacted, qualified)."""
    callbacks: int
    """Open callback tasks."""


@dataclass(frozen=True, slots=True)
class HandoverPlan:
    """A leaving rep's contacts, open leads and open callbacks, and who gets which: the
    preview a manager confirms, and what the handover then moves."""

    from_user_id: int
    to_user_ids: tuple[int, ...]
    shares: tuple[HandoverShare, ...]
    sample: tuple[Contact, ...] = ()
    """A few of the contacts that move, for the preview."""

    @property
    def contacts(self) -> int:
        return sum(s.contacts for s in self.shares)

    @property
    def leads(self) -> int:
        return sum(s.leads for s in self.shares)

    @property
    def callbacks(self) -> int:
        return sum(s.callbacks for s in self.shares)
