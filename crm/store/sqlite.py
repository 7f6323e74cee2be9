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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from .interface import Store
from .migrations import Migration, migrations_for
from .schema_shape import ColumnShape, IndexShape, SchemaShape, parse_index_sql, type_family
from .sql import Conn, Row, SqlStore

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
REPORT_READERS = 4
"""Read connections for the managers' figures: twice the CPUs of a small server, so one
waiting on the disk leaves the CPUs busy; each keeps its own page cache."""
POP_READERS = 3
"""Read connections for the screen pop's reads (``_read``).  A pop reads four times (the
ingest names the caller; the hub reads the contact, its last call, its open callback),
each a trip to a connection's thread that mostly waits for the GIL and the scheduler on
a busy machine, not for SQLite: at 40 new calls a second through one connection those
trips queued for seconds (issue 17, 10x).  Three threads wait side by side."""
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
    """Statements through aiosqlite's thread, each one trip there and back.

    aiosqlite's own cursor API takes three trips for a query (execute, fetch, close);
    on a loaded machine every trip waits for the scheduler, and those waits, not SQLite,
    were most of a page's or a screen pop's time.  Where aiosqlite offers its thread
    (``_execute``), the whole statement runs there in one trip."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._in_thread = getattr(db, "_execute", None)

    async def execute(self, sql: str, *args: Any) -> None:
        if self._in_thread is None:
            await self._db.execute(_q(sql), args)
            return
        await self._in_thread(lambda: self._db._conn.execute(_q(sql), args).close())

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._db.executemany(_q(sql), rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        if self._in_thread is None:
            async with self._db.execute(_q(sql), args) as cur:
                return list(await cur.fetchall())
        rows: list[Row] = await self._in_thread(
            lambda: self._db._conn.execute(_q(sql), args).fetchall()
        )
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        if self._in_thread is None:
            async with self._db.execute(_q(sql), args) as cur:
                return await cur.fetchone()
        row: Row | None = await self._in_thread(lambda: _fetchone(self._db._conn, sql, args))
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]


def _fetchone(db: sqlite3.Connection, sql: str, args: Sequence[Any]) -> Any:
    cur = db.execute(_q(sql), args)
    try:
        return cur.fetchone()
    finally:
        cur.close()


class _ThreadConn:
    """The driver's own ``sqlite3`` connection, used from the database's thread itself
    (``SqliteStore.in_transaction``): the same five calls, finished before they return."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, *args: Any) -> None:
        self._db.execute(_q(sql), args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._db.executemany(_q(sql), rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(self._db.execute(_q(sql), args).fetchall())

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = self._db.execute(_q(sql), args).fetchone()
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = self._db.execute(_q(sql), args).fetchone()
        return None if row is None else row[0]


class Suspended(RuntimeError):
    """Work given to ``in_transaction`` waited for something other than the database."""


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    except RuntimeError as exc:  # asked for the event loop: this thread has none
        if "event loop" in str(exc):
            raise Suspended(f"a transaction's work needed the event loop: {exc}") from exc
        raise
    coro.close()
    raise Suspended("a transaction's work waited for something other than the database")


class SqliteStore(SqlStore):
    dialect = "sqlite"

    def __init__(self, db: aiosqlite.Connection, lock: asyncio.Lock) -> None:
        super().__init__()
        self._db = db
        self._lock = lock
        self._root_conn = _SqliteConn(db)
        self._reader: _ReaderPool | None = None
        """Read-only connections for the screen pop's reads (``_read``, ``POP_READERS``): WAL
        lets it read the last commit while the writer's transaction runs, so a pop never
        waits behind a batch of finished calls being written."""
        self._reports: _ReaderPool | None = None
        """Read-only connections for the managers' figures (``_report``)."""
        self._versions: _ReaderPool | None = None
        """One read-only connection that only asks ``PRAGMA data_version``: the value
        is per connection, and changes when another connection commits, so it must
        always be the same one, and one that never writes."""

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
        if path != ":memory:" and not path.startswith("file:"):
            store._reader = _ReaderPool(path, POP_READERS)
            await store._reader.open_one()
            store._reports = _ReaderPool(path, REPORT_READERS)
            store._versions = _ReaderPool(path, 1)
        if migrate:
            await store.migrate()
        return store

    def _bound(self, conn: Conn) -> SqlStore:
        bound = SqliteStore(self._db, self._lock)
        bound._conn = conn
        bound._figures_state = self._figures_state  # the figures' zone, read once
        return bound

    @asynccontextmanager
    async def _acquire_cm(self) -> AsyncIterator[Conn]:
        async with self._lock:
            yield self._root_conn

    def _acquire(self) -> AbstractAsyncContextManager[Conn]:
        return self._acquire_cm()

    @asynccontextmanager
    async def _read_cm(self) -> AsyncIterator[Conn]:
        assert self._reader is not None
        async with self._reader.use() as conn:
            yield conn

    def _read(self) -> AbstractAsyncContextManager[Conn]:
        return self._acquire_cm() if self._reader is None else self._read_cm()

    def _report(self) -> AbstractAsyncContextManager[Conn]:
        return self._acquire_cm() if self._reports is None else self._reports.use()

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

    async def in_transaction(
        self, work: Callable[[Store], Awaitable[T]], *, read_only: bool = False
    ) -> T:
        """The whole transaction in aiosqlite's thread, in one hop.

        Through aiosqlite every statement is a trip to its thread and back (a fetch is
        two), and on a busy machine each trip waits for the scheduler: a batch of a
        hundred calls is some three thousand trips, and they, not SQLite, were the cost.
        Here ``work`` runs in that thread on the driver's own connection, its coroutine
        driven by hand (``_drive``): the store's methods finish without suspending, so it
        runs through; work that awaits anything else is refused (``Suspended``, rolled
        back).  The event loop keeps running meanwhile: the thread releases the GIL in
        SQLite and every few milliseconds in Python.  Nested in another transaction, or
        without the driver's thread, it is a plain transaction."""
        run_in_thread = getattr(self._db, "_execute", None)
        if self._conn is not None or run_in_thread is None:
            return await super().in_transaction(work, read_only=read_only)

        def run() -> T:
            db: sqlite3.Connection = self._db._conn
            db.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
            try:
                bound = self._open(_ThreadConn(db))
                result = _drive(work(bound))
                _drive(bound._before_commit())
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        async with self._lock:
            return await run_in_thread(run)  # type: ignore[no-any-return]

    async def pop_read(self, work: Callable[[Store], Awaitable[T]]) -> T:
        """One of the pop's readers, ``work`` driven in its thread in one hop
        (``in_transaction``'s way); work that waits for something else than the store
        is run again the ordinary way (it only reads)."""
        if self._conn is not None or self._reader is None:
            return await super().pop_read(work)
        async with self._reader.use() as conn:
            reader = conn._db
            run_in_thread = conn._in_thread
            if run_in_thread is not None:

                def run() -> T:
                    return _drive(work(self._bound(_ThreadConn(reader._conn))))

                try:
                    return await run_in_thread(run)  # type: ignore[no-any-return]
                except Suspended:
                    pass
            return await work(self._bound(conn))

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
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._reports is not None:
            await self._reports.close()
            self._reports = None
        if self._versions is not None:
            await self._versions.close()
            self._versions = None
        await self._db.close()

    async def data_version(self) -> int | None:
        if self._versions is None:
            return None
        async with self._versions.use() as c:
            return int(await c.fetchval("PRAGMA data_version"))

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


class _ReaderPool:
    """Up to ``size`` read-only connections, opened as needed, each with its own thread:
    sqlite3 lets go of the GIL while a statement runs, so several managers' figures use
    every CPU instead of waiting one behind another on a single connection."""

    def __init__(self, path: str, size: int) -> None:
        self._path = path
        self._size = size
        self._idle: list[aiosqlite.Connection] = []
        self._opened: list[aiosqlite.Connection] = []
        self._freed = asyncio.Condition()

    @asynccontextmanager
    async def use(self) -> AsyncIterator[Conn]:
        async with self._freed:
            while not self._idle and len(self._opened) >= self._size:
                await self._freed.wait()
            if self._idle:
                db = self._idle.pop()
            else:
                self._opened.append(db := await _open_reader(self._path))
        try:
            yield _SqliteConn(db)
        finally:
            async with self._freed:
                self._idle.append(db)
                self._freed.notify()

    async def open_one(self) -> None:
        """Open a connection now (at start, not in the first pop's way)."""
        async with self._freed:
            if not self._idle and len(self._opened) < self._size:
                self._opened.append(db := await _open_reader(self._path))
                self._idle.append(db)

    async def close(self) -> None:
        for db in self._opened:
            await db.close()
        self._opened.clear()
        self._idle.clear()


async def _open_reader(path: str) -> aiosqlite.Connection:
    """A read-only connection (``SqliteStore._reader``, ``_ReaderPool``)."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    reader = await aiosqlite.connect(uri, uri=True, isolation_level=None)
    reader.row_factory = aiosqlite.Row
    for pragma in (f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}", "PRAGMA query_only=ON"):
        await reader.execute(pragma)
    return reader


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
