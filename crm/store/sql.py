"""The SQL both engines share, written once with ``$n`` placeholders.

PostgreSQL takes ``$n`` as is; the SQLite engine rewrites it to ``?n`` (SQLite's numbered
parameters), so values are always bound, never formatted into the text.  The few places
where the dialects differ are small overridable methods (``_ids_in``, ``_icontains``,
``bulk_load_contacts``, ``lock_number``).

The queries are split by domain into ``sql_*.py`` mixins, which ``interface.Store`` is
assembled from; this module holds what they share (``Conn``, the hooks, ``_use``/``_tx``)
and the calls themselves (``upsert_call``, ``list_calls``, ``missed_calls``...).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from ami_bridge.facts import Transfer

from ..models import MISSED_OUTCOMES, Call, CallFilter, MissedCallRow
from .interface import Store
from .params import ANY_LINK, AnyLink, CallCursor, UserIds
from .sql_call_batch import CallBatchQueries
from .sql_common import MISSED_SQL, Row

# The calls' code below spells these with an underscore, as when they were defined here.
from .sql_common import dumps as _dumps
from .sql_common import loads as _loads
from .sql_figures import FigureTally

T = TypeVar("T")


class Conn(Protocol):
    """The four things the shared SQL needs from a driver connection."""

    async def execute(self, sql: str, *args: Any) -> None: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...


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


def _call_cols(prefix: str) -> str:
    return ", ".join(f"{prefix}.{c.strip()}" for c in CALL_COLS.split(","))


CALL_WRITE_COLS = [*[x.strip() for x in CALL_COLS.split(",")][1:], "ingested_at", "updated_at"]
"""The columns ``upsert_call`` writes, in the order of ``_call_values``."""


def _call_values(call: Call, at: float) -> tuple[Any, ...]:
    """A call's row for ``CALL_WRITE_COLS`` (``at`` is both ingested_at and updated_at)."""
    return (
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
        at,
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


class SqlStore(CallBatchQueries, Store):
    """``Store`` (the query mixins) plus what they all lean on: connection handling, the
    dialect hooks, transactions, and the calls.  ``_conn`` is set on stores handed out by
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
            # the partial-number search's list of numbers (0014)
            await self._conn.executemany(
                "INSERT INTO call_numbers (e164) VALUES ($1) ON CONFLICT DO NOTHING",
                [(n,) for n in sorted(self._new_numbers)],
            )
            self._new_numbers.clear()

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

    async def _write_rang(self, c: Conn, calls: Sequence[Call], fresh: bool = False) -> None:
        """Replace the calls' ``call_rang`` rows (who they rang, for the reports);
        ``fresh``: rows just inserted have none."""
        if not fresh:
            for call in calls:
                await c.execute("DELETE FROM call_rang WHERE call_id = $1", call.id)
        await c.executemany(
            "INSERT INTO call_rang (call_id, extension, started_at, missed) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (call_id, extension) DO NOTHING",
            [
                (
                    call.id,
                    ext,
                    call.started_at,
                    call.direction == "inbound" and call.outcome in MISSED_OUTCOMES,
                )
                for call in calls
                for ext in dict.fromkeys(call.rang)
                if ext is not None
            ],
        )

    async def upsert_call(self, call: Call, at: float, *, new: bool = False) -> Call:
        """``new``: the caller found no row of this call in this transaction (a batch's
        lookup): it is inserted without looking first, and written the long way only
        if a row turns up after all."""
        if new:
            return (await self.insert_calls([call], at))[0]
        async with self._tx() as c:
            call = replace(call, id=await self._update_call(c, call, _call_values(call, at)))
            return (await self._call_details(c, [call], fresh=False))[0]

    INSERT_ROWS = 200
    """Calls per INSERT statement at most (35 parameters each: SQLite's limit is 32,766)."""

    async def insert_calls(self, calls: Sequence[Call], at: float) -> list[Call]:
        """Write calls the caller found no row of in this transaction (a batch's new
        calls): one INSERT per ``INSERT_ROWS`` calls, then their recordings, rang rows
        and numbers in one statement each.  A call whose row turns up after all (another
        writer was faster) is updated the long way, never doubled.  The calls come back
        in order, with their ids."""
        width = len(CALL_WRITE_COLS)
        out: list[Call] = []
        fresh: dict[int, int] = {}
        """Index in ``out`` of each call just inserted, by its id."""
        async with self._tx() as c:
            for first in range(0, len(calls), self.INSERT_ROWS):
                chunk = calls[first : first + self.INSERT_ROWS]
                rows = ", ".join(
                    "(" + ", ".join(f"${n * width + i}" for i in range(1, width + 1)) + ")"
                    for n in range(len(chunk))
                )
                ids = {
                    (r["pbx_link_id"] or 0, r["linkedid"]): r["id"]
                    for r in await c.fetch(
                        f"INSERT INTO calls ({', '.join(CALL_WRITE_COLS)}) VALUES {rows} "
                        "ON CONFLICT (COALESCE(pbx_link_id, 0), linkedid) DO NOTHING "
                        "RETURNING id, pbx_link_id, linkedid",
                        *[v for call in chunk for v in _call_values(call, at)],
                    )
                }
                for call in chunk:
                    new_id = ids.pop((call.pbx_link_id or 0, call.linkedid), None)
                    if new_id is not None:
                        fresh[new_id] = len(out)  # no recordings, rang rows or figures yet
                        out.append(replace(call, id=new_id))
                    else:
                        found = await self._update_call(c, call, _call_values(call, at))
                        done = await self._call_details(c, [replace(call, id=found)], False)
                        out.append(done[0])
            for call in await self._call_details(c, [out[i] for i in fresh.values()], True):
                assert call.id is not None
                out[fresh[call.id]] = call
        return out

    async def _call_details(self, c: Conn, calls: Sequence[Call], fresh: bool) -> list[Call]:
        """What goes with the calls' rows (they have their ids): recordings, who they
        rang, their numbers, their figures; the calls with their recording ids.
        ``fresh``: rows just inserted (nothing of theirs to replace)."""
        if not calls:
            return []
        # A file is as old as the call that finished it (retention counts from there).
        await c.executemany(
            "INSERT INTO call_recordings (call_id, path, created_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (call_id, path) DO NOTHING",
            [(call.id, path, call.ended_at) for call in calls for path in call.recordings],
        )
        with_files = [call.id for call in calls if call.recordings and call.id is not None]
        files = await self._recording_ids(c, with_files)
        # No files: none left (one round trip less per call).
        done = [replace(call, recording_ids=files.get(call.id or 0, [])) for call in calls]
        await self._write_rang(c, done, fresh=fresh)
        numbers = {call.remote_e164 for call in done if call.remote_e164}
        if self._new_numbers is not None:
            self._new_numbers.update(numbers)  # written at commit
        else:
            # the partial-number search's list of numbers (0014)
            await c.executemany(
                "INSERT INTO call_numbers (e164) VALUES ($1) ON CONFLICT DO NOTHING",
                [(n,) for n in sorted(numbers)],
            )
        await self._count_calls(c, [call.id for call in done if call.id is not None], 1)
        return done

    async def _update_call(self, c: Conn, call: Call, values: tuple[Any, ...]) -> int:
        """The upsert of a call that may exist: its figures, row and stale recordings;
        its id."""
        cols = CALL_WRITE_COLS
        placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        key = ("linkedid", "pbx_link_id", "ingested_at")
        updates = ", ".join(f"{col} = excluded.{col}" for col in cols if col not in key)
        # The figures lose the call as it stood and gain it as it stands (sql_figures).
        before = await c.fetchval(
            "SELECT id FROM calls WHERE COALESCE(pbx_link_id, 0) = $1 AND linkedid = $2",
            call.pbx_link_id or 0,
            call.linkedid,
        )
        if before is not None:
            await self._count_call(c, before, -1)
        # Keyed by (link, linkedid): the unique index ``calls_link_linkedid`` (0006).
        call_id = int(
            await c.fetchval(
                f"INSERT INTO calls ({', '.join(cols)}) VALUES ({placeholders}) "
                f"ON CONFLICT (COALESCE(pbx_link_id, 0), linkedid) DO UPDATE SET {updates} "
                "RETURNING id",
                *values,
            )
        )
        await c.execute(
            f"DELETE FROM call_recordings WHERE call_id = $1 AND NOT path {self._texts_in(2)}",
            call_id,
            self._texts_param(call.recordings),
        )
        return call_id

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

    async def answered_call_after(
        self, e164: str, after: float, not_ids: Sequence[int] = ()
    ) -> Call | None:
        async with self._use() as c:
            rows = await c.fetch(
                f"SELECT {CALL_COLS} FROM calls WHERE remote_e164 = $1 AND answered "
                f"AND started_at >= $2 AND NOT id {self._ids_in(3)} "
                "ORDER BY started_at, id LIMIT 1",
                e164,
                after,
                self._ids_param(not_ids),
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
        # the audit's page of rows beside its figures: on the managers' readers (SQLite),
        # not queued behind every write and other read of the one main connection
        async with self._use_report() as c:
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
