"""Figures kept up to date by every write that changes what the managers' pages count,
so the missed-calls audit and the reports add up a month of daily rows rather than read
a month of calls (``call_figures``, ``hour_figures``, ``rang_figures``, migration 0017).

Why days of one time zone: the pages ask for whole days of the display zone, and a day
is the coarsest bucket that still answers them (hours would be as many rows as calls,
once split by rep, line and outcome).  The zone is stored (``figures_zone``); a period
that is not whole days of it at one offset (another zone, a daylight-saving change inside
the period) is answered from the calls by ``sql_reports``, so the numbers are the same
either way.  ``rebuild_figures(zone)`` (``run.py rebuild-figures``) recounts them in the
install's zone.

Why a count per call, not a recount per day: each write removes the call's contribution
as it stood and adds it as it stands (``_count_call`` with -1 then +1), inside the
call's own transaction, so figures and calls commit or roll back together.  What moves a
call's contribution: its row (re-ingest), its callback link and that task's owner (a
manager's visibility rule reads the task owner), and who it rang.  Erasure and relinking
change none of these and leave the figures alone.

Why a tally per transaction: a batch of finished calls (``Ingest.record_many``) touches
each call several times (its row, its callback link, the task's owner), and three
statements per touch were a third of a batch's statements.  In a transaction the store
handed out, the first touch of a call removes its contribution as it stood (read in
Python), and the commit adds every touched call as it stands, summed per figure row: one
read and three ``executemany`` per transaction (``FigureTally``, ``_flush_figures``).  The
sum is the same as touch by touch, since each -1/+1 pair telescopes.

A mixin of ``SqlStore`` (``_use``, ``_tx``, ``_floor_div``, ``_ids_in``, ``_ids_param``).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from .sql_common import MISSED_SQL

_KEY = "day, direction, outcome, did, user_id, task_owner"
_VISIBILITY = (
    "COALESCE(calls.user_id, 0), "
    "CASE WHEN cc.task_id IS NULL THEN -1 ELSE COALESCE(t.owner_id, 0) END"
)
_CALL_TASK = (
    "FROM calls LEFT JOIN callback_calls cc ON cc.call_id = calls.id "
    "LEFT JOIN callback_tasks t ON t.id = cc.task_id"
)


# One row per callback task with calls: its first and last call, the reps they had (one,
# or -1 for several, or when a call is not a missed inbound one), its owner and, when it
# has none, the extensions its calls rang (``rang_text``: who may see it, ``_visible_task``).
_CALLBACK_ROW = (
    "SELECT t.id AS task_id, COALESCE(t.owner_id, 0) AS owner, "
    "t.time_to_callback AS ttc, MIN(calls.started_at) AS first_at, "
    "MAX(calls.started_at) AS last_at, "
    "CASE WHEN COUNT(DISTINCT COALESCE(calls.user_id, 0)) = 1 AND MIN(CASE WHEN "
    f"calls.direction = 'inbound' AND calls.outcome {MISSED_SQL} THEN 1 ELSE 0 END) = 1 "
    "THEN MIN(COALESCE(calls.user_id, 0)) ELSE -1 END AS rep "
    "FROM callback_tasks t JOIN callback_calls cc ON cc.task_id = t.id "
    "JOIN calls ON calls.id = cc.call_id"
)
_CALLBACK_INSERT = (
    "INSERT INTO callback_figures (task_id, day, last_day, task_owner, user_id, "
    "time_to_callback, rang) VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
# The calls of the tasks the audit checks call by call (spread, or nobody's), copied with
# their ``callback_figures`` row: ``callback_figure_calls`` (migration 0019).
_CALLBACK_CALLS = (
    "INSERT INTO callback_figure_calls (task_id, call_id, started_at, direction, outcome, "
    "did, user_id) SELECT cc.task_id, calls.id, calls.started_at, calls.direction, "
    "calls.outcome, calls.did, calls.user_id FROM callback_figures f "
    "JOIN callback_calls cc ON cc.task_id = f.task_id JOIN calls ON calls.id = cc.call_id "
    "WHERE (f.task_owner = 0 OR f.last_day > f.day OR f.user_id < 0)"
)
# The extensions an unowned task's calls rang, as ``callback_rang`` (0022) keeps them with
# the task's links: not joined again from all its calls at every recount of the task.
_TASK_RANG = (
    "SELECT r.task_id AS task_id, r.extension AS extension FROM callback_tasks t "
    "JOIN callback_rang r ON r.task_id = t.id WHERE t.owner_id IS NULL"
)


CALLBACK_BOUNDS = (0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 420.0, 600.0, 900.0, 1200.0,
                   1500.0, 1800.0, 2100.0, 2400.0, 2700.0, 3000.0, 3600.0, 4200.0, 4800.0,
                   5400.0, 6000.0, 7200.0, 9000.0, 10800.0, 14400.0, 21600.0, 28800.0,
                   43200.0, 86400.0, 172800.0, 345600.0, 604800.0)  # fmt: skip
"""Where the buckets of time to callback of ``callback_buckets`` (migration 0021) start:
bucket i holds [CALLBACK_BOUNDS[i-1], CALLBACK_BOUNDS[i]) (0: below 0, the last: from the
last bound on).  Minutes where most tasks are, wider after: a team's day has a few
hundred tasks, so buckets must be few to add rows up; the one holding the median is read
task by task, so no bucket may hold too many of them."""
_FAR = 1e300


def callback_bucket(ttc: float | None) -> int:
    """The ``callback_buckets`` bucket of a time to callback (-1: not returned)."""
    return -1 if ttc is None else bisect.bisect_right(CALLBACK_BOUNDS, ttc)


def bucket_range(b: int) -> tuple[float, float]:
    """[low, high) of time to callback of bucket ``b`` (>= 0)."""
    low = CALLBACK_BOUNDS[b - 1] if b > 0 else -_FAR
    return low, CALLBACK_BOUNDS[b] if b < len(CALLBACK_BOUNDS) else _FAR


_BUCKET_KEY = "task_owner, day, user_id, bucket"


def rang_text(extensions: Iterable[str]) -> str:
    """``,201,205,``: each extension between commas, so ``,201,`` finds one ('' for none)."""
    found = sorted(set(extensions))
    return "," + ",".join(found) + "," if found else ""


def _callback_values(zone: ZoneInfo, r: Any, rang: Iterable[str]) -> tuple[Any, ...]:
    ttc = None if r["ttc"] is None else float(r["ttc"])
    return (r["task_id"], bucket(zone, float(r["first_at"]))[0],
            bucket(zone, float(r["last_at"]))[0], int(r["owner"]), int(r["rep"]), ttc,
            rang_text(rang) if int(r["owner"]) == 0 else "")  # fmt: skip


def offset_at(zone: ZoneInfo, at: float) -> float:
    """The zone's offset from UTC, in seconds, at the POSIX time ``at``."""
    delta = dt.datetime.fromtimestamp(at, dt.UTC).astimezone(zone).utcoffset()
    return delta.total_seconds() if delta else 0.0


