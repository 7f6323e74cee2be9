"""The calls: written by the ingest (``upsert_call``, ``insert_calls``: the row, its
recordings, who it rang, its number, its figures) and read by the pages (one call, the
calls list, the missed-calls audit).

A mixin of ``SqlStore`` (uses ``_use``, ``_use_read``, ``_tx``, ``_ids_in``, ``_ids_param``,
``_texts_in``, ``_texts_param``, ``_visible_call``, ``_index_hint``, and ``_count_call``,
``_count_calls`` of ``sql_figures``); ``_calls`` serves the batch's lookups too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ami_bridge.facts import Transfer

from ..models import MISSED_OUTCOMES, Call, CallFilter, MissedCallRow
from .params import ANY_LINK, AnyLink, CallCursor, UserIds
from .sql_common import MISSED_SQL, TASK_RANG_FROM_CALLS, Row, columns, dumps, loads

if TYPE_CHECKING:
    from .sql import Conn


def _transfers_json(transfers: Sequence[Transfer]) -> str:
    return dumps([{"kind": t.kind, "from": t.from_, "to": t.to, "at": t.at} for t in transfers])


def _transfers(value: Any) -> tuple[Transfer, ...]:
    return tuple(
        Transfer(kind=t["kind"], from_=t.get("from"), to=t.get("to"), at=t["at"])
        for t in loads(value) or []
    )


CALL_COLS = (
    "id, linkedid, direction, caller, caller_raw, caller_name, callee, callee_e164, did, "
    "rang, answered, answered_by, final_agent, transfers, outcome, hangup_by, started_at, "
    "answered_at, ended_at, ring_seconds, talk_seconds, recordings, originate_id, queue, "
    "hangup_cause, complete, uniqueids, remote_e164, contact_id, user_id, match_reason, "
    "pbx_link_id, declined, source"
)


_CALL_NAMES = columns(CALL_COLS)
"""The columns of a call's row, each named as its field of ``Call``."""

_JSON_TUPLES = ("rang", "recordings", "uniqueids", "declined")
"""The call's tuples of plain values, kept as JSON arrays (``transfers``: of objects)."""


def _call_cols(prefix: str) -> str:
    return ", ".join(f"{prefix}.{col}" for col in _CALL_NAMES)


CALL_WRITE_COLS = [*_CALL_NAMES[1:], "ingested_at", "updated_at"]
"""The columns ``upsert_call`` writes, in the order of ``_call_values``."""


def _call_values(call: Call, at: float) -> tuple[Any, ...]:
    """A call's row for ``CALL_WRITE_COLS`` (``at`` is both ingested_at and updated_at):
    its fields by column name, the JSON ones encoded."""
    fields = {name: getattr(call, name) for name in _CALL_NAMES[1:]}
    for name in _JSON_TUPLES:
        fields[name] = dumps(list(fields[name]))
    fields["transfers"] = _transfers_json(call.transfers)
    return (*fields.values(), at, at)


def _call_row(row: Row, recording_ids: list[int]) -> Call:
    """The call of a row of ``CALL_COLS``, the inverse of ``_call_values`` (the
    engines may hand booleans back as integers)."""
    fields = {name: row[name] for name in _CALL_NAMES}
    for name in _JSON_TUPLES:
        fields[name] = tuple(loads(fields[name]) or ())
    fields["transfers"] = _transfers(fields["transfers"])
    fields["answered"] = bool(fields["answered"])
    fields["complete"] = bool(fields["complete"])
    return Call(**fields, recording_ids=recording_ids)


