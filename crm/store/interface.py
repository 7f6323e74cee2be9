"""The one store interface the CRM is written against.

Both engines (SQLite, PostgreSQL) implement exactly this; services never see SQL or a
connection.  ``transaction()`` yields a Store bound to one database transaction, so a
service can make several calls atomic (ingest, merge, reassignment, CSV import) without
knowing which engine it talks to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from ..models import (
    AuditEntry,
    Call,
    CallbackStatus,
    CallbackTask,
    CallFilter,
    Contact,
    MissedCallRow,
    Note,
    User,
)

CallCursor = tuple[float, int]
"""(started_at, id) of the last call on the previous page, newest first."""


class Store(ABC):
    dialect: str
    """``sqlite`` or ``postgres``."""

    # -- lifecycle -------------------------------------------------------------------
    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Store]:
        """All calls on the yielded store commit together or not at all.  Nested use
        joins the outer transaction."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def schema_version(self) -> int: ...

    @abstractmethod
    async def lock_number(self, e164: str) -> None:
        """Serialise work on one phone number until the transaction ends, so two
        processes ingesting calls from one unknown caller make one lead, one task."""

    # -- users -----------------------------------------------------------------------
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
    ) -> list[Contact]:
        """Contacts whose name/company contains ``text``, or having number ``e164``,
        or a number containing ``digits``; ordered by id."""

    @abstractmethod
    async def list_contacts(
        self, after_id: int | None = None, limit: int = 500, owner_id: int | None = None
    ) -> list[Contact]: ...

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

    @abstractmethod
    async def erase_contact(self, contact_id: int, at: float) -> list[tuple[int, str]]:
        """Remove personal data, keep anonymous call rows; returns the (id, path) of the
        recordings that must now be deleted from disk."""

    # -- calls -----------------------------------------------------------------------
    @abstractmethod
    async def upsert_call(self, call: Call, at: float) -> Call:
        """Insert or update by linkedid; the returned call has its id and recording ids."""

    @abstractmethod
    async def get_call(self, call_id: int) -> Call | None: ...

    @abstractmethod
    async def get_call_by_linkedid(self, linkedid: str) -> Call | None: ...

    @abstractmethod
    async def list_calls(
        self, flt: CallFilter, limit: int = 50, cursor: CallCursor | None = None
    ) -> list[Call]:
        """Newest first, keyset-paginated by (started_at, id)."""

    @abstractmethod
    async def count_calls(self) -> int: ...

    @abstractmethod
    async def answered_call_after(self, e164: str, after: float) -> Call | None:
        """The earliest answered call with this remote number started at/after ``after``."""

    @abstractmethod
    async def missed_calls(
        self,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: CallCursor | None = None,
    ) -> list[MissedCallRow]: ...

    # -- notes -----------------------------------------------------------------------
    @abstractmethod
    async def add_note(self, note: Note) -> Note: ...

    @abstractmethod
    async def notes_for_call(self, call_id: int) -> list[Note]: ...

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
    async def callback_for_call(self, call_id: int) -> CallbackTask | None: ...

    @abstractmethod
    async def list_callbacks(
        self,
        owner_id: int | None = None,
        status: CallbackStatus | None = "open",
        limit: int = 200,
    ) -> list[CallbackTask]:
        """Oldest due first."""

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
