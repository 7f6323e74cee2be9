"""The server engine: an asyncpg pool, for several web processes and bridges on one
database.  Work on one phone number is serialised with transaction-scoped advisory locks
so concurrent ingesters cannot create twin leads or twin callback tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from ..models import Contact
from .migrations import migrations_for
from .schema_shape import ColumnShape, IndexShape, SchemaShape, parse_index_sql, type_family
from .sql import Conn, Row, SqlStore

_MIGRATE_LOCK = 0x43524D  # "CRM": one migrator at a time per database
CLOSE_TIMEOUT = 5.0
"""Seconds a closing pool waits for its connections before terminating them."""
log = logging.getLogger(__name__)


class _PgConn:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.raw = conn

    async def execute(self, sql: str, *args: Any) -> None:
        await self.raw.execute(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self.raw.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self.raw.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return await self.raw.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.raw.fetchval(sql, *args)


def split_url(url: str) -> tuple[str, str | None]:
    """Take our own ``schema=`` query parameter out of the DSN (asyncpg would send it
    to the server as a setting)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresStore(SqlStore):
    dialect = "postgres"

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__()
        self._pool = pool

    @classmethod
    async def open(
        cls, url: str, migrate: bool = True, min_size: int = 1, max_size: int = 10
    ) -> PostgresStore:
        dsn, schema = split_url(url)
        # JIT compiling spent ~280 ms on a manager's first calls page whose plan runs in
        # under 1 ms: the CRM's queries are short, indexed ones, never worth compiling.
        settings: dict[str, str] = {"application_name": "telephony-crm", "jit": "off"}
        if schema:
            conn = await asyncpg.connect(dsn)
            try:
                exists = await conn.fetchval(
                    "SELECT 1 FROM pg_namespace WHERE nspname = $1", schema
                )
                if not exists:
                    # Identifiers cannot be bound; quote_ident does the escaping server-side.
                    quoted = await conn.fetchval("SELECT quote_ident($1)", schema)
                    # Several processes starting at once race here; the loser is fine.
                    with contextlib.suppress(asyncpg.UniqueViolationError):
                        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            finally:
                await conn.close()
            settings["search_path"] = schema
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, server_settings=settings
        )
        store = cls(pool)
        if migrate:
            await store.migrate()
            await store._warn_without_autovacuum()
        return store

    async def _warn_without_autovacuum(self) -> None:
        """The planner's statistics come from autovacuum; without them the figure
        tables, which grow with every call, keep the sizes they had when last analysed,
        and the managers' pages take plans that were right for an empty table (seconds
        instead of milliseconds).  Said once, at start, where the admin reads."""
        async with self._use() as c:
            on = await c.fetchval("SELECT current_setting('autovacuum')")
        if on != "on":
            log.warning(
                "PostgreSQL's autovacuum is off: run ANALYZE on this database daily "
                "(or 'run.py rebuild-figures'), or the managers' pages will slow down "
                "as calls accumulate"
            )

    def _bound(self, conn: Conn) -> SqlStore:
        bound = PostgresStore(self._pool)
        bound._conn = conn
        bound._figures_state = self._figures_state  # the figures' zone, read once
        return bound

    @asynccontextmanager
    async def _acquire_cm(self) -> AsyncIterator[Conn]:
        async with self._pool.acquire() as conn:
            yield _PgConn(conn)

    def _acquire(self) -> AbstractAsyncContextManager[Conn]:
        return self._acquire_cm()

    @asynccontextmanager
    async def _begin_cm(self) -> AsyncIterator[Conn]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield _PgConn(conn)

    def _begin(self) -> AbstractAsyncContextManager[Conn]:
        return self._begin_cm()

    async def describe_schema(self) -> SchemaShape:
        """The schema as the migrations left it (for the engine-parity test)."""
        shape = SchemaShape()
        async with self._acquire() as c:
            for r in await c.fetch(
                "SELECT table_name, column_name, data_type, is_nullable "
                "FROM information_schema.columns WHERE table_schema = current_schema() "
                "ORDER BY table_name, column_name"
            ):
                column = ColumnShape(r[1], type_family(r[2]), r[3] == "NO")
                shape.tables[r[0]] = (*shape.tables.get(r[0], ()), column)
            for r in await c.fetch(
                "SELECT t.relname, i.relname, x.indisprimary, x.indisunique, "
                "pg_get_indexdef(x.indexrelid), "
                "EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid), "
                "ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k(n, o) "
                "      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n "
                "      ORDER BY k.o) "
                "FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid "
                "JOIN pg_class i ON i.oid = x.indexrelid "
                "WHERE t.relnamespace = current_schema()::regnamespace"
            ):
                table, name, primary, unique, definition, constraint, columns = r
                if primary:
                    shape.primary_keys[table] = tuple(columns)
                elif constraint:
                    shape.implicit_unique.add((table, tuple(columns)))
                else:
                    keys, partial = parse_index_sql(definition)
                    shape.indexes[name] = IndexShape(table, keys, unique, partial)
        for table in shape.tables:
            shape.primary_keys.setdefault(table, ())
        return shape

    def _ids_in(self, n: int) -> str:
        return f"= ANY(${n}::bigint[])"

    def _per_row(self) -> str:
        # An OFFSET keeps the planner from turning EXISTS into a hashed subplan.
        return " OFFSET 0"

    def _ids_param(self, ids: Sequence[int]) -> Any:
        return list(ids)

    def _texts_in(self, n: int) -> str:
        return f"= ANY(${n}::text[])"

    def _texts_param(self, texts: Sequence[str]) -> Any:
        return list(texts)

    def _index_hint(self, index: str) -> str:
        return ""

    def _day(self, epoch_sql: str) -> str:
        return f"to_char(to_timestamp({epoch_sql}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    def _floor_div(self, epoch_sql: str, seconds: int) -> str:
        return f"CAST(FLOOR(({epoch_sql}) / {int(seconds)}) AS BIGINT)"

    def _hour(self, epoch_sql: str) -> str:
        return f"CAST(EXTRACT(HOUR FROM to_timestamp({epoch_sql}) AT TIME ZONE 'UTC') AS INTEGER)"

    def _json_values_join(self, column: str, alias: str) -> str:
        return f"CROSS JOIN LATERAL jsonb_array_elements_text({column}) AS {alias}(value)"

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close the pool gracefully, but never wait longer than ``timeout``.

        ``Pool.close`` waits for every acquired connection to come back; one held by a
        task that never finishes (stuck on a lock, a server that stopped answering)
        would make shutdown hang for ever.  After ``timeout`` the pool is terminated:
        its connections are closed at once and the server rolls back what they had
        open (and drops their advisory locks)."""
        try:
            async with asyncio.timeout(timeout):
                await self._pool.close()
        except TimeoutError:
            log.warning("the database pool did not close within %g s; terminating it", timeout)
            self._pool.terminate()

    async def data_version(self) -> str:
        """The current snapshot (``xmin:xmax:in-progress``): a new one whenever a write
        transaction starts or ends, in any process; a statement run after reading it
        sees every commit it does."""
        async with self._use() as c:
            return str(await c.fetchval("SELECT pg_current_snapshot()::text"))

    async def lock_number(self, e164: str) -> None:
        async with self._use() as c:
            await c.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", e164)

    async def lock_numbers(self, numbers: Iterable[str]) -> None:
        """All in one round trip, still one after the other in sorted order (a volatile
        function in the select list is evaluated after the ORDER BY)."""
        wanted = sorted(set(numbers))
        if not wanted:
            return
        async with self._use() as c:
            await c.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(n, 0)) "
                "FROM unnest($1::text[]) WITH ORDINALITY AS t(n, i) ORDER BY i",
                wanted,
            )

    async def migrate(self) -> list[int]:
        applied: list[int] = []
        async with self._pool.acquire() as conn:
            for mig in migrations_for(self.dialect):
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
                    await conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                        "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                    )
                    done = await conn.fetchval(
                        "SELECT 1 FROM schema_version WHERE version = $1", mig.version
                    )
                    if done:
                        continue
                    await conn.execute(mig.sql)
                    await conn.execute(
                        "INSERT INTO schema_version (version, name, applied_at) "
                        "VALUES ($1, $2, $3)",
                        mig.version,
                        mig.name,
                        time.time(),
                    )
                    applied.append(mig.version)
        return applied

    async def bulk_load_contacts(self, contacts: Sequence[Contact]) -> int:
        """COPY instead of INSERT: a million contacts load in seconds, not minutes."""
        async with self._tx() as c:
            assert isinstance(c, _PgConn)
            raw = c.raw
            await raw.execute("LOCK TABLE contacts IN EXCLUSIVE MODE")
            first = int(await raw.fetchval("SELECT COALESCE(MAX(id), 0) FROM contacts")) + 1
            for offset, contact in enumerate(contacts):
                contact.id = first + offset
            await raw.copy_records_to_table(
                "contacts",
                columns=[
                    "id",
                    "name",
                    "company",
                    "email",
                    "owner_id",
                    "tags",
                    "custom",
                    "lead_status",
                    "lead_source",
                    "lead_created_at",
                    "created_at",
                    "updated_at",
                    "last_contact_at",
                    "erased",
                ],
                records=[(ct.id, *self._contact_args(ct)) for ct in contacts],
            )
            await raw.copy_records_to_table(
                "contact_phones",
                columns=["contact_id", "raw", "e164", "label"],
                records=[(ct.id, p.raw, p.e164, p.label) for ct in contacts for p in ct.phones],
            )
            await raw.execute(
                "SELECT setval(pg_get_serial_sequence('contacts', 'id'), "
                "(SELECT MAX(id) FROM contacts))"
            )
        return len(contacts)