def bucket(zone: ZoneInfo, at: float) -> tuple[int, int]:
    """(day number since 1970-01-01, hour 0-23) of ``at`` in ``zone``: the same
    arithmetic as the reports' ``floor((t + offset) / 86400)``."""
    local = at + offset_at(zone, at)
    return int(local // 86400), int(local // 3600) % 24


class FigureTally:
    """The figure changes of one transaction, summed per figure row until its commit."""

    def __init__(self) -> None:
        self.touched: set[int] = set()
        """Calls whose contribution as it stood is already removed."""
        self.days: defaultdict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0, 0.0])
        self.hours: defaultdict[tuple[int, int, int, int], int] = defaultdict(int)
        self.rang: defaultdict[tuple[int, str], int] = defaultdict(int)

    def clear(self) -> None:
        self.touched.clear()
        self.days.clear()
        self.hours.clear()
        self.rang.clear()


FIGURE_TABLES = (
    "call_figures",
    "hour_figures",
    "rang_figures",
    "callback_figure_calls",
    "callback_figure_rang",
    "callback_figures",
    "callback_buckets",
)
"""What ``rebuild_figures`` recounts from the calls."""


class FigureQueries:
    _figures_state: dict[str, Any]
    """Shared by the root store and the stores its transactions hand out."""
    _tally: FigureTally | None = None
    """Set on the stores transactions hand out: their figure changes wait for the commit."""

    async def _zone(self, c: Any) -> ZoneInfo:
        """The zone the stored figures count in (read once per process; a rebuild in
        another zone needs the other processes restarted)."""
        zone = self._figures_state.get("zone")
        if zone is None:
            row = await c.fetchrow("SELECT zone, callbacks_counted FROM figures_zone WHERE id = 1")
            zone = self._figures_state["zone"] = ZoneInfo(row["zone"] if row else "UTC")
            self._figures_state["callbacks"] = bool(row and row["callbacks_counted"])
        return zone

    async def callback_days(
        self, c: Any, since: float, until: float
    ) -> tuple[int, int, float] | None:
        """``figure_days`` for ``callback_figures``: None too while they are not counted
        in the figures' zone (migrated in another zone, until a rebuild)."""
        await self._zone(c)
        if not self._figures_state.get("callbacks"):
            return None
        return await self.figure_days(c, since, until)

    async def figure_days(
        self, c: Any, since: float, until: float
    ) -> tuple[int, int, float] | None:
        """The figures' days [first, end) covering exactly [since, until) and the one
        offset they have there; None when the figures cannot answer that period."""
        zone = await self._zone(c)
        offset = offset_at(zone, since)
        if (since + offset) % 86400 or (until + offset) % 86400:
            return None
        midnight = since
        while midnight < until:
            if offset_at(zone, midnight) != offset:
                return None
            midnight += 86400
        if offset_at(zone, until - 1) != offset:
            return None
        return int((since + offset) // 86400), int((until + offset) // 86400), offset

    async def _count_call(self, c: Any, call_id: int, sign: int) -> None:
        """Add (+1) or remove (-1) one call's contribution to the figures: call it with -1
        before changing the call, its callback task or who it rang, +1 after, in the same
        transaction."""
        await self._count_calls(c, [call_id], sign)

    async def _count_callbacks(self, c: Any, task_ids: list[int]) -> None:
        """Write these callback tasks' rows of ``callback_figures`` as they stand now (the
        audit's tasks, time to callback and median): recounted whole, not added to, since
        whether a task is "spread" depends on all its calls.  Called once the
        touched calls stand as they will commit (``_count_calls``, ``_flush_figures``) and
        after a task's time to callback changes."""
        if not task_ids:
            return
        ids_in = self._ids_in(1)  # type: ignore[attr-defined]
        ids = self._ids_param(task_ids)  # type: ignore[attr-defined]
        # the rows as they stood leave their buckets, as they stand now join theirs
        gone: Counter[tuple[Any, ...]] = Counter()
        for r in await c.fetch(
            "SELECT task_owner, day, user_id, time_to_callback AS ttc "
            f"FROM callback_figures WHERE task_id {ids_in} AND last_day = day AND user_id >= 0",
            ids,
        ):
            ttc = None if r["ttc"] is None else float(r["ttc"])
            key = (int(r["task_owner"]), int(r["day"]), int(r["user_id"]))
            gone[(*key, callback_bucket(ttc))] += 1
        await c.execute(f"DELETE FROM callback_figure_calls WHERE task_id {ids_in}", ids)
        await c.execute(f"DELETE FROM callback_figure_rang WHERE task_id {ids_in}", ids)
        await c.execute(f"DELETE FROM callback_figures WHERE task_id {ids_in}", ids)
        await self._write_callbacks(c, await self._zone(c), ids_in, ids, gone=gone)

    @staticmethod
    async def _write_callbacks(
        c: Any,
        zone: ZoneInfo,
        ids_in: str | None = None,
        *args: Any,
        gone: Counter[tuple[Any, ...]] | None = None,
    ) -> None:
        """Insert the ``callback_figures`` rows (and their ``callback_figure_calls``) of
        the tasks whose id is ``ids_in`` (bound to ``args``; None: every task, the
        rebuild): one read, one ``executemany`` and one copy, however many tasks.  Their
        ``callback_buckets`` counts are added, less the tasks' rows as they stood
        (``gone``, per bucket row), in one ``executemany``; and the unowned tasks' rows
        of ``callback_figure_rang``, one per extension they rang."""
        task, copied = (f"t.id {ids_in}", f"f.task_id {ids_in}") if ids_in else ("1 = 1",) * 2
        rung: dict[int, list[str]] = defaultdict(list)
        for r in await c.fetch(f"{_TASK_RANG} AND {task}", *args):
            rung[r["task_id"]].append(r["extension"])
        rows = [
            _callback_values(zone, r, rung.get(r["task_id"], ()))
            for r in await c.fetch(f"{_CALLBACK_ROW} WHERE {task} GROUP BY 1, 2, 3", *args)
        ]
        await c.executemany(_CALLBACK_INSERT, rows)
        await c.execute(f"{_CALLBACK_CALLS} AND {copied}", *args)
        counts: Counter[tuple[Any, ...]] = Counter()
        for _, day, last_day, owner, rep, ttc, _ in rows:
            if last_day == day and rep >= 0:  # counted from its row, not spread
                counts[(owner, day, rep, callback_bucket(ttc))] += 1
        counts.subtract(gone or {})
        await c.executemany(
            "INSERT INTO callback_figure_rang (extension, last_day, task_id, day, user_id, "
            "bucket) VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (ext, last_day, task_id, day, rep, callback_bucket(ttc))
                for task_id, day, last_day, owner, rep, ttc, _ in rows
                if owner == 0
                for ext in sorted(set(rung.get(task_id, ())))
            ],
        )
        await c.executemany(
            f"INSERT INTO callback_buckets ({_BUCKET_KEY}, tasks) VALUES ($1, $2, $3, $4, $5) "
            f"ON CONFLICT ({_BUCKET_KEY}) DO UPDATE SET "
            "tasks = callback_buckets.tasks + excluded.tasks",
            [(*k, n) for k, n in sorted(counts.items()) if n],
        )

    async def _count_task_calls(self, c: Any, task_ids: list[int], sign: int) -> None:
        """The same for every call linked to these callback tasks (their owner changes)."""
        if not task_ids:
            return
        rows = await c.fetch(
            f"SELECT call_id FROM callback_calls WHERE task_id {self._ids_in(1)}",  # type: ignore[attr-defined]
            self._ids_param(task_ids),  # type: ignore[attr-defined]
        )
        await self._count_calls(c, [r["call_id"] for r in rows], sign)

    async def _count_calls(self, c: Any, call_ids: list[int], sign: int) -> None:
        """``_count_call`` for several calls.  In a transaction with a tally (every
        transaction a store hands out) only the first touch of a call counts: its
        contribution as it stood is removed now (-1), as it stands at commit is added
        then (``_flush_figures``); outside one, now."""
        tally = self._tally
        if tally is None:
            now = FigureTally()
            await self._tally_calls(c, now, call_ids, sign)
            await self._write_tally(c, now)
            if sign > 0:
                await self._count_callbacks(c, await self._tasks_of(c, call_ids))
            return
        first = [i for i in dict.fromkeys(call_ids) if i not in tally.touched]
        tally.touched.update(first)
        if sign < 0:
            await self._tally_calls(c, tally, first, -1)
        # +1 on a call not touched before: it counted nothing yet (a new row), and its
        # contribution as it stands at commit is added then.

    async def _flush_figures(self, c: Any) -> None:
        """Add the touched calls as they stand and write the tally (before a commit)."""
        tally = self._tally
        if tally is None or not tally.touched:
            return
        touched = sorted(tally.touched)
        await self._tally_calls(c, tally, touched, 1)
        await self._write_tally(c, tally)
        tally.clear()
        await self._count_callbacks(c, await self._tasks_of(c, touched))

    async def _tasks_of(self, c: Any, call_ids: list[int]) -> list[int]:
        """The callback tasks these calls are linked to."""
        if not call_ids:
            return []
        rows = await c.fetch(
            f"SELECT DISTINCT task_id FROM callback_calls WHERE call_id {self._ids_in(1)}",  # type: ignore[attr-defined]
            self._ids_param(call_ids),  # type: ignore[attr-defined]
        )
        return sorted(r["task_id"] for r in rows)

    async def _tally_calls(
        self, c: Any, tally: FigureTally, call_ids: list[int], sign: int
    ) -> None:
        """Add ``sign`` times these calls' contributions, as the database has them now,
        to ``tally`` (the same grouping as ``_recount``: one call may count once per
        callback task it is linked to)."""
        if not call_ids:
            return
        zone = await self._zone(c)
        ids = self._ids_param(call_ids)  # type: ignore[attr-defined]
        ids_in = self._ids_in(1)  # type: ignore[attr-defined]
        days: dict[int, int] = {}
        for r in await c.fetch(
            "SELECT calls.id AS id, calls.started_at AS at, calls.direction AS direction, "
            "calls.outcome AS outcome, COALESCE(calls.did, '') AS did, "
            "COALESCE(calls.user_id, 0) AS u, "
            "CASE WHEN cc.task_id IS NULL THEN -1 ELSE COALESCE(t.owner_id, 0) END AS o, "
            "CASE WHEN calls.answered THEN 1 ELSE 0 END AS a, "
            f"COALESCE(calls.talk_seconds, 0) AS talk {_CALL_TASK} WHERE calls.id {ids_in}",
            ids,
        ):
            day, hour = bucket(zone, float(r["at"]))
            days[r["id"]] = day
            acc = tally.days[(day, r["direction"], r["outcome"], r["did"], r["u"], r["o"])]
            acc[0] += sign
            acc[1] += sign * int(r["a"])
            acc[2] += sign * float(r["talk"])
            tally.hours[(day, hour, int(r["u"]), int(r["o"]))] += sign
        if not days:
            return
        for r in await c.fetch(
            f"SELECT call_id, extension FROM call_rang WHERE call_id {ids_in} AND missed", ids
        ):
            if r["call_id"] in days:
                tally.rang[(days[r["call_id"]], r["extension"])] += sign

    @staticmethod
    async def _write_tally(c: Any, tally: FigureTally) -> None:
        """Add the tally's non-zero changes to the stored figures: one statement per table."""
        await c.executemany(
            f"INSERT INTO call_figures ({_KEY}, calls, answered, talk_seconds) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            f"ON CONFLICT ({_KEY}) DO UPDATE SET "
            "calls = call_figures.calls + excluded.calls, "
            "answered = call_figures.answered + excluded.answered, "
            "talk_seconds = call_figures.talk_seconds + excluded.talk_seconds",
            [(*k, v[0], v[1], float(v[2])) for k, v in tally.days.items() if any(v)],
        )
        await c.executemany(
            "INSERT INTO hour_figures (day, hour, user_id, task_owner, calls) "
            "VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (day, hour, user_id, task_owner) DO UPDATE SET "
            "calls = hour_figures.calls + excluded.calls",
            [(*k, v) for k, v in tally.hours.items() if v],
        )
        await c.executemany(
            "INSERT INTO rang_figures (day, extension, missed) VALUES ($1, $2, $3) "
            "ON CONFLICT (extension, day) DO UPDATE SET "
            "missed = rang_figures.missed + excluded.missed",
            [(*k, v) for k, v in tally.rang.items() if v],
        )

    async def rebuild_figures(self, zone: str | None = None) -> tuple[int, int]:
        """Recount every figure from the calls in ``zone`` (default: the stored one), in
        one transaction (writers wait; readers see the old figures until it commits).
        Returns the numbers of (day, hour) figure rows written."""
        async with self._tx() as c:  # type: ignore[attr-defined]
            if self.dialect == "postgres":  # type: ignore[attr-defined]
                await c.execute(
                    "LOCK TABLE figures_zone, call_figures, hour_figures, rang_figures, "
                    "callback_figures, callback_figure_calls, callback_buckets, "
                    "callback_figure_rang IN EXCLUSIVE MODE"
                )
            await self._flush_figures(c)  # so later changes in this transaction add up
            tz = ZoneInfo(zone) if zone else await self._zone(c)
            for table in FIGURE_TABLES:
                await c.execute(f"DELETE FROM {table}")
            await c.execute(
                "UPDATE figures_zone SET zone = $1, callbacks_counted = $2 WHERE id = 1",
                str(tz.key),
                True,
            )
            counted = await self._recount(c, tz)
        if self.dialect == "postgres":  # type: ignore[attr-defined]
            # Every row is new: the planner's statistics still describe the old tables
            # (after a bulk load, empty ones), and autovacuum may be off or a minute
            # away.  Without them a team's audit joined the callback figures row by
            # row: 10 s instead of 50 ms at 5,000,000 calls.
            async with self._use() as c:  # type: ignore[attr-defined]
                await c.execute(f"ANALYZE {', '.join(FIGURE_TABLES)}")
        self._figures_state.update(zone=tz, callbacks=True)
        return counted

    async def _recount(self, c: Any, tz: ZoneInfo) -> tuple[int, int]:
        # The database groups by slices of time that never cross a local hour (an hour,
        # or a quarter for zones at :30 and :45), the zone's days are applied here.
        slice_s = 3600 if all(o % 3600 == 0 for o in _offsets(tz)) else 900
        q = self._floor_div("calls.started_at", slice_s)  # type: ignore[attr-defined]
        days: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0, 0.0])
        hours: dict[tuple[int, int, int, int], int] = defaultdict(int)
        cache: dict[int, tuple[int, int]] = {}
        for r in await c.fetch(
            f"SELECT {q} AS q, calls.direction AS direction, calls.outcome AS outcome, "
            "COALESCE(calls.did, '') AS did, COALESCE(calls.user_id, 0) AS u, "
            "CASE WHEN cc.task_id IS NULL THEN -1 ELSE COALESCE(t.owner_id, 0) END AS o, "
            "COUNT(*) AS n, SUM(CASE WHEN calls.answered THEN 1 ELSE 0 END) AS a, "
            f"COALESCE(SUM(calls.talk_seconds), 0) AS talk {_CALL_TASK} "
            "GROUP BY 1, 2, 3, 4, 5, 6"
        ):
            qn = int(r["q"])
            if qn not in cache:
                cache[qn] = bucket(tz, qn * slice_s)
            day, hour = cache[qn]
            acc = days[(day, r["direction"], r["outcome"], r["did"], r["u"], r["o"])]
            acc[0] += int(r["n"])
            acc[1] += int(r["a"])
            acc[2] += float(r["talk"])
            hours[(day, hour, int(r["u"]), int(r["o"]))] += int(r["n"])
        rang: dict[tuple[int, str], int] = defaultdict(int)
        q = self._floor_div("started_at", slice_s)  # type: ignore[attr-defined]
        for r in await c.fetch(
            f"SELECT {q} AS q, extension, COUNT(*) AS n FROM call_rang WHERE missed GROUP BY 1, 2"
        ):
            qn = int(r["q"])
            if qn not in cache:
                cache[qn] = bucket(tz, qn * slice_s)
            rang[(cache[qn][0], r["extension"])] += int(r["n"])
        await c.executemany(
            f"INSERT INTO call_figures ({_KEY}, calls, answered, talk_seconds) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [(*k, int(v[0]), int(v[1]), float(v[2])) for k, v in days.items()],
        )
        await c.executemany(
            "INSERT INTO hour_figures (day, hour, user_id, task_owner, calls) "
            "VALUES ($1, $2, $3, $4, $5)",
            [(*k, v) for k, v in hours.items()],
        )
        await c.executemany(
            "INSERT INTO rang_figures (day, extension, missed) VALUES ($1, $2, $3)",
            [(*k, v) for k, v in rang.items()],
        )
        await self._write_callbacks(c, tz)
        return len(days), len(hours)


def _offsets(tz: ZoneInfo) -> set[float]:
    """The offsets a zone has had since 1970 (sampled daily over the years calls have)."""
    start = dt.datetime(1970, 1, 1, tzinfo=dt.UTC).timestamp()
    end = dt.datetime.now(dt.UTC).timestamp() + 366 * 86400
    out: set[float] = set()
    at = start
    while at < end:
        out.add(offset_at(tz, at))
        at += 7 * 86400
    return out
