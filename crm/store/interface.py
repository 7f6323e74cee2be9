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
from collections.abc import Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from .params import ANY_LINK, AnyLink, CallCursor, UserIds
from .sql_agent_events import AgentEventQueries
from .sql_audit import AuditQueries
from .sql_backfill import BackfillQueries
from .sql_call_batch import CallBatchQueries
from .sql_callbacks import CallbackQueries
from .sql_calls import CallQueries
from .sql_contacts import ContactQueries
from .sql_figures import FigureQueries
from .sql_filters import FilterQueries
from .sql_handover import HandoverQueries
from .sql_leads import LeadQueries
from .sql_links import LinkQueries
from .sql_notes import NoteQueries
from .sql_pop_names import PopNameQueries
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
    # calls (one by one, a batch's reads and writes at once, the pop's caller lookups)
    CallQueries, CallBatchQueries, PopNameQueries,
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
    async def pop_read(self, work: Callable[[Store], Awaitable[T]]) -> T:
        """``work``'s reads on the screen pop's path, on one connection of the pop's
        readers (SQLite: read-only, not behind a write) taken once for them all.  As for
        ``in_transaction``, ``work`` must await nothing but that store: SQLite runs it
        whole in the reader's thread (one hop instead of one a statement, each a wait
        for the thread and the GIL while the loop writes to hundreds of browsers), or,
        when it waits for anything else, statement by statement."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def data_version(self) -> Hashable | None:
        """A value that changes whenever anything is committed to the database, by this
        process or another, and that a read started after it sees at least: what
        ``crm.figures_memo`` keeps figures under.  None where the engine cannot tell
        (an in-memory SQLite database)."""

    @abstractmethod
    async def schema_version(self) -> int: ...

    @abstractmethod
    async def lock_number(self, e164: str) -> None:
        """Serialise work on one phone number until the transaction ends, so two
        processes ingesting calls from one unknown caller make one lead, one task."""
