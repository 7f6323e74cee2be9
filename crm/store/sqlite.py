"""The embedded engine: one aiosqlite connection in WAL mode.

SQLite allows one writer at a time, so the store serialises its own work through an
asyncio lock (a transaction holds it until commit); other processes that open the same
file wait up to the busy timeout rather than failing at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiosqlite

from .migrations import Migration, migrations_for
from .schema_shape import ColumnShape, IndexShape, SchemaShape, parse_index_sql, type_family
from .sql import Conn, Row, SqlStore

BUSY_TIMEOUT_MS = 10_000
FILE_MODE = 0o600
"""The database, its WAL and shared-memory index hold personal data, password hashes and
(encrypted) secrets: readable by the CRM's own user only."""

# aiosqlite logs every statement with its parameters at DEBUG: user data, password hashes
# and the stored AMI secret would reach any log configured at DEBUG.  Its INFO and above
# (errors) still pass.
logging.getLogger("aiosqlite").setLevel(logging.INFO)
_PLACEHOLDER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=1024)
def _q(sql: str) -> str:
    """``$n`` -> ``?n``: SQLite's numbered parameters bind by the same positions."""
    return _PLACEHOLDER.sub(r"?\1", sql)


class _SqliteConn:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, *args: Any) -> None:
        await self._db.execute(_q(sql), args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._db.executemany(_q(sql), rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._db.execute(_q(sql), args) as cur:
            return list(await cur.fetchall())

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._db.execute(_q(sql), args) as cur:
            return await cur.fetchone()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]


class SqliteStore(SqlStore):
    dialect = "sqlite"

    def __init__(self, db: aiosqlite.Connection, lock: asyncio.Lock) -> None:
        super().__init__()
        self._db = db
        self._lock = lock
        self._root_conn = _SqliteConn(db)

    @classmethod
    async def open(cls, path: str, migrate: bool = True) -> SqliteStore:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # created 0600 before SQLite opens it: SQLite gives -wal and -shm the mode
            # of the database file
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, FILE_MODE))
        db = await aiosqlite.connect(path, isolation_level=None)
        db.row_factory = aiosqlite.Row
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
            "PRAGMA synchronous=NORMAL",
        ):
            await db.execute(pragma)
        if path != ":memory:":
            _private(path)
        store = cls(db, asyncio.Lock())
        if migrate:
            await store.migrate()
        return store

    def _bound(self, conn: Conn) -> SqlStore:
        bound = SqliteStore(self._db, self._lock)
        bound._conn = conn
        return bound

    @asynccontextmanager
    async def _acquire_cm(self) -> AsyncIterator[Conn]:
        async with self._lock:
            yield self._root_conn

    def _acquire(self) -> AbstractAsyncContextManager[Conn]:
        return self._acquire_cm()

    @asynccontextmanager
    async def _begin_cm(self) -> AsyncIterator[Conn]:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._root_conn
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            else:
                await self._db.execute("COMMIT")

    def _begin(self) -> AbstractAsyncContextManager[Conn]:
        return self._begin_cm()

    async def describe_schema(self) -> SchemaShape:
        """The schema as the migrations left it (for the engine-parity test)."""
        shape = SchemaShape()
        async with self._acquire() as c:
            tables = await c.fetch(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
            for (table,) in tables:
                info = await c.fetch(f"PRAGMA table_info({table})")
                shape.tables[table] = tuple(
                    sorted(ColumnShape(r[1], type_family(r[2]), bool(r[3] or r[5])) for r in info)
                )
                pk = sorted((r[5], r[1]) for r in info if r[5])
                shape.primary_keys[table] = tuple(name for _, name in pk)
                for index in await c.fetch(f"PRAGMA index_list({table})"):
                    name, unique, origin = index[1], bool(index[2]), index[3]
                    if origin == "pk":
                        continue
                    if origin == "u":
                        cols = await c.fetch(f"PRAGMA index_info({name})")
                        shape.implicit_unique.add((table, tuple(r[2] for r in cols)))
                        continue
                    sql = await c.fetchval(
                        "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = $1", name
                    )
                    keys, partial = parse_index_sql(sql)
                    shape.indexes[name] = IndexShape(table, keys, unique, partial)
        return shape

    async def close(self) -> None:
        await self._db.close()

    async def migrate(self) -> list[int]:
        """Apply every pending migration, each in its own transaction."""
        applied: list[int] = []
        async with self._lock:
            await self._db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            # A migration that rebuilds a table (SQLite cannot drop a column's UNIQUE)
            # must not cascade the DROP to the rows referencing it: foreign keys are off
            # while migrating (a pragma that only works outside a transaction) and
            # checked before each migration commits.
            await self._db.execute("PRAGMA foreign_keys=OFF")
            try:
                await self._apply(migrations_for(self.dialect), applied)
            finally:
                await self._db.execute("PRAGMA foreign_keys=ON")
        return applied

    async def _apply(self, migrations: list[Migration], applied: list[int]) -> None:
        for mig in migrations:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                done = await self._root_conn.fetchval(
                    "SELECT 1 FROM schema_version WHERE version = $1", mig.version
                )
                if done:
                    await self._db.execute("COMMIT")
                    continue
                # executescript would commit first; run the statements one by one.
                for statement in _statements(mig.sql):
                    await self._db.execute(statement)
                broken = await (await self._db.execute("PRAGMA foreign_key_check")).fetchall()
                if broken:
                    raise RuntimeError(f"migration {mig.version} breaks foreign keys: {broken[:5]}")
                await self._root_conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
                    mig.version,
                    mig.name,
                    time.time(),
                )
                await self._db.execute("COMMIT")
                applied.append(mig.version)
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise


def _private(path: str) -> None:
    """Make the database files (an older install's too) readable by their owner only."""
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, FILE_MODE)


def _statements(script: str) -> list[str]:
    """Split a script on the ends of complete statements (trigger bodies included)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
