"""The one store interface the CRM is written against.

Both engines (SQLite, PostgreSQL) implement exactly this; services never see SQL or a
connection.  ``transaction()`` yields a Store bound to one database transaction, so a
service can make several calls atomic (ingest, merge, reassignment, CSV import) without
knowing which engine it talks to.

``Store`` is assembled from the query mixins, one module a domain, each method documented
where it is written (``docs/design.md`` lists them); both engines share them through
``sql.SqlStore``.  Declared here are only what the mixins lean on and do not define.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from ..models import Call, CallFilter, MissedCallRow, User
from .params import ANY_LINK, AnyLink, CallCursor, UserIds
from .sql_agent_events import AgentEventQueries
from .sql_audit import AuditQueries
from .sql_backfill import BackfillQueries
from .sql_callbacks import CallbackQueries
from .sql_contacts import ContactQueries
from .sql_figures import FigureQueries
from .sql_filters import FilterQueries
from .sql_handover import HandoverQueries
from .sql_leads import LeadQueries
from .sql_links import LinkQueries
from .sql_notes import NoteQueries
from .sql_queues import QueueQueries
from .sql_recordings import RecordingQueries
from .sql_reports import ReportQueries
from .sql_sessions import SessionQueries
from .sql_settings import SettingQueries
from .sql_tokens import TokenQueries
from .sql_users import UserQueries

__all__ = ["ANY_LINK", "AnyLink", "CallCursor", "Store", "UserIds"]

T = TypeVar("T")


class Store(
    # teams and users, contacts, notes, the audit log (and a lead's history)
    UserQueries, ContactQueries, NoteQueries, AuditQueries,
    # reports and the figures they read, queue figures, the recordings catalogue, API
    # tokens, the admin's stored settings
    ReportQueries, FigureQueries, QueueQueries, RecordingQueries, TokenQueries, SettingQueries,
    # PBX links and calls in progress, lead and live-call lists, CDR backfill, sessions
    LinkQueries, FilterQueries, BackfillQueries, SessionQueries,
    # agent events, callbacks, leads, handover
    AgentEventQueries, CallbackQueries, LeadQueries, HandoverQueries,
    ABC,
):  # fmt: skip
    """No mixin defines a name another defines (or ``SqlStore`` does), so their order
    decides nothing: it groups them by domain."""

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
    async def lock_number(self, e164: str) -> None:
        """Serialise work on one phone number until the transaction ends, so two
        processes ingesting calls from one unknown caller make one lead, one task."""

    # Deliberate repeats of ``sql.py`` (the only signatures written twice): the calls
    # are still written in ``SqlStore`` itself, not in a mixin, because their code was
    # being changed by other work when the store was split by domain.  Moving them to an
    # ``sql_calls.py`` mixin removes these declarations.
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

    # Repeated by SqlStore and the services on purpose: this signature is their contract.
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
