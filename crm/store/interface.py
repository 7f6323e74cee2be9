"""The one store interface the CRM is written against.

Both engines (SQLite, PostgreSQL) implement exactly this; services never see SQL or a
connection.  ``transaction()`` yields a Store bound to one database transaction, so a
service can make several calls atomic (ingest, merge, reassignment, CSV import) without
knowing which engine it talks to.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from ..models import (
    AgentEvent,
    AgentEventRow,
    ApiToken,
    AuditEntry,
    BackfillState,
    Call,
    CallbackAttempt,
    CallbackStatus,
    CallbackTask,
    CallFilter,
    Contact,
    HandoverShare,
    LeadStatRow,
    LiveCallRow,
    MissedCallRow,
    MissedSummary,
    Note,
    PbxLink,
    QueueCallGroup,
    QueueRepGroup,
    RecordingRow,
    RecordingStatus,
    RepFigures,
    Team,
    User,
    WebSession,
)

UserIds = Sequence[int] | None
"""A visibility filter (``Scope.ids()``): None means no restriction."""

CallCursor = tuple[float, int]
"""(started_at, id) of the last call on the previous page, newest first."""


class AnyLink(enum.Enum):
    """A linkedid lookup that does not care which PBX link wrote the call."""

    ANY = "any"


ANY_LINK = AnyLink.ANY


T = TypeVar("T")


class Store(ABC):
    dialect: str
    """``sqlite`` or ``postgres``."""

    # -- lifecycle -------------------------------------------------------------------
    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Store]:
        """All calls on the yielded store commit together or not at all.  Nested use
        joins the outer transaction."""

    @abstractmethod
    async def in_transaction(
        self, work: Callable[[Store], Awaitable[T]], *, read_only: bool = False
    ) -> T:
        """``work`` on a store bound to one transaction (committed if it returns, rolled
        back if it raises).  ``work`` must await nothing but that store: SQLite runs it
        whole in the database's own thread (one thread hop instead of one per statement,
        ``crm.store.sqlite``), and refuses work that waits for anything else.
        ``read_only``: work that only reads (SQLite: a deferred transaction, no write
        lock; PostgreSQL: one connection, no BEGIN/COMMIT round trips)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def schema_version(self) -> int: ...

    @abstractmethod
    async def rebuild_figures(self, zone: str | None = None) -> tuple[int, int]:
        """Recount the figures the reports read (kept by every write) from the calls, in
        the days of ``zone`` (default: the zone they are in), in one transaction; the
        numbers of (day, hour) figure rows written."""

    @abstractmethod
    async def lock_number(self, e164: str) -> None:
        """Serialise work on one phone number until the transaction ends, so two
        processes ingesting calls from one unknown caller make one lead, one task."""

    # -- teams and users -------------------------------------------------------------
    @abstractmethod
    async def add_team(self, name: str) -> Team: ...

    @abstractmethod
    async def list_teams(self) -> list[Team]: ...

    @abstractmethod
    async def add_user(self, user: User, at: float) -> User: ...

    @abstractmethod
    async def update_user(self, user: User) -> None:
        """Writes every field, extensions included (replaced)."""

    @abstractmethod
    async def get_user(self, user_id: int) -> User | None: ...

    @abstractmethod
    async def get_user_by_username(self, username: str) -> User | None: ...

    @abstractmethod
    async def user_for_extension(self, extension: str) -> User | None: ...

    @abstractmethod
    async def list_users(self, include_inactive: bool = False) -> list[User]: ...

    # -- contacts --------------------------------------------------------------------
    @abstractmethod
    async def add_contact(self, contact: Contact) -> Contact: ...

    @abstractmethod
    async def bulk_load_contacts(self, contacts: Sequence[Contact]) -> int:
        """Fast path for imports and benchmarks: ids are assigned here, phones included."""

    @abstractmethod
    async def update_contact(self, contact: Contact) -> None:
        """Writes every field; phones are replaced by ``contact.phones``."""

    @abstractmethod
    async def get_contact(self, contact_id: int) -> Contact | None: ...

    async def contacts_by_ids(self, contact_ids: Iterable[int]) -> dict[int, Contact]:
        """The contacts with these ids (erased ones included) by id, phones included;
        ids that do not exist are left out.  The SQL engines answer in two queries."""
        out: dict[int, Contact] = {}
        for cid in dict.fromkeys(contact_ids):
            contact = await self.get_contact(cid)
            if contact is not None:
                out[cid] = contact
        return out

    @abstractmethod
    async def delete_contact(self, contact_id: int) -> None: ...

    @abstractmethod
    async def contacts_by_e164(self, e164: str) -> list[Contact]:
        """Live contacts having this number, most recently in contact first."""

    @abstractmethod
    async def contact_ids_by_e164(self, e164: str) -> list[int]:
        """The same order as ``contacts_by_e164``, ids only: the hot path of matching."""

    @abstractmethod
    async def search_contacts(
        self,
        text: str | None = None,
        e164: str | None = None,
        digits: str | None = None,
        owner_id: int | None = None,
        limit: int = 50,
        after_id: int | None = None,
        user_ids: UserIds = None,
    ) -> list[Contact]:
        """Contacts whose name/company contains ``text``, or having number ``e164``,
        or a number containing ``digits``; ordered by id.  With ``user_ids``, only
        contacts owned by one of them or by nobody."""

    @abstractmethod
    async def list_contacts(
        self,
        after_id: int | None = None,
        limit: int = 500,
        owner_id: int | None = None,
        user_ids: UserIds = None,
    ) -> list[Contact]: ...

    @abstractmethod
    async def list_leads(
        self,
        statuses: Sequence[str],
        source: str | None = None,
        text: str | None = None,
        e164: str | None = None,
        digits: str | None = None,
        owner_id: int | None = None,
        limit: int = 50,
        after_id: int | None = None,
        user_ids: UserIds = None,
    ) -> list[Contact]:
        """Contacts whose lead status is one of ``statuses`` (and source ``source``),
        ordered by id after ``after_id``; ``text``/``e164``/``digits``/``owner_id``/
        ``user_ids`` as in ``search_contacts``."""

    @abstractmethod
    async def count_contacts(self) -> int: ...

    @abstractmethod
    async def touch_contact(self, contact_id: int, at: float) -> None:
        """Record that we were in contact at ``at`` (never moves backwards)."""

    @abstractmethod
    async def merge_contacts(self, keep_id: int, drop_id: int, at: float) -> None:
        """Move calls, tasks and numbers of ``drop_id`` to ``keep_id``, then delete it;
        field-level merging of the contact itself is the caller's job."""

    @abstractmethod
    async def reassign_owner(self, from_user_id: int, to_user_id: int) -> tuple[int, int]:
        """Contacts and open callbacks of one rep to another: (contacts, callbacks)."""

    # -- leads and handover (crm/store/sql_leads.py, sql_handover.py) ---------------
    @abstractmethod
    async def set_lead_converted_at(self, contact_id: int, at: float | None) -> None:
        """When the lead became a customer (None: not converted)."""

    @abstractmethod
    async def audit_for_target(
        self, target: str, prefix: str = "", limit: int = 200
    ) -> list[AuditEntry]:
        """Audit entries about ``target`` (``contact:12``), actions starting with
        ``prefix``, newest first."""

    @abstractmethod
    async def lead_stats(
        self, since: float, until: float, user_ids: UserIds = None
    ) -> list[LeadStatRow]:
        """Leads created in [since, until) by source and owner (owned within
        ``user_ids`` when given)."""

    @abstractmethod
    async def handover_shares(
        self, from_user_id: int, to_user_ids: Sequence[int]
    ) -> list[HandoverShare]:
        """What each receiver would get of ``from_user_id``'s contacts, open leads and
        open callbacks (``crm/store/sql_handover.py`` says the rule)."""

    @abstractmethod
    async def handover_sample(self, from_user_id: int, limit: int = 10) -> list[Contact]:
        """A few of the contacts a handover would move, open leads first."""

    @abstractmethod
    async def handover_move(
        self, from_user_id: int, to_user_ids: Sequence[int], at: float
    ) -> tuple[int, int]:
        """Move them as ``handover_shares`` said: (contacts, callbacks) moved."""

    @abstractmethod
    async def erase_contact(self, contact_id: int, at: float) -> list[tuple[int, str]]:
        """Remove personal data, keep anonymous call rows; returns the (id, path) of the
        recordings that must now be deleted from disk."""

    # -- calls -----------------------------------------------------------------------
    @abstractmethod
    async def upsert_call(self, call: Call, at: float, *, new: bool = False) -> Call:
        """Insert or update by (link, linkedid): two PBXes may report the same linkedid,
        each keeps its own row.  The returned call has its id and recording ids.
        ``new``: the caller saw no row of it in this transaction (a shortcut; a row
        that exists after all is still updated, never doubled)."""

    @abstractmethod
    async def insert_calls(self, calls: Sequence[Call], at: float) -> list[Call]:
        """``upsert_call(new=True)`` for several calls, their rows in one statement."""

    # -- a batch of finished calls (``Ingest.record_many``): one statement per batch --
    @abstractmethod
    async def lock_numbers(self, numbers: Iterable[str]) -> None:
        """``lock_number`` for each, in sorted order."""

    @abstractmethod
    async def calls_by_linkedids(
        self, linkedids: Sequence[str], pbx_link_id: int | None
    ) -> dict[str, Call]:
        """The calls of these linkedids on that link, by linkedid."""

    @abstractmethod
    async def users_for_extensions(self, extensions: Iterable[str]) -> dict[str, User]:
        """``user_for_extension`` for each extension that has a user."""

    @abstractmethod
    async def contact_ids_by_numbers(self, numbers: Iterable[str]) -> dict[str, list[int]]:
        """The ids of the contacts (not erased) having each number, in no order."""

    @abstractmethod
    async def contact_names_by_e164(self, e164: str) -> list[tuple[int, str]]:
        """(id, name) of the contacts having the number, most recent first (the pop)."""

    @abstractmethod
    async def numbers_with_open_callbacks(self, numbers: Iterable[str]) -> set[str]:
        """Which of these numbers have an open callback task."""

    @abstractmethod
    async def touch_contacts(self, last_contact: Mapping[int, float]) -> None:
        """``touch_contact`` for each (contact id, call start)."""

    @abstractmethod
    async def delete_live_calls(self, linkedids: Sequence[str], pbx_link_id: int | None) -> None:
        """``delete_live_call`` for several calls of one link."""

    @abstractmethod
    async def save_live_calls(
        self, rows: Sequence[tuple[str, int | None, dict[str, Any], float]]
    ) -> None:
        """``save_live_call`` for each (linkedid, link id, snapshot, at)."""

    @abstractmethod
    async def get_call(self, call_id: int) -> Call | None: ...

    @abstractmethod
    async def get_call_by_linkedid(
        self, linkedid: str, pbx_link_id: int | AnyLink | None = ANY_LINK
    ) -> Call | None:
        """The call of that linkedid on that link (None: written with no link);
        ``ANY_LINK``: on whichever link wrote it last (lookups by a person, tests)."""

    @abstractmethod
    async def list_calls(
        self,
        flt: CallFilter,
        limit: int = 50,
        cursor: CallCursor | None = None,
        user_ids: UserIds = None,
    ) -> list[Call]:
        """Newest first, keyset-paginated by (started_at, id).  With ``user_ids``, only
        calls whose rep is one of them, or whose callback task is theirs or nobody's."""

    @abstractmethod
    async def set_call_contact(
        self, call_id: int, contact_id: int | None, reason: str, at: float
    ) -> bool:
        """Link a call to another contact (a user's choice); False if no such call."""

    @abstractmethod
    async def count_calls(self) -> int: ...

    @abstractmethod
    async def answered_call_after(
        self, e164: str, after: float, not_ids: Sequence[int] = ()
    ) -> Call | None:
        """The earliest answered call with this remote number started at/after ``after``
        (none of ``not_ids``)."""

    @abstractmethod
    async def missed_calls(
        self,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: CallCursor | None = None,
        user_ids: UserIds = None,
        *,
        rep_id: int | None = None,
        line: str | None = None,
        outcome: str | None = None,
        callback: str | None = None,
    ) -> list[MissedCallRow]:
        """Unanswered inbound calls, newest first, keyset-paginated like ``list_calls``,
        each with its callback task.  Narrowed by ``rep_id`` (their extension rang, or
        the call, its callback task or the callback is theirs), ``line`` (the DID),
        ``outcome``, and ``callback``: ``open``, ``closed`` or ``none`` (no task)."""

    # -- notes -----------------------------------------------------------------------
    @abstractmethod
    async def add_note(self, note: Note) -> Note: ...

    @abstractmethod
    async def notes_for_call(self, call_id: int) -> list[Note]: ...

    @abstractmethod
    async def notes_for_contact(self, contact_id: int, limit: int = 500) -> list[Note]:
        """Notes on the contact's calls, newest first."""

    @abstractmethod
    async def get_note(self, note_id: int) -> Note | None: ...

    @abstractmethod
    async def update_note(self, note: Note) -> None:
        """Topic, result, comment, ``updated_at`` and ``updated_by`` of ``note.id``."""

    # -- callbacks -------------------------------------------------------------------
    @abstractmethod
    async def add_callback(self, task: CallbackTask) -> CallbackTask: ...

    @abstractmethod
    async def save_callback(self, task: CallbackTask) -> None: ...

    @abstractmethod
    async def get_callback(self, task_id: int) -> CallbackTask | None: ...

    @abstractmethod
    async def open_callback_for_number(self, e164: str) -> CallbackTask | None: ...

    @abstractmethod
    async def link_callback_call(self, task_id: int, call_id: int) -> bool:
        """True when the call was not linked to the task before (idempotent ingest)."""

    @abstractmethod
    async def callback_rung_users(self, task_id: int) -> tuple[int, ...]:
        """The users the task's calls rang, sorted (``CallbackTask.rung_user_ids``)."""

    @abstractmethod
    async def callback_for_call(self, call_id: int) -> CallbackTask | None: ...

    @abstractmethod
    async def list_callbacks(
        self,
        owner_id: int | None = None,
        status: CallbackStatus | None = "open",
        limit: int = 200,
        user_ids: UserIds = None,
    ) -> list[CallbackTask]:
        """Oldest due first; with ``user_ids`` only theirs, and unowned ones whose calls
        rang one of them."""

    @abstractmethod
    async def callbacks_for_contact(self, contact_id: int, limit: int = 500) -> list[CallbackTask]:
        """Newest opened first."""

    @abstractmethod
    async def least_loaded_rung_user(self, call_id: int) -> int | None:
        """The active user rung by ``call_id`` with the fewest open callbacks."""

    @abstractmethod
    async def add_callback_attempt(self, attempt: CallbackAttempt) -> CallbackAttempt: ...

    @abstractmethod
    async def callback_attempts(self, task_ids: list[int]) -> list[CallbackAttempt]:
        """The attempts on these tasks, oldest first."""

    @abstractmethod
    async def overdue_unsignalled(self, now: float, limit: int = 200) -> list[CallbackTask]:
        """Open tasks past due and past any snooze, not yet signalled as overdue."""

    @abstractmethod
    async def mark_callback_overdue(self, task_id: int, at: float) -> bool:
        """Set ``overdue_at`` unless set: True for the one caller that set it."""

    # -- agent events (crm/store/sql_agent_events.py) ---------------------------------
    @abstractmethod
    async def add_agent_events(self, events: Sequence[AgentEvent]) -> None:
        """Append a rep's pauses, memberships and registrations as they happened."""

    @abstractmethod
    async def list_agent_events(
        self, since: float, until: float, extension: str | None = None
    ) -> list[AgentEvent]:
        """Oldest first, ``since <= ts < until``."""

    # -- audit -----------------------------------------------------------------------
    @abstractmethod
    async def append_audit(self, entry: AuditEntry) -> AuditEntry: ...

    @abstractmethod
    async def list_audit(
        self,
        action: str | None = None,
        actor: str | None = None,
        since: float | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        """Newest first."""

    # -- reports (aggregated in SQL) -------------------------------------------------
    @abstractmethod
    async def missed_summary(
        self, since: float, until: float, sla_seconds: float, user_ids: UserIds = None
    ) -> MissedSummary: ...

    @abstractmethod
    async def calls_per_day(
        self, since: float, until: float, user_ids: UserIds = None, utc_offset: float = 0.0
    ) -> list[tuple[str, str, int]]:
        """(day ``YYYY-MM-DD``, outcome, count), by day then outcome."""

    @abstractmethod
    async def per_rep(
        self, since: float, until: float, user_ids: UserIds = None
    ) -> list[RepFigures]: ...

    @abstractmethod
    async def busiest_hours(
        self, since: float, until: float, user_ids: UserIds = None, utc_offset: float = 0.0
    ) -> list[tuple[int, int]]:
        """(hour 0-23, calls started in it) for the hours that had calls."""

    # -- queue figures (crm/store/sql_queues.py) ---------------------------------------
    @abstractmethod
    async def queue_call_groups(
        self,
        since: float,
        until: float,
        user_ids: UserIds = None,
        utc_offset: float = 0.0,
        limits: Sequence[float] = (),
        by: str = "day",
    ) -> list[QueueCallGroup]:
        """Queue calls started in [since, until) that ``user_ids`` may see, grouped by
        queue, day (``by="day"``) or hour of the day (``"hour"``), answered or not, and
        the first of the sorted ``limits`` their wait does not exceed."""

    @abstractmethod
    async def queue_rep_groups(
        self, since: float, until: float, user_ids: UserIds = None
    ) -> list[QueueRepGroup]:
        """Per rep and queue: queue calls answered, their talk time, rang not answered."""

    @abstractmethod
    async def talk_seconds_by_user(
        self, since: float, until: float, user_ids: UserIds = None
    ) -> dict[int, float]:
        """Talk time of all of each rep's calls started in the period."""

    @abstractmethod
    async def agent_state_events(self, since: float, until: float) -> list[AgentEventRow]:
        """Pause and registration events of the period, after the last one of each kind
        before it (the state the period starts in); oldest first."""

    @abstractmethod
    async def queue_names(self) -> list[str]:
        """The queues stored calls went through, sorted."""

    # -- API tokens ------------------------------------------------------------------
    @abstractmethod
    async def add_api_token(
        self, user_id: int, name: str, token_sha256: str, at: float,
        expires_at: float | None = None, scope: str = "full",
    ) -> ApiToken: ...  # fmt: skip

    @abstractmethod
    async def user_for_token_hash(self, token_sha256: str, at: float) -> User | None:
        """The owner of a live (not revoked, not expired) token; notes ``at`` as its last
        use."""

    @abstractmethod
    async def token_for_hash(self, token_sha256: str, at: float) -> tuple[User, ApiToken] | None:
        """A live token and its owner (the scope matters to the caller); notes ``at`` as
        its last use."""

    @abstractmethod
    async def get_api_token(self, token_id: int) -> ApiToken | None: ...

    @abstractmethod
    async def list_api_tokens(self, user_id: int | None = None) -> list[ApiToken]: ...

    @abstractmethod
    async def revoke_api_token(self, token_id: int, at: float) -> bool:
        """False when there is no such live token."""

    # -- web sessions ----------------------------------------------------------------
    @abstractmethod
    async def add_web_session(self, session: WebSession) -> None: ...

    @abstractmethod
    async def get_web_session(self, session_id: str) -> WebSession | None: ...

    @abstractmethod
    async def touch_web_session(self, session_id: str, at: float) -> None:
        """Note activity (the idle timeout counts from the last touch)."""

    @abstractmethod
    async def end_web_sessions(
        self, user_id: int, at: float, *, only: str | None = None, keep: str | None = None
    ) -> int:
        """End the user's open sessions (just ``only``, or all but ``keep``); how many."""

    @abstractmethod
    async def list_web_sessions(self, user_id: int) -> list[WebSession]:
        """The user's sessions not yet ended, newest first."""

    @abstractmethod
    async def purge_web_sessions(self, before: float) -> int:
        """Delete sessions ended, or last seen, before ``before``."""

    # -- recordings catalogue --------------------------------------------------------
    @abstractmethod
    async def recordings_to_check(self, limit: int = 100) -> list[RecordingRow]:
        """Pending files, and missing ones the worker has not given up on, oldest first."""

    @abstractmethod
    async def update_recording(
        self,
        rec_id: int,
        *,
        status: RecordingStatus,
        duration_seconds: float | None,
        media_path: str | None,
        size_bytes: int | None,
        error: str | None,
        at: float,
    ) -> bool: ...

    @abstractmethod
    async def get_recording(self, rec_id: int) -> RecordingRow | None: ...

    @abstractmethod
    async def recordings_for_call(self, call_id: int) -> list[RecordingRow]: ...

    @abstractmethod
    async def recordings_older_than(self, before: float, limit: int) -> list[RecordingRow]:
        """Not yet deleted, created before ``before``, oldest first."""

    @abstractmethod
    async def mark_recording_deleted(self, rec_id: int, at: float) -> bool: ...

    # -- settings --------------------------------------------------------------------
    @abstractmethod
    async def get_setting(self, section: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def put_setting(self, section: str, values: dict[str, Any], at: float) -> None: ...

    @abstractmethod
    async def setting_sections(self) -> list[str]:
        """Every stored section's name (to re-encrypt stored secrets at start)."""

    # -- PBX links and calls in progress (scale-out) --------------------------------
    @abstractmethod
    async def ensure_pbx_link(self, name: str, team: str | None = None) -> PbxLink:
        """The link ``name`` (created if new), serving ``team`` (created if new)."""

    @abstractmethod
    async def list_pbx_links(self) -> list[PbxLink]: ...

    @abstractmethod
    async def save_live_call(
        self, linkedid: str, pbx_link_id: int | None, snapshot: dict[str, Any], at: float
    ) -> bool:
        """Keep the latest state of a call in progress (not once its record exists)."""

    @abstractmethod
    async def delete_live_call(
        self, linkedid: str, pbx_link_id: int | AnyLink | None = ANY_LINK
    ) -> None: ...

    @abstractmethod
    async def live_calls_for_link(self, pbx_link_id: int | None) -> list[LiveCallRow]: ...

    @abstractmethod
    async def list_live_calls(
        self, since: float | None = None, limit: int = 500
    ) -> list[LiveCallRow]:
        """Calls in progress on every link (``live_calls``, kept when the ingest runs
        with ``keep_live``), latest update first, updated at/after ``since``."""

    # -- CDR backfill (crm.backfill) ------------------------------------------------
    @abstractmethod
    async def get_backfill_state(self, link: str) -> BackfillState | None: ...

    @abstractmethod
    async def list_backfill_states(self) -> list[BackfillState]: ...

    @abstractmethod
    async def mark_link_alive(self, link: str, at: float) -> None:
        """Move the link's watermark (when it was last known up) forward to ``at``."""

    @abstractmethod
    async def save_backfill_state(self, state: BackfillState, at: float) -> None:
        """Keep the file position and the last run's figures (not the watermark)."""