class CallQueries:
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
        ``fresh``: rows just inserted have none.  The callback tasks of calls written
        again get their ``callback_rang`` redone from their calls."""
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
        if not fresh:
            await self._redo_callback_rang(c, [call.id for call in calls if call.id is not None])

    async def _redo_callback_rang(self, c: Conn, call_ids: Sequence[int]) -> None:
        """``callback_rang`` of the tasks these calls belong to, made again from all their
        calls: a call written again may ring fewer extensions than before.  Only calls
        written again pay this; a new call's link adds its own rows."""
        tasks = await self._tasks_of(c, list(call_ids))  # type: ignore[attr-defined]
        if not tasks:
            return
        await c.execute(
            f"DELETE FROM callback_rang WHERE task_id {self._ids_in(1)}", self._ids_param(tasks)
        )
        await c.execute(
            f"{TASK_RANG_FROM_CALLS} WHERE rc.task_id {self._ids_in(1)} "
            "ON CONFLICT (task_id, extension) DO NOTHING",
            self._ids_param(tasks),
        )

    async def upsert_call(self, call: Call, at: float, *, new: bool = False) -> Call:
        """Insert or update by (link, linkedid): two PBXes may report the same linkedid,
        each keeps its own row.  The returned call has its id and recording ids.
        ``new``: the caller found no row of this call in this transaction (a batch's
        lookup): it is inserted without looking first, and written the long way only
        if a row turns up after all (never doubled)."""
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
            await self._write_numbers(c, numbers)
        await self._count_calls(c, [call.id for call in done if call.id is not None], 1)
        return done

    @staticmethod
    async def _write_numbers(c: Conn, numbers: set[str]) -> None:
        """Add the numbers to the partial-number search's list of numbers (0014); a
        transaction gathers its calls' numbers and writes them once, at commit."""
        await c.executemany(
            "INSERT INTO call_numbers (e164) VALUES ($1) ON CONFLICT DO NOTHING",
            [(n,) for n in sorted(numbers)],
        )

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
        """The call of that linkedid on that link (None: written with no link);
        ``ANY_LINK``: on whichever link wrote it last (lookups by a person, tests)."""
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

    def _page_terms(
        self, args: list[Any], cursor: CallCursor | None, user_ids: UserIds
    ) -> list[str]:
        """The terms a page of calls (newest first) adds to its filters, binding their
        values onto ``args``: visibility (``user_ids``) and where the last page ended."""
        where: list[str] = []
        if user_ids is not None:
            args.append(self._ids_param(user_ids))
            where.append(self._visible_call("calls", len(args), per_row=True))
        if cursor is not None:
            args.extend(cursor)
            where.append(f"(calls.started_at, calls.id) < (${len(args) - 1}, ${len(args)})")
        return where

    async def list_calls(
        self,
        flt: CallFilter,
        limit: int = 50,
        cursor: CallCursor | None = None,
        user_ids: UserIds = None,
    ) -> list[Call]:
        """Newest first, keyset-paginated by (started_at, id).  With ``user_ids``, only
        calls whose rep is one of them, or whose callback task is theirs or nobody's."""
        args: list[Any] = [limit]
        where = self._call_filter(flt, args)
        where += self._page_terms(args, cursor, user_ids)
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
        """Link a call to another contact (a user's choice); False if no such call."""
        return await self._set_by_id(
            "calls",
            "contact_id = $2, match_reason = $3, updated_at = $4",
            call_id,
            contact_id,
            reason,
            at,
        )

    async def count_calls(self) -> int:
        async with self._use() as c:
            return int(await c.fetchval("SELECT COUNT(*) FROM calls"))

    async def answered_call_after(
        self, e164: str, after: float, not_ids: Sequence[int] = ()
    ) -> Call | None:
        """The earliest answered call with this remote number started at/after ``after``
        (none of ``not_ids``)."""
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
        """Unanswered inbound calls, newest first, keyset-paginated like ``list_calls``,
        each with its callback task.  Narrowed by ``rep_id`` (their extension rang, or
        the call, its callback task or the callback is theirs), ``line`` (the DID),
        ``outcome``, and ``callback``: ``open``, ``closed`` or ``none`` (no task)."""
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
        where += self._page_terms(args, cursor, user_ids)
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
        async with self._use_report() as c:  # type: ignore[attr-defined]
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
