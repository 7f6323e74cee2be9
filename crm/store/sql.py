"""The SQL both engines share, written once with ``$n`` placeholders.

PostgreSQL takes ``$n`` as is; the SQLite engine rewrites it to ``?n`` (SQLite's numbered
parameters), so values are always bound, never formatted into the text.  The few places
where the dialects differ are small overridable methods (``_ids_in``, ``_icontains``,
``bulk_load_contacts``, ``lock_number``).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from ami_bridge.facts import Transfer

from ..models import (
    MISSED_OUTCOMES,
    AuditEntry,
    Call,
    CallFilter,
    Contact,
    Lead,
    MissedCallRow,
    Note,
    PhoneNumber,
    Team,
    User,
)
from .interface import ANY_LINK, AnyLink, CallCursor, Store, UserIds
from .sql_agent_events import AgentEventQueries
from .sql_backfill import BackfillQueries
from .sql_callbacks import CallbackQueries
from .sql_catalogue import CatalogueQueries
from .sql_common import CONTACT_COLS, MISSED_SQL
from .sql_figures import FigureQueries
from .sql_filters import FilterQueries
from .sql_handover import HandoverQueries
from .sql_leads import LeadQueries
from .sql_links import LinkQueries
from .sql_queues import QueueQueries
from .sql_reports import ReportQueries
from .sql_sessions import SessionQueries

Row = Mapping[str, Any]
T = TypeVar("T")


class Conn(Protocol):
    """The four things the shared SQL needs from a driver connection."""

    async def execute(self, sql: str, *args: Any) -> None: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _transfers_json(transfers: Sequence[Transfer]) -> str:
    return _dumps([{"kind": t.kind, "from": t.from_, "to": t.to, "at": t.at} for t in transfers])


def _transfers(value: Any) -> tuple[Transfer, ...]:
    return tuple(
        Transfer(kind=t["kind"], from_=t.get("from"), to=t.get("to"), at=t["at"])
        for t in _loads(value) or []
    )


CALL_COLS = (
    "id, linkedid, direction, caller, caller_raw, caller_name, callee, callee_e164, did, "
    "rang, answered, answered_by, final_agent, transfers, outcome, hangup_by, started_at, "
    "answered_at, ended_at, ring_seconds, talk_seconds, recordings, originate_id, queue, "
    "hangup_cause, complete, uniqueids, remote_e164, contact_id, user_id, match_reason, "
    "pbx_link_id, declined, source"
)


NOTE_COLS = "id, call_id, author_id, topic, result, comment, created_at, updated_at, updated_by"


def _call_cols(prefix: str) -> str:
    return ", ".join(f"{prefix}.{c.strip()}" for c in CALL_COLS.split(","))


def _contact_row(row: Row, phones: list[PhoneNumber]) -> Contact:
    lead = None
    if row["lead_status"] is not None:
        lead = Lead(
            status=row["lead_status"],
            source=row["lead_source"] or "manual",
            created_at=row["lead_created_at"] or 0.0,
        )
    return Contact(
        id=row["id"],
        name=row["name"],
        company=row["company"],
        email=row["email"],
        owner_id=row["owner_id"],
        tags=list(_loads(row["tags"]) or []),
        custom=dict(_loads(row["custom"]) or {}),
        phones=phones,
        lead=lead,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_contact_at=row["last_contact_at"],
        erased=bool(row["erased"]),
    )


def _call_row(row: Row, recording_ids: list[int]) -> Call:
    return Call(
        id=row["id"],
        linkedid=row["linkedid"],
        direction=row["direction"],
        caller=row["caller"],
        caller_raw=row["caller_raw"],
        caller_name=row["caller_name"],
        callee=row["callee"],
        callee_e164=row["callee_e164"],
        did=row["did"],
        rang=tuple(_loads(row["rang"]) or ()),
        answered=bool(row["answered"]),
        answered_by=row["answered_by"],
        final_agent=row["final_agent"],
        transfers=_transfers(row["transfers"]),
        outcome=row["outcome"],
        hangup_by=row["hangup_by"],
        started_at=row["started_at"],
        answered_at=row["answered_at"],
        ended_at=row["ended_at"],
        ring_seconds=row["ring_seconds"],
        talk_seconds=row["talk_seconds"],
        recordings=tuple(_loads(row["recordings"]) or ()),
        originate_id=row["originate_id"],
        queue=row["queue"],
        hangup_cause=row["hangup_cause"],
        complete=bool(row["complete"]),
        uniqueids=tuple(_loads(row["uniqueids"]) or ()),
        remote_e164=row["remote_e164"],
        contact_id=row["contact_id"],
        user_id=row["user_id"],
        match_reason=row["match_reason"],
        recording_ids=recording_ids,
        pbx_link_id=row["pbx_link_id"],
        declined=tuple(_loads(row["declined"]) or ()),
        source=row["source"],
    )


def _audit_row(row: Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        detail=dict(_loads(row["detail"]) or {}),
    )


class SqlStore(
    ReportQueries, FigureQueries, QueueQueries, CatalogueQueries, LinkQueries, FilterQueries,
    BackfillQueries, SessionQueries, AgentEventQueries, CallbackQueries, LeadQueries,
    HandoverQueries, Store
):
    """Everything but connection handling.  ``_conn`` is set on stores handed out by
    ``transaction()``; the root store borrows a connection per call."""

    dialect = "sql"

    def __init__(self) -> None:
        self._conn: Conn | None = None
        self._figures_state: dict[str, Any] = {}

    # -- engine hooks ----------------------------------------------------------------
    @abstractmethod
    def _acquire(self) -> AbstractAsyncContextManager[Conn]:
        """A connection for one autocommit call."""

    @abstractmethod
    def _begin(self) -> AbstractAsyncContextManager[Conn]:
        """A connection inside a fresh transaction, committed on clean exit."""

    @abstractmethod
    def _bound(self, conn: Conn) -> SqlStore:
        """A store of the same engine that uses ``conn`` for every call."""

    def _ids_in(self, n: int) -> str:
        """SQL for ``<expr> IN (ids bound as parameter $n)``."""
        return f"IN (SELECT value FROM json_each(${n}))"

    def _ids_param(self, ids: Sequence[int]) -> Any:
        return _dumps(list(ids))

    def _texts_in(self, n: int) -> str:
        return f"IN (SELECT value FROM json_each(${n}))"

    def _texts_param(self, texts: Sequence[str]) -> Any:
        return _dumps(list(texts))

    def _icontains(self, column: str, n: int) -> str:
        """Case-insensitive substring test of ``column`` against parameter $n (a
        lower-cased pattern with % around it)."""
        return f"lower({column}) LIKE ${n}"

    def _index_hint(self, index: str) -> str:
        """Pin the index a keyset walk must use (SQLite's ``INDEXED BY``).  Without
        statistics SQLite prefers ``calls_outcome``'s four ranges and sorts every missed
        call of the period before taking a page; PostgreSQL plans from its statistics
        and gets no hint.  ``index`` is always one of our own names, never user input."""
        return f"INDEXED BY {index}"

    def _day(self, epoch_sql: str) -> str:
        """SQL for the UTC day ``YYYY-MM-DD`` of a POSIX-seconds expression."""
        return f"strftime('%Y-%m-%d', {epoch_sql}, 'unixepoch')"

    def _floor_div(self, epoch_sql: str, seconds: int) -> str:
        """SQL for the integer ``floor(epoch / seconds)`` (day or hour number since the
        epoch): plain arithmetic, far cheaper per row than formatting a date.  Call
        times are after 1970, where truncation is the floor."""
        return f"CAST(({epoch_sql}) / {int(seconds)} AS INTEGER)"

    def _hour(self, epoch_sql: str) -> str:
        """SQL for the UTC hour (integer 0-23) of a POSIX-seconds expression."""
        return f"CAST(strftime('%H', {epoch_sql}, 'unixepoch') AS INTEGER)"

    def _json_values_join(self, column: str, alias: str) -> str:
        """A join yielding the elements of a JSON array column as ``alias.value``."""
        return f"CROSS JOIN json_each({column}) AS {alias}"

    def _visible_call(self, alias: str, n: int, per_row: bool = False) -> str:
        """The visibility rule of ``crm.access`` in SQL (ids bound as parameter $n): the
        call's rep is in scope, or its callback task is visible (``_visible_task``: owned
        in scope, or unowned and it rang someone in scope).  ``per_row`` for a page walked
        newest first: the task is looked up for the few calls the walk reads
        (``_per_row``), never hashed for every task there is."""
        return (
            f"({alias}.user_id {self._ids_in(n)} OR EXISTS (SELECT 1 FROM callback_calls vcc "
            "JOIN callback_tasks vt ON vt.id = vcc.task_id "
            f"WHERE vcc.call_id = {alias}.id AND {self._visible_task('vt', n)}"
            f"{self._per_row() if per_row else ''}))"
        )

    def _per_row(self) -> str:
        """What keeps a correlated EXISTS evaluated per row (PostgreSQL otherwise hashes
        its whole subquery first: every callback task, 400 ms at 5,000,000 calls, to
        show a manager 50 calls); SQLite always looks it up per row."""
        return ""

    def _read(self) -> AbstractAsyncContextManager[Conn]:
        """A connection for one read that must not wait behind another caller's write
        transaction (the screen pop's lookups): the engine's own reader where it has
        one (SQLite: a second connection), else ``_acquire``."""
        return self._acquire()

    @asynccontextmanager
    async def _use(self) -> AsyncIterator[Conn]:
        if self._conn is not None:
            yield self._conn
        else:
            async with self._acquire() as conn:
                yield conn

    @asynccontextmanager
    async def _use_read(self) -> AsyncIterator[Conn]:
        """``_use`` for reads on the screen pop's path (``_read``); inside a
        transaction, its connection."""
        if self._conn is not None:
            yield self._conn
        else:
            async with self._read() as conn:
                yield conn

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        """Several statements that must stay together even when called on the root."""
        if self._conn is not None:
            yield self._conn
        else:
            async with self._begin() as conn:
                yield conn

    def transaction(self) -> AbstractAsyncContextManager[Store]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Store]:
        if self._conn is not None:
            yield self
            return
        async with self._begin() as conn:
            yield self._bound(conn)

    async def in_transaction(
        self, work: Callable[[Store], Awaitable[T]], *, read_only: bool = False
    ) -> T:
        if read_only and self._conn is None:
            async with self._acquire() as conn:
                return await work(self._bound(conn))
        async with self.transaction() as tx:
            return await work(tx)

    async def schema_version(self) -> int:
        async with self._use() as c:
            return int(await c.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    async def lock_number(self, e164: str) -> None:
        return None

    # -- teams and users -------------------------------------------------------------
    async def add_team(self, name: str) -> Team:
        async with self._use() as c:
            team_id = await c.fetchval("INSERT INTO teams (name) VALUES ($1) RETURNING id", name)
        return Team(team_id, name)

    async def list_teams(self) -> list[Team]:
        async with self._use() as c:
            rows = await c.fetch("SELECT id, name FROM teams ORDER BY name")
        return [Team(r["id"], r["name"]) for r in rows]

    async def _extensions(self, c: Conn, user_ids: Sequence[int]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {uid: [] for uid in user_ids}
        if not user_ids:
            return out
        rows = await c.fetch(
            "SELECT user_id, extension FROM user_extensions "
            f"WHERE user_id {self._ids_in(1)} ORDER BY extension",
            self._ids_param(user_ids),
        )
        for r in rows:
            out[r["user_id"]].append(r["extension"])
        return out

    async def _users(self, c: Conn, rows: list[Row]) -> list[User]:
        exts = await self._extensions(c, [r["id"] for r in rows])
        return [
            User(
                id=r["id"],
                username=r["username"],
                display_name=r["display_name"],
                role=r["role"],
                extensions=exts[r["id"]],
                password_hash=r["password_hash"],
                active=bool(r["active"]),
                team_id=r["team_id"],
                language=r["language"],
                timezone=r["timezone"],
            )
            for r in rows
        ]

    _USER_COLS = (
        "id, username, display_name, role, password_hash, active, team_id, language, timezone"
    )

    async def add_user(self, user: User, at: float) -> User:
        async with self._tx() as c:
            user.id = await c.fetchval(
                "INSERT INTO users (username, display_name, role, password_hash, active, "
                "team_id, created_at, language, timezone) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                user.username,
                user.display_name,
                user.role,
                user.password_hash,
                user.active,
                user.team_id,
                at,
                user.language,
                user.timezone,
            )
            await c.executemany(
                "INSERT INTO user_extensions (extension, user_id) VALUES ($1, $2)",
                [(ext, user.id) for ext in user.extensions],
            )
        return user

    async def update_user(self, user: User) -> None:
        async with self._tx() as c:
            await c.execute(
                "UPDATE users SET username = $2, display_name = $3, role = $4, "
                "password_hash = $5, active = $6, team_id = $7, language = $8, timezone = $9 "
                "WHERE id = $1",
                user.id,
                user.username,
                user.display_name,
                user.role,
                user.password_hash,
                user.active,
                user.team_id,
                user.language,
                user.timezone,
            )
            await c.execute("DELETE FROM user_extensions WHERE user_id = $1", user.id)
            await c.executemany(
                "INSERT INTO user_extensions (extension, user_id) VALUES ($1, $2)",
                [(ext, user.id) for ext in user.extensions],
            )

    async def get_user(self, user_id: int) -> User | None:
        async with self._use() as c:
            rows = await c.fetch(f"SELECT {self._USER_COLS} FROM users WHERE id = $1", user_id)
            users = await self._users(c, rows)
        return users[0] if users else None

    async def get_user_by_username(self, username: str) -> User | None:
        async with self._use() as c:
            rows = await c.fetch(
                f"SELECT {self._USER_COLS} FROM users WHERE username = $1", username
            )
            users = await self._users(c, rows)
        return users[0] if users else None

    async def user_for_extension(self, extension: str) -> User | None:
        async with self._use() as c:
            rows = await c.fetch(
                f"SELECT {', '.join('u.' + x.strip() for x in self._USER_COLS.split(','))} "
                "FROM user_extensions e JOIN users u ON u.id = e.user_id "
                "WHERE e.extension = $1",
                extension,
            )
            users = await self._users(c, rows)
        return users[0] if users else None

    async def list_users(self, include_inactive: bool = False) -> list[User]:
        async with self._use_read() as c:
            rows = await c.fetch(
                f"SELECT {self._USER_COLS} FROM users WHERE active OR $1 ORDER BY username",
                include_inactive,
            )
            return await self._users(c, rows)

    # -- contacts --------------------------------------------------------------------
    async def _phones(self, c: Conn, contact_ids: Sequence[int]) -> dict[int, list[PhoneNumber]]:
        out: dict[int, list[PhoneNumber]] = {cid: [] for cid in contact_ids}
        if not contact_ids:
            return out
        rows = await c.fetch(
            "SELECT contact_id, raw, e164, label FROM contact_phones "
            f"WHERE contact_id {self._ids_in(1)} ORDER BY id",
            self._ids_param(contact_ids),
        )
        for r in rows:
            out[r["contact_id"]].append(PhoneNumber(r["raw"], r["e164"], r["label"]))
        return out

    async def _contacts(self, c: Conn, rows: list[Row]) -> list[Contact]:
        phones = await self._phones(c, [r["id"] for r in rows])
        return [_contact_row(r, phones[r["id"]]) for r in rows]

    @staticmethod
    def _contact_args(contact: Contact) -> tuple[Any, ...]:
        lead = contact.lead
        return (
            contact.name,
            contact.company,
            contact.email,
            contact.owner_id,
            _dumps(contact.tags),
            _dumps(contact.custom),
            lead.status if lead else None,
            lead.source if lead else None,
            lead.created_at if lead else None,
            contact.created_at,
            contact.updated_at,
            contact.last_contact_at,
            contact.erased,
        )

    async def _insert_phones(self, c: Conn, contact_id: int, phones: list[PhoneNumber]) -> None:
        await c.executemany(
            "INSERT INTO contact_phones (contact_id, raw, e164, label) VALUES ($1, $2, $3, $4)",
            [(contact_id, p.raw, p.e164, p.label) for p in phones],
        )

    async def add_contact(self, contact: Contact) -> Contact:
        async with self._tx() as c:
            contact.id = await c.fetchval(
                "INSERT INTO contacts (name, company, email, owner_id, tags, custom, "
                "lead_status, lead_source, lead_created_at, created_at, updated_at, "
                "last_contact_at, erased) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
                *self._contact_args(contact),
            )
            assert contact.id is not None
            await self._insert_phones(c, contact.id, contact.phones)
        return contact

    async def bulk_load_contacts(self, contacts: Sequence[Contact]) -> int:
        async with self._tx() as c:
            first = int(await c.fetchval("SELECT COALESCE(MAX(id), 0) FROM contacts")) + 1
            for offset, contact in enumerate(contacts):
                contact.id = first + offset
            await c.executemany(
                "INSERT INTO contacts (id, name, company, email, owner_id, tags, custom, "
                "lead_status, lead_source, lead_created_at, created_at, updated_at, "
                "last_contact_at, erased) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                [(ct.id, *self._contact_args(ct)) for ct in contacts],
            )
            await c.executemany(
                "INSERT INTO contact_phones (contact_id, raw, e164, label) VALUES ($1, $2, $3, $4)",
                [(ct.id, p.raw, p.e164, p.label) for ct in contacts for p in ct.phones],
            )
        return len(contacts)

    async def update_contact(self, contact: Contact) -> None:
        async with self._tx() as c:
            await c.execute(
                "UPDATE contacts SET name = $2, company = $3, email = $4, owner_id = $5, "
                "tags = $6, custom = $7, lead_status = $8, lead_source = $9, "
                "lead_created_at = $10, created_at = $11, updated_at = $12, "
                # maintained by touch_contact: a stale object must not move it backwards
                "last_contact_at = CASE WHEN last_contact_at IS NULL OR last_contact_at < $13 "
                "THEN $13 ELSE last_contact_at END, erased = $14 WHERE id = $1",
                contact.id,
                *self._contact_args(contact),
            )
            await c.execute("DELETE FROM contact_phones WHERE contact_id = $1", contact.id)
            assert contact.id is not None
            await self._insert_phones(c, contact.id, contact.phones)

    async def get_contact(self, contact_id: int) -> Contact | None:
        async with self._use_read() as c:
            rows = await c.fetch(f"SELECT {CONTACT_COLS} FROM contacts WHERE id = $1", contact_id)
            found = await self._contacts(c, rows)
        return found[0] if found else None

    async def contacts_by_ids(self, contact_ids: Iterable[int]) -> dict[int, Contact]:
        ids = list(dict.fromkeys(contact_ids))
        if not ids:
            return {}
        async with self._use() as c:
            rows = await c.fetch(
                f"SELECT {CONTACT_COLS} FROM contacts WHERE id {self._ids_in(1)}",
                self._ids_param(ids),
            )
            found = await self._contacts(c, rows)
        return {ct.id: ct for ct in found if ct.id is not None}

    async def delete_contact(self, contact_id: int) -> None:
        async with self._use() as c:
            await c.execute("DELETE FROM contacts WHERE id = $1", contact_id)

    _BY_E164 = (
        "FROM contacts c WHERE c.id IN "
        "(SELECT p.contact_id FROM contact_phones p WHERE p.e164 = $1) AND NOT c.erased "
        "ORDER BY c.last_contact_at DESC NULLS LAST, c.id DESC"
    )

    async def contact_ids_by_e164(self, e164: str) -> list[int]:
        async with self._use_read() as c:
            rows = await c.fetch(f"SELECT c.id {self._BY_E164}", e164)
        return [r["id"] for r in rows]

    async def contacts_by_e164(self, e164: str) -> list[Contact]:
        async with self._use() as c:
            rows = await c.fetch(f"SELECT {CONTACT_COLS} {self._BY_E164}", e164)
            return await self._contacts(c, rows)

    def _contact_filters(
        self,
        args: list[Any],
        text: str | None,
        e164: str | None,
        digits: str | None,
        owner_id: int | None,
        user_ids: UserIds,
    ) -> list[str]:
        """The search and visibility terms of the contact lists (alias ``c``), binding
        their values onto ``args``: shared by ``search_contacts`` and ``list_leads``."""
        alternatives: list[str] = []
        if text:
            args.append("%" + text.lower().replace("%", "").replace("_", "") + "%")
            n = len(args)
            alternatives.append(self._icontains("c.name", n))
            alternatives.append(self._icontains("c.company", n))
            alternatives.append(self._icontains("c.email", n))
        if e164:
            args.append(e164)
            alternatives.append(
                f"c.id IN (SELECT contact_id FROM contact_phones WHERE e164 = ${len(args)})"
            )
        if digits:
            args.append("%" + digits + "%")
            alternatives.append(
                f"c.id IN (SELECT contact_id FROM contact_phones WHERE e164 LIKE ${len(args)})"
            )
        where = ["NOT c.erased"]
        if alternatives:
            where.append("(" + " OR ".join(alternatives) + ")")
        if owner_id is not None:
            args.append(owner_id)
            where.append(f"c.owner_id = ${len(args)}")
        if user_ids is not None:
            args.append(self._ids_param(user_ids))
            where.append(f"(c.owner_id IS NULL OR c.owner_id {self._ids_in(len(args))})")
        return where

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
        args: list[Any] = [after_id or 0, limit]
        where = ["c.id > $1", *self._contact_filters(args, text, e164, digits, owner_id, user_ids)]
        async with self._use() as c:
            rows = await c.fetch(
                f"SELECT {CONTACT_COLS} FROM contacts c WHERE {' AND '.join(where)} "
                "ORDER BY c.id LIMIT $2",
                *args,
            )
            return await self._contacts(c, rows)

    async def list_contacts(
        self,
        after_id: int | None = None,
        limit: int = 500,
        owner_id: int | None = None,
        user_ids: UserIds = None,
    ) -> list[Contact]:
        return await self.search_contacts(
            owner_id=owner_id, limit=limit, after_id=after_id, user_ids=user_ids
        )

    async def count_contacts(self) -> int:
        async with self._use() as c:
            return int(await c.fetchval("SELECT COUNT(*) FROM contacts WHERE NOT erased"))

    async def touch_contact(self, contact_id: int, at: float) -> None:
        async with self._use() as c:
            await c.execute(
                "UPDATE contacts SET last_contact_at = $2 WHERE id = $1 "
                "AND (last_contact_at IS NULL OR last_contact_at < $2)",
                contact_id,
                at,
            )

    async def merge_contacts(self, keep_id: int, drop_id: int, at: float) -> None:
        async with self._tx() as c:
            await c.execute(
                "UPDATE calls SET contact_id = $1, updated_at = $3 WHERE contact_id = $2",
                keep_id,
                drop_id,
                at,
            )
            await c.execute(
                "UPDATE callback_tasks SET contact_id = $1 WHERE contact_id = $2", keep_id, drop_id
            )
            await c.execute(
                "UPDATE contact_phones SET contact_id = $1 WHERE contact_id = $2 AND "
                "(e164 IS NULL OR e164 NOT IN "
                "(SELECT e164 FROM contact_phones WHERE contact_id = $1 AND e164 IS NOT NULL))",
                keep_id,
                drop_id,
            )
            await c.execute("DELETE FROM contacts WHERE id = $1", drop_id)

    async def reassign_owner(self, from_user_id: int, to_user_id: int) -> tuple[int, int]:
        async with self._tx() as c:
            moved = await c.fetch(
                "UPDATE contacts SET owner_id = $2 WHERE owner_id = $1 RETURNING id",
                from_user_id,
                to_user_id,
            )
            # The tasks' calls change owner for the visibility rule: their figures move.
            task_ids = [
                r["id"]
                for r in await c.fetch(
                    "SELECT id FROM callback_tasks WHERE owner_id = $1 AND status = 'open'",
                    from_user_id,
                )
            ]
            await self._count_task_calls(c, task_ids, -1)
            tasks = await c.fetch(
                "UPDATE callback_tasks SET owner_id = $2 WHERE owner_id = $1 AND status = 'open' "
                "RETURNING id",
                from_user_id,
                to_user_id,
            )
            await self._count_task_calls(c, task_ids, 1)
        return len(moved), len(tasks)

    async def erase_contact(self, contact_id: int, at: float) -> list[tuple[int, str]]:
        async with self._tx() as c:
            numbers = [
                r["e164"]
                for r in await c.fetch(
                    "SELECT DISTINCT e164 FROM contact_phones "
                    "WHERE contact_id = $1 AND e164 IS NOT NULL",
                    contact_id,
                )
            ]
            # The person's calls: those linked to them, and unlinked calls from their numbers.
            call_ids = {
                r["id"]
                for r in await c.fetch("SELECT id FROM calls WHERE contact_id = $1", contact_id)
            }
            for number in numbers:
                rows = await c.fetch(
                    "SELECT id FROM calls WHERE remote_e164 = $1 AND contact_id IS NULL", number
                )
                call_ids.update(r["id"] for r in rows)
            ids = self._ids_param(sorted(call_ids))
            recordings = [
                (r["id"], r["path"])
                for r in await c.fetch(
                    f"SELECT id, path FROM call_recordings WHERE call_id {self._ids_in(1)} "
                    "ORDER BY id",
                    ids,
                )
            ]
            await c.execute(f"DELETE FROM call_recordings WHERE call_id {self._ids_in(1)}", ids)
            await c.execute(
                "UPDATE notes SET topic = '', result = '', comment = '' "
                f"WHERE call_id {self._ids_in(1)}",
                ids,
            )
            await c.execute(
                "UPDATE calls SET caller = NULL, caller_raw = NULL, caller_name = NULL, "
                "remote_e164 = NULL, recordings = '[]', contact_id = NULL, "
                "match_reason = 'erased', updated_at = $2 "
                f"WHERE direction = 'inbound' AND id {self._ids_in(1)}",
                ids,
                at,
            )
            await c.execute(
                "UPDATE calls SET callee = NULL, callee_e164 = NULL, remote_e164 = NULL, "
                "recordings = '[]', contact_id = NULL, match_reason = 'erased', updated_at = $2 "
                f"WHERE direction <> 'inbound' AND id {self._ids_in(1)}",
                ids,
                at,
            )
            # what reps wrote about their attempts to ring the person back
            await c.execute(
                "UPDATE callback_attempts SET comment = '' WHERE task_id IN ("
                "SELECT id FROM callback_tasks WHERE contact_id = $1 "
                f"OR number_e164 {self._texts_in(2)})",
                contact_id,
                self._texts_param(numbers),
            )
            await c.execute(
                "UPDATE callback_tasks SET number_e164 = NULL, contact_id = NULL, "
                "status = 'closed', closed_at = COALESCE(closed_at, $2) "
                "WHERE contact_id = $1",
                contact_id,
                at,
            )
            for number in numbers:
                await c.execute(
                    "UPDATE callback_tasks SET number_e164 = NULL, status = 'closed', "
                    "closed_at = COALESCE(closed_at, $2) WHERE number_e164 = $1",
                    number,
                    at,
                )
            await c.execute("DELETE FROM contact_phones WHERE contact_id = $1", contact_id)
            await c.execute(
                "UPDATE contacts SET name = '', company = '', email = '', tags = '[]', "
                "custom = '{}', erased = $2, updated_at = $3 WHERE id = $1",
                contact_id,
                True,
                at,
            )
        return recordings

    # -- calls -----------------------------------------------------------------------
    async def _recording_ids(self, c: Conn, call_ids: Sequence[int]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {cid: [] for cid in call_ids}
        if not call_ids:
            return out
        rows = await c.fetch(
            f"SELECT id, call_id FROM call_recordings WHERE call_id {self._ids_in(1)} ORDER BY id",
            self._ids_param(call_ids),
        )
        for r in rows:
            out[r["call_id"]].append(r["id"])
        return out

    async def _calls(self, c: Conn, rows: list[Row]) -> list[Call]:
        recs = await self._recording_ids(c, [r["id"] for r in rows])
        return [_call_row(r, recs[r["id"]]) for r in rows]

    async def _write_rang(self, c: Conn, call: Call) -> None:
        """Replace the call's ``call_rang`` rows (who it rang, for the reports)."""
        await c.execute("DELETE FROM call_rang WHERE call_id = $1", call.id)
        missed = call.direction == "inbound" and call.outcome in MISSED_OUTCOMES
        await c.executemany(
            "INSERT INTO call_rang (call_id, extension, started_at, missed) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (call_id, extension) DO NOTHING",
            [
                (call.id, ext, call.started_at, missed)
                for ext in dict.fromkeys(call.rang)
                if ext is not None
            ],
        )

    async def upsert_call(self, call: Call, at: float) -> Call:
        values = (
            call.linkedid,
            call.direction,
            call.caller,
            call.caller_raw,
            call.caller_name,
            call.callee,
            call.callee_e164,
            call.did,
            _dumps(list(call.rang)),
            call.answered,
            call.answered_by,
            call.final_agent,
            _transfers_json(call.transfers),
            call.outcome,
            call.hangup_by,
            call.started_at,
            call.answered_at,
            call.ended_at,
            call.ring_seconds,
            call.talk_seconds,
            _dumps(list(call.recordings)),
            call.originate_id,
            call.queue,
            call.hangup_cause,
            call.complete,
            _dumps(list(call.uniqueids)),
            call.remote_e164,
            call.contact_id,
            call.user_id,
            call.match_reason,
            call.pbx_link_id,
            _dumps(list(call.declined)),
            call.source,
            at,
        )
        cols = [*[x.strip() for x in CALL_COLS.split(",")][1:], "ingested_at", "updated_at"]
        placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1)) + f", ${len(values)}"
        key = ("linkedid", "pbx_link_id", "ingested_at")
        updates = ", ".join(f"{col} = excluded.{col}" for col in cols if col not in key)
        async with self._tx() as c:
            # The figures lose the call as it stood and gain it as it stands (sql_figures).
            before = await c.fetchval(
                "SELECT id FROM calls WHERE COALESCE(pbx_link_id, 0) = $1 AND linkedid = $2",
                call.pbx_link_id or 0,
                call.linkedid,
            )
            if before is not None:
                await self._count_call(c, before, -1)
            # Keyed by (link, linkedid): the unique index ``calls_link_linkedid`` (0006).
            call = replace(call, id=await c.fetchval(
                f"INSERT INTO calls ({', '.join(cols)}) VALUES ({placeholders}) "
                f"ON CONFLICT (COALESCE(pbx_link_id, 0), linkedid) DO UPDATE SET {updates} "
                "RETURNING id",
                *values,
            ))
            await c.execute(
                f"DELETE FROM call_recordings WHERE call_id = $1 AND NOT path {self._texts_in(2)}",
                call.id,
                self._texts_param(call.recordings),
            )
            # A file is as old as the call that finished it (retention counts from there).
            await c.executemany(
                "INSERT INTO call_recordings (call_id, path, created_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (call_id, path) DO NOTHING",
                [(call.id, path, call.ended_at) for path in call.recordings],
            )
            # No files: the DELETE above left none (one round trip less per call).
            call = replace(call, recording_ids=(
                (await self._recording_ids(c, [call.id]))[call.id] if call.recordings else []
            ))
            await self._write_rang(c, call)
            if call.remote_e164:
                # the partial-number search's list of numbers (0014)
                await c.execute(
                    "INSERT INTO call_numbers (e164) VALUES ($1) ON CONFLICT DO NOTHING",
                    call.remote_e164,
                )
            await self._count_call(c, call.id, 1)
        return call

    async def get_call(self, call_id: int) -> Call | None:
        async with self._use() as c:
            rows = await c.fetch(f"SELECT {CALL_COLS} FROM calls WHERE id = $1", call_id)
            found = await self._calls(c, rows)
        return found[0] if found else None

    async def get_call_by_linkedid(
        self, linkedid: str, pbx_link_id: int | AnyLink | None = ANY_LINK
    ) -> Call | None:
        async with self._use() as c:
            if pbx_link_id is ANY_LINK:
                rows = await c.fetch(
                    f"SELECT {CALL_COLS} FROM calls WHERE linkedid = $1 ORDER BY id DESC LIMIT 1",
                    linkedid,
                )
            else:
                rows = await c.fetch(
                    f"SELECT {CALL_COLS} FROM calls "
                    "WHERE COALESCE(pbx_link_id, 0) = $1 AND linkedid = $2",
                    pbx_link_id or 0,
                    linkedid,
                )
            found = await self._calls(c, rows)
        return found[0] if found else None

    @staticmethod
    def _call_filter(flt: CallFilter, args: list[Any], alias: str = "calls") -> list[str]:
        where: list[str] = []
        for column, value, op in (
            ("started_at", flt.since, ">="),
            ("started_at", flt.until, "<"),
            ("direction", flt.direction, "="),
            ("outcome", flt.outcome, "="),
            ("user_id", flt.user_id, "="),
            ("remote_e164", flt.number_e164, "="),
            ("contact_id", flt.contact_id, "="),
        ):
            if value is not None:
                args.append(value)
                where.append(f"{alias}.{column} {op} ${len(args)}")
        return where

    async def list_calls(
        self,
        flt: CallFilter,
        limit: int = 50,
        cursor: CallCursor | None = None,
        user_ids: UserIds = None,
    ) -> list[Call]:
        args: list[Any] = [limit]
        where = self._call_filter(flt, args)
        if user_ids is not None:
            args.append(self._ids_param(user_ids))
            where.append(self._visible_call("calls", len(args), per_row=True))
        if cursor is not None:
            args.extend(cursor)
            where.append(f"(calls.started_at, calls.id) < (${len(args) - 1}, ${len(args)})")
        sql = f"SELECT {CALL_COLS} FROM calls"
        async with self._use_read() as c:
            if flt.number_digits:
                numbers = await self._numbers_containing(c, flt.number_digits)
                if numbers is not None and not numbers:
                    return []
                if numbers is not None:
                    args.append(self._texts_param(numbers))
                    where.append(f"calls.remote_e164 {self._texts_in(len(args))}")
                else:
                    args.append("%" + flt.number_digits + "%")
                    where.append(f"calls.remote_e164 LIKE ${len(args)}")
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY started_at DESC, id DESC LIMIT $1"
            return await self._calls(c, await c.fetch(sql, *args))

    NUMBERS_PER_SEARCH = 200
    """A partial number matching at most this many distinct numbers reads their calls
    through ``calls_remote`` (a few index ranges); more, and the newest calls are walked
    with the pattern instead, where matches are common enough to fill a page quickly."""

    async def _numbers_containing(self, c: Conn, digits: str) -> list[str] | None:
        """The distinct remote numbers of calls (``call_numbers``) with ``digits``
        inside, or None when there are more than ``NUMBERS_PER_SEARCH``."""
        rows = await c.fetch(
            "SELECT e164 FROM call_numbers WHERE e164 LIKE $1 LIMIT $2",
            "%" + digits + "%",
            self.NUMBERS_PER_SEARCH + 1,
        )
        if len(rows) > self.NUMBERS_PER_SEARCH:
            return None
        return [r["e164"] for r in rows]

    async def set_call_contact(
        self, call_id: int, contact_id: int | None, reason: str, at: float
    ) -> bool:
        async with self._use() as c:
            rows = await c.fetch(
                "UPDATE calls SET contact_id = $2, match_reason = $3, updated_at = $4 "
                "WHERE id = $1 RETURNING id",
                call_id,
                contact_id,
                reason,
                at,
            )
        return bool(rows)

    async def count_calls(self) -> int:
        async with self._use() as c:
            return int(await c.fetchval("SELECT COUNT(*) FROM calls"))

    async def answered_call_after(self, e164: str, after: float) -> Call | None:
        async with self._use() as c:
            rows = await c.fetch(
                f"SELECT {CALL_COLS} FROM calls WHERE remote_e164 = $1 AND answered "
                "AND started_at >= $2 ORDER BY started_at, id LIMIT 1",
                e164,
                after,
            )
            found = await self._calls(c, rows)
        return found[0] if found else None

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
        args: list[Any] = [limit]
        where = [
            "calls.direction = 'inbound'",
            f"calls.outcome {MISSED_SQL}",
            *self._call_filter(CallFilter(since=since, until=until, outcome=outcome), args),
        ]
        if line:
            args.append(line)
            where.append(f"calls.did = ${len(args)}")
        if callback:
            # COALESCE keeps the LEFT JOIN a left join (no task = "none"), so the planner
            # still walks the calls index newest first instead of the tasks table.
            args.append(callback)
            where.append(f"COALESCE(t.status, 'none') = ${len(args)}")
        if rep_id is not None:
            args.append(rep_id)
            n = len(args)
            where.append(
                f"(calls.user_id = ${n} OR t.owner_id = ${n} OR t.closed_by_user_id = ${n} "
                "OR EXISTS (SELECT 1 FROM call_rang rr "
                "JOIN user_extensions ue ON ue.extension = rr.extension "
                f"WHERE rr.call_id = calls.id AND ue.user_id = ${n}))"
            )
        if user_ids is not None:
            args.append(self._ids_param(user_ids))
            where.append(self._visible_call("calls", len(args), per_row=True))
        if cursor is not None:
            args.extend(cursor)
            where.append(f"(calls.started_at, calls.id) < (${len(args) - 1}, ${len(args)})")
        if line:
            index = "calls_missed_did"
        elif outcome:
            index = "calls_outcome"
        else:
            index = "calls_missed"
        sql = (
            f"SELECT {_call_cols('calls')}, t.id AS task_id, t.status AS task_status, "
            "t.owner_id AS task_owner_id, t.closed_by_user_id AS task_closed_by, "
            "t.closed_at AS task_closed_at, t.time_to_callback AS task_ttc "
            f"FROM calls {self._index_hint(index)} "
            "LEFT JOIN callback_calls cc ON cc.call_id = calls.id "
            "LEFT JOIN callback_tasks t ON t.id = cc.task_id "
            f"WHERE {' AND '.join(where)} "
            "ORDER BY calls.started_at DESC, calls.id DESC LIMIT $1"
        )
        async with self._use() as c:
            rows = await c.fetch(sql, *args)
            calls = await self._calls(c, rows)
        return [
            MissedCallRow(
                call=call,
                task_id=r["task_id"],
                task_status=r["task_status"],
                owner_id=r["task_owner_id"],
                closed_by_user_id=r["task_closed_by"],
                closed_at=r["task_closed_at"],
                time_to_callback=r["task_ttc"],
            )
            for call, r in zip(calls, rows, strict=True)
        ]

    # -- notes -----------------------------------------------------------------------
    async def add_note(self, note: Note) -> Note:
        async with self._use() as c:
            note.id = await c.fetchval(
                "INSERT INTO notes (call_id, author_id, topic, result, comment, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                note.call_id,
                note.author_id,
                note.topic,
                note.result,
                note.comment,
                note.created_at,
            )
        return note

    async def notes_for_call(self, call_id: int) -> list[Note]:
        async with self._use() as c:
            rows = await c.fetch(
                f"SELECT {NOTE_COLS} FROM notes WHERE call_id = $1 ORDER BY id",
                call_id,
            )
        return [Note(**dict(r)) for r in rows]

    async def get_note(self, note_id: int) -> Note | None:
        async with self._use() as c:
            row = await c.fetchrow(f"SELECT {NOTE_COLS} FROM notes WHERE id = $1", note_id)
        return Note(**dict(row)) if row else None

    async def update_note(self, note: Note) -> None:
        async with self._use() as c:
            await c.execute(
                "UPDATE notes SET topic = $2, result = $3, comment = $4, updated_at = $5, "
                "updated_by = $6 WHERE id = $1",
                note.id,
                note.topic,
                note.result,
                note.comment,
                note.updated_at,
                note.updated_by,
            )

    async def notes_for_contact(self, contact_id: int, limit: int = 500) -> list[Note]:
        async with self._use() as c:
            rows = await c.fetch(
                "SELECT n.id, n.call_id, n.author_id, n.topic, n.result, n.comment, "
                "n.created_at, n.updated_at, n.updated_by FROM notes n "
                "JOIN calls ON calls.id = n.call_id "
                "WHERE calls.contact_id = $1 ORDER BY n.created_at DESC, n.id DESC LIMIT $2",
                contact_id,
                limit,
            )
        return [Note(**dict(r)) for r in rows]

    # -- audit -----------------------------------------------------------------------
    async def append_audit(self, entry: AuditEntry) -> AuditEntry:
        async with self._use() as c:
            entry.id = await c.fetchval(
                "INSERT INTO audit_log (at, actor, action, target, detail) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                entry.at,
                entry.actor,
                entry.action,
                entry.target,
                _dumps(entry.detail),
            )
        return entry

    async def list_audit(
        self,
        action: str | None = None,
        actor: str | None = None,
        since: float | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        args: list[Any] = [limit]
        where: list[str] = []
        for column, value, op in (
            ("action", action, "="),
            ("actor", actor, "="),
            ("at", since, ">="),
            ("id", before_id, "<"),
        ):
            if value is not None:
                args.append(value)
                where.append(f"{column} {op} ${len(args)}")
        sql = "SELECT id, at, actor, action, target, detail FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT $1"
        async with self._use() as c:
            return [_audit_row(r) for r in await c.fetch(sql, *args)]
