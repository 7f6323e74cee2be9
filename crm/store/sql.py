"""The SQL both engines share, written once with ``$n`` placeholders.

PostgreSQL takes ``$n`` as is; the SQLite engine rewrites it to ``?n`` (SQLite's numbered
parameters), so values are always bound, never formatted into the text.  The few places
where the dialects differ are small overridable methods (``_ids_in``, ``_icontains``,
``bulk_load_contacts``, ``lock_number``).

The queries are split by domain into ``sql_*.py`` mixins, which ``interface.Store`` is
assembled from; this module holds what they share (``Conn``, the hooks, ``_use``/``_tx``,
transactions).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

from .interface import Store
from .sql_common import Row, columns, dumps
from .sql_figures import FigureTally

T = TypeVar("T")


class Conn(Protocol):
    """The four things the shared SQL needs from a driver connection."""

    async def execute(self, sql: str, *args: Any) -> None: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...


class SqlStore(Store):
    """``Store`` (the query mixins) plus what they all lean on: connection handling, the
    dialect hooks and transactions.  ``_conn`` is set on stores handed out by
    ``transaction()``; the root store borrows a connection per call."""

    dialect = "sql"

    def __init__(self) -> None:
        self._conn: Conn | None = None
        self._figures_state: dict[str, Any] = {}
        self._new_numbers: set[str] | None = None
        """Set in a transaction (``_open``): calls' numbers for ``call_numbers``."""

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
        return dumps(list(ids))

    def _texts_in(self, n: int) -> str:
        return f"IN (SELECT value FROM json_each(${n}))"

    def _texts_param(self, texts: Sequence[str]) -> Any:
        return dumps(list(texts))

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
    async def _on(
        self, opener: Callable[[], AbstractAsyncContextManager[Conn]]
    ) -> AsyncIterator[Conn]:
        """Inside a transaction, its connection; on the root, one from ``opener``."""
        if self._conn is not None:
            yield self._conn
        else:
            async with opener() as conn:
                yield conn

    def _use(self) -> AbstractAsyncContextManager[Conn]:
        return self._on(self._acquire)

    def _use_read(self) -> AbstractAsyncContextManager[Conn]:
        """``_use`` for reads on the screen pop's path (``_read``)."""
        return self._on(self._read)

    def _report(self) -> AbstractAsyncContextManager[Conn]:
        """A connection for the managers' figures (seconds of SQL at millions of calls
        under many managers): the engine's pool of readers where it keeps one apart
        (SQLite), so they run side by side and neither the writer nor the screen pop's
        reader waits behind them; else ``_acquire``."""
        return self._acquire()

    def _use_report(self) -> AbstractAsyncContextManager[Conn]:
        """``_use`` for the managers' figures (``_report``)."""
        return self._on(self._report)

    def _tx(self) -> AbstractAsyncContextManager[Conn]:
        """Several statements that must stay together even when called on the root."""
        return self._on(self._begin)

    async def _updated(self, sql: str, *args: Any) -> bool:
        """Run an ``UPDATE ... RETURNING id``: True when it changed a row."""
        async with self._use() as c:
            return bool(await c.fetch(sql, *args))

    async def _set_by_id(
        self, table: str, assignments: str, row_id: int, *args: Any, only: str = ""
    ) -> bool:
        """``UPDATE table SET assignments`` on the row ``row_id`` (``$1``; ``args`` bind
        from ``$2``), if it also meets ``only``: True when it changed.  One home for
        the many "change this one row, say whether it was there" writes."""
        where = f"id = $1 AND {only}" if only else "id = $1"
        return await self._updated(
            f"UPDATE {table} SET {assignments} WHERE {where} RETURNING id", row_id, *args
        )

    async def _inserted(self, table: str, obj: Any, cols: str, **encoded: Any) -> int:
        """INSERT ``obj``'s attributes ``cols`` as a new row of ``table``: its new id.
        ``encoded`` gives a column's value where it is not the attribute as it is (JSON
        text); one home for the rows that are appended whole (notes, the audit log)."""
        names = columns(cols)
        row = [encoded[n] if n in encoded else getattr(obj, n) for n in names]
        marks = ", ".join(f"${i}" for i in range(1, len(names) + 1))
        async with self._use() as c:
            return int(
                await c.fetchval(
                    f"INSERT INTO {table} ({cols}) VALUES ({marks}) RETURNING id", *row
                )
            )

    def transaction(self) -> AbstractAsyncContextManager[Store]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Store]:
        if self._conn is not None:
            yield self
            return
        async with self._begin() as conn:
            bound = self._open(conn)
            yield bound
            await bound._before_commit()

    def _open(self, conn: Conn) -> SqlStore:
        """A store bound to a transaction just begun on ``conn``, with the writes it
        gathers until its commit (figures, ``call_numbers``)."""
        bound = self._bound(conn)
        bound._tally = FigureTally()
        bound._new_numbers = set()
        return bound

    async def _before_commit(self) -> None:
        """What a transaction gathered, written once (the store ``_open`` made)."""
        assert self._conn is not None
        await self._flush_figures(self._conn)
        if self._new_numbers:
            await self._write_numbers(self._conn, self._new_numbers)
            self._new_numbers.clear()

    async def in_transaction(
        self, work: Callable[[Store], Awaitable[T]], *, read_only: bool = False
    ) -> T:
        if read_only and self._conn is None:
            async with self._acquire() as conn:
                return await work(self._bound(conn))
        async with self.transaction() as tx:
            return await work(tx)

    async def pop_read(self, work: Callable[[Store], Awaitable[T]]) -> T:
        if self._conn is not None:
            return await work(self)
        async with self._read() as conn:
            return await work(self._bound(conn))

    async def schema_version(self) -> int:
        async with self._use() as c:
            return int(await c.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    async def lock_number(self, e164: str) -> None:
        return None
