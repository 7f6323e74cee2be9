"""The managers' figures, aggregated by the database (both engines) so they stay fast at
millions of calls: only grouped rows cross the wire, never the calls themselves.

A mixin of ``SqlStore``: it uses the store's connection handling and dialect hooks
(``_use_report``, ``_ids_in``, ``_ids_param``, ``_visible_call``, ``_floor_div``,
``_index_hint``), and the ``call_rang`` table ``upsert_call`` keeps (who each call rang).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from ..models import MissedByLine, MissedByRep, MissedSummary, RepFigures
from .sql_common import MISSED_SQL, rep_calls_where
from .sql_figures import bucket_range, callback_bucket

_EPOCH = dt.date(1970, 1, 1)


def _day_text(day_number: int) -> str:
    """``YYYY-MM-DD`` of a UTC day number (days since 1970-01-01)."""
    return (_EPOCH + dt.timedelta(days=day_number)).isoformat()


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


_MEDIAN_BUCKET = 60
"""Seconds of time to callback per bucket the audit's median is first looked for in."""


def _median_places(counted: list[tuple[int, int]], returned: int) -> list[tuple[int, int, int]]:
    """(bucket, offset in it, how many) of the one or two middle values of ``returned``
    values counted per bucket (``counted``: (bucket, count) in bucket order)."""
    wanted = [(returned - 1) // 2] if returned % 2 else [returned // 2 - 1, returned // 2]
    places: dict[int, list[int]] = {}
    below = 0
    for b, k in counted:
        for rank in wanted:
            if below <= rank < below + k:
                places.setdefault(b, []).append(rank - below)
        below += k
    return [(b, offsets[0], len(offsets)) for b, offsets in places.items()]


class ReportQueries:
    def _visible_figures(self, n: int) -> str:
        """``_visible_call`` on ``call_figures`` rows (ids bound as parameter $n): the
        rep is in scope, or the callback task's owner is.  Periods holding an unowned
        task's calls are read from the calls instead (``_days``)."""
        ids = self._ids_in(n)  # type: ignore[attr-defined]
        return f"(f.user_id {ids} OR f.task_owner {ids})"

    async def _days(
        self,
        c: Any,
        since: float,
        until: float,
        utc_offset: float | None = None,
        user_ids: Any = None,
    ) -> tuple[int, int] | None:
        """The figures' days for the period (``sql_figures``), or None to read the calls:
        the period is not whole days of the figures' zone at one offset, or is grouped by
        days and hours of another offset.  ``user_ids``: for a figure that counts by the
        visibility rule, whose unowned callback tasks are visible by who their calls rang
        (``_visible_task``), which ``call_figures`` does not keep: their calls are added
        by ``_unowned_calls``, or while ``callback_figures`` are not counted (which finds
        them) a period holding such calls is read from the calls."""
        found = await self.figure_days(c, since, until)  # type: ignore[attr-defined]
        if found is None or (utc_offset is not None and found[2] != utc_offset):
            return None
        if (
            user_ids is not None
            and await self.callback_days(c, since, until) is None  # type: ignore[attr-defined]
            and await c.fetchval(
                "SELECT 1 FROM call_figures f WHERE f.day >= $1 AND f.day < $2 "
                "AND f.task_owner = 0 LIMIT 1",
                found[0],
                found[1],
            )
        ):
            return None
        return found[0], found[1]

    async def _unowned_calls(
        self,
        c: Any,
        since: float,
        until: float,
        days: tuple[int, int],
        user_ids: Any,
        select: str,
        group: str,
        where: str = "TRUE",
        *more: Any,
    ) -> list[Any]:
        """``select ... group by group`` over the calls a scope sees only because their
        unowned callback task rang someone in it (their rep is not in it): what a scoped
        figure adds to the ``call_figures`` rows ``_visible_figures`` keeps.  The tasks
        come from ``callback_figures`` (those nobody owns, with calls in the days), their
        calls from its copy of them (``callback_figure_calls``).  ``more`` is bound from
        $6 on."""
        if user_ids is None or await self.callback_days(c, since, until) is None:  # type: ignore[attr-defined]
            return []
        ids = self._ids_in(3)  # type: ignore[attr-defined]
        return await c.fetch(
            f"SELECT {select} FROM callback_figure_calls calls "
            f"WHERE calls.task_id IN ({self._rang_tasks(3, '$4', '$5')}) "
            "AND calls.started_at >= $1 AND calls.started_at < $2 "
            f"AND NOT (COALESCE(calls.user_id, 0) {ids}) AND {where} GROUP BY {group}",
            since,
            until,
            self._ids_param(user_ids),  # type: ignore[attr-defined]
            days[0],
            days[1],
            *more,
        )

    def _rang_tasks(
        self, n: int, first: str, end: str, where: str = "TRUE", bucket: bool = False
    ) -> str:
        """SQL: the tasks nobody owns with calls in the days [first, end) that rang an
        extension of the users bound as $n now (``callback_figure_rang``: one range
        per extension, not every unowned task's ``rang`` tested), as ``task_id`` (and
        ``bucket``); ``where`` on their rows (``r``).  Used as ``IN (...)``, so both
        engines look the few tasks up rather than join every row against them."""
        also = ", r.bucket AS bucket" if bucket else ""
        return (
            f"SELECT DISTINCT r.task_id AS task_id{also} FROM callback_figure_rang r "
            f"{self._index_hint('callback_figure_rang_extension')} WHERE r.extension IN "  # type: ignore[attr-defined]
            f"(SELECT ue.extension FROM user_extensions ue WHERE ue.user_id {self._ids_in(n)}) "  # type: ignore[attr-defined]
            f"AND r.last_day >= {first} AND r.day < {end} AND ({where})"
        )

    def _rang_seen(self, column: str, n: int, count: int) -> str:
        """SQL: the ``rang_text`` in ``column`` holds one of the patterns bound from $n on
        (the ``count`` values of ``_rang_patterns``): an unowned task rang someone in the
        scope.  SQLite tests each pattern in line (``instr`` per pattern), PostgreSQL
        matches one regular expression of them: a list of them unnested or json_each'd
        per row cost twice as much, once for every unowned task of the period."""
        if self.dialect == "postgres":  # type: ignore[attr-defined]
            return f"COALESCE({column} ~ ${n}, FALSE)"
        tests = [f"instr({column}, ${n + i}) > 0" for i in range(count)]
        return "(" + (" OR ".join(tests) or "0") + ")"

    async def _rang_patterns(self, c: Any, user_ids: Any) -> list[Any]:
        """``,ext,`` for each extension of the scope's users now (the current map, as
        ``_visible_task`` reads it), as the values to bind for ``_rang_seen``: one
        regular expression on PostgreSQL, one value per pattern on SQLite."""
        rows = await c.fetch(
            f"SELECT extension FROM user_extensions WHERE user_id {self._ids_in(1)}",  # type: ignore[attr-defined]
            self._ids_param(user_ids),  # type: ignore[attr-defined]
        )
        if self.dialect == "postgres":  # type: ignore[attr-defined]
            # ",(201|2\*5)," (None for no extension: matches nothing); every character
            # but letters and digits escaped, so an extension is always literal text
            exts = ["".join(ch if ch.isalnum() else "\\" + ch for ch in r["extension"])
                    for r in rows]  # fmt: skip
            return [",(" + "|".join(exts) + ")," if exts else None]
        return [f",{r['extension']}," for r in rows]

    def _floats_rows(self, n: int) -> str:
        """SQL: one row (``value``) per number of the list bound as $n (``_ids_param``)."""
        if self.dialect == "postgres":  # type: ignore[attr-defined]
            return f"SELECT unnest(${n}::float8[]) AS value"
        return f"SELECT value FROM json_each(${n})"

    def _figures_where(self, args: list[Any], days: tuple[int, int], user_ids: Any) -> str:
        args.extend(days)
        where = f"f.day >= ${len(args) - 1} AND f.day < ${len(args)}"
        if user_ids is not None:
            args.append(self._ids_param(user_ids))  # type: ignore[attr-defined]
            where += " AND " + self._visible_figures(len(args))
        return where

    def _range_where(self, args: list[Any], user_ids: Any, since_n: int) -> str:
        """started_at in [$since_n, $since_n+1), plus the visibility filter if any."""
        where = f"calls.started_at >= ${since_n} AND calls.started_at < ${since_n + 1}"
        if user_ids is not None:
            args.append(self._ids_param(user_ids))  # type: ignore[attr-defined]
            where += " AND " + self._visible_call("calls", len(args))  # type: ignore[attr-defined]
        return where

    async def _rung_missed(
        self, c: Any, since: float, until: float, user_ids: Any
    ) -> dict[int, int]:
        """Missed inbound calls per user whose extension rang (current extension map)."""
        # call_rang's partial index on missed rows: one range per extension and period,
        # counted in index order (no DISTINCT over the period).  A call counts once per
        # user, so users with several extensions get a COUNT(DISTINCT) of their own.
        days = await self._days(c, since, until)
        args: list[Any] = [since, until] if days is None else list(days)
        scoped = ""
        if user_ids is not None:
            args.append(self._ids_param(user_ids))  # type: ignore[attr-defined]
            scoped = f" AND ue.user_id {self._ids_in(3)}"  # type: ignore[attr-defined]
        if days is None:
            rows = await c.fetch(
                "SELECT ue.extension AS extension, ue.user_id AS user_id, COUNT(*) AS n "
                "FROM user_extensions ue JOIN call_rang cr ON cr.extension = ue.extension "
                f"WHERE cr.missed AND cr.started_at >= $1 AND cr.started_at < $2{scoped} "
                "GROUP BY ue.extension, ue.user_id",
                *args,
            )
        else:
            rows = await c.fetch(
                "SELECT ue.extension AS extension, ue.user_id AS user_id, SUM(rf.missed) AS n "
                "FROM user_extensions ue JOIN rang_figures rf ON rf.extension = ue.extension "
                f"WHERE rf.day >= $1 AND rf.day < $2{scoped} "
                "GROUP BY ue.extension, ue.user_id HAVING SUM(rf.missed) > 0",
                *args,
            )
        out: dict[int, int] = {}
        exts: dict[int, int] = {}
        for r in rows:
            out[r["user_id"]] = out.get(r["user_id"], 0) + int(r["n"])
            exts[r["user_id"]] = exts.get(r["user_id"], 0) + 1
        several = [uid for uid, k in exts.items() if k > 1]
        if several:
            for r in await c.fetch(
                "SELECT ue.user_id AS user_id, COUNT(DISTINCT cr.call_id) AS n "
                "FROM user_extensions ue JOIN call_rang cr ON cr.extension = ue.extension "
                "WHERE cr.missed AND cr.started_at >= $1 AND cr.started_at < $2 "
                f"AND ue.user_id {self._ids_in(3)} GROUP BY ue.user_id",  # type: ignore[attr-defined]
                since,
                until,
                self._ids_param(several),  # type: ignore[attr-defined]
            ):
                out[r["user_id"]] = int(r["n"])
        return out

    async def _user_names(self, c: Any) -> dict[int, str]:
        rows = await c.fetch("SELECT id, display_name FROM users")
        return {r["id"]: r["display_name"] for r in rows}

    async def missed_summary(
        self, since: float, until: float, sla_seconds: float, user_ids: Any = None
    ) -> MissedSummary:
        args: list[Any] = [since, until]
        inbound = "calls.direction = 'inbound' AND " + self._range_where(args, user_ids, 1)
        async with self._use_report() as c:  # type: ignore[attr-defined]
            lines = await self._missed_lines(c, since, until, user_ids, inbound, args)
            n_tasks, returned, in_sla, median = await self._task_figures(
                c, since, until, float(sla_seconds), user_ids, inbound, args
            )
            by_rep = await self._missed_by_rep(c, since, until, user_ids)
        # Every inbound call is in exactly one line group (NULL did included): the totals
        # are the lines' sums, so the period is read once.
        total = sum(int(r["total"]) for r in lines)
        missed = sum(int(r["missed"]) for r in lines)
        return MissedSummary(
            since=since,
            until=until,
            total_inbound=total,
            missed=missed,
            missed_rate=_rate(missed, total),
            callbacks=n_tasks,
            returned=returned,
            median_time_to_callback=median,
            returned_within_sla=_rate(in_sla, n_tasks) if n_tasks else None,
            by_rep=by_rep,
            by_line=[
                MissedByLine(
                    did=r["did"],
                    inbound=int(r["total"]),
                    missed=int(r["missed"]),
                    missed_rate=_rate(int(r["missed"]), int(r["total"])),
                )
                for r in lines
            ],
        )

    async def _task_figures(
        self,
        c: Any,
        since: float,
        until: float,
        sla: float,
        user_ids: Any,
        inbound: str,
        args: list[Any],
    ) -> tuple[int, int, int, float | None]:
        """(tasks, returned, returned within ``sla``, median time to callback) of the
        callback tasks of the period's visible missed inbound calls.  From
        ``callback_figures`` when it answers the period: a task whose calls are all missed
        inbound calls of one day and one rep is counted from its row; the few others
        ("spread": several days or reps) have their calls checked here."""
        tasks_of_calls = (
            "SELECT DISTINCT t.id AS id, t.time_to_callback AS ttc "
            "FROM calls JOIN callback_calls cc ON cc.call_id = calls.id "
            "JOIN callback_tasks t ON t.id = cc.task_id "
            f"WHERE {inbound} AND calls.outcome {MISSED_SQL}"
        )
        days = await self.callback_days(c, since, until)  # type: ignore[attr-defined]
        if days is not None:
            return await self._kept_task_figures(c, since, until, sla, user_ids, days)
        n = len(args)
        sargs = list(args)

        def source(near: bool = False) -> str:
            """The tasks; ``near``: those as $n+4 <= ttc < $n+5 (the median's second look)."""
            if not near:
                return tasks_of_calls
            return (
                f"{tasks_of_calls} AND t.time_to_callback >= ${n + 4} "
                f"AND t.time_to_callback < ${n + 5}"
            )

        # One pass: the tasks per bucket of time to callback (NULL: not returned) give the
        # counts and which bucket holds the median; that bucket's rows alone are then
        # sorted, so the median is exactly the tasks' one.
        bucket = self._floor_div("ttc", _MEDIAN_BUCKET)  # type: ignore[attr-defined]
        buckets = await c.fetch(
            f"WITH tasks AS ({source()}) SELECT {bucket} AS b, COUNT(*) AS n, "
            f"COALESCE(SUM(CASE WHEN ttc <= ${n + 1} THEN 1 ELSE 0 END), 0) AS in_sla "
            "FROM tasks GROUP BY 1",
            *sargs,
            sla,
        )
        n_tasks = sum(int(r["n"]) for r in buckets)
        in_sla = sum(int(r["in_sla"]) for r in buckets)
        counted = sorted((int(r["b"]), int(r["n"])) for r in buckets if r["b"] is not None)
        returned = sum(k for _, k in counted)
        median: float | None = None
        if returned:
            middle: list[float] = []
            for b, first, k in _median_places(counted, returned):
                lo, hi = (b - 1) * _MEDIAN_BUCKET, (b + 2) * _MEDIAN_BUCKET
                rows = await c.fetch(
                    f"WITH tasks AS ({source(True)}) SELECT ttc FROM tasks "
                    f"WHERE {bucket} = ${n + 1} ORDER BY ttc LIMIT ${n + 2} OFFSET ${n + 3}",
                    *sargs,
                    b,
                    k,
                    first,
                    float(lo),
                    float(hi),
                )
                middle.extend(float(r["ttc"]) for r in rows)
            median = sum(middle) / len(middle)
        return n_tasks, returned, in_sla, median

    # Alike in shape to ``_task_figures`` on purpose (its signature and median loop): the
    # same figures from the kept rows, while the calls' path serves periods they do not.
    async def _kept_task_figures(
        self,
        c: Any,
        since: float,
        until: float,
        sla: float,
        user_ids: Any,
        days: tuple[int, int, float],
    ) -> tuple[int, int, int, float | None]:
        """``_task_figures`` from the kept figures: the tasks per bucket of time to
        callback from ``callback_buckets`` (days x owners x reps x buckets rows, however
        many tasks), the spread ones from their calls' copy; then the one bucket holding
        the SLA and the one or two holding the median are read task by task
        (``callback_figures_ttc``), so both are exact."""
        sargs: list[Any] = [days[0], days[1]]
        seen = ""
        n_rang = 0
        if user_ids is not None:
            rang = await self._rang_patterns(c, user_ids)
            n_rang = len(rang)
            sargs += [self._ids_param(user_ids), *rang]  # type: ignore[attr-defined]
            ids = self._ids_in(3)  # type: ignore[attr-defined]
            seen = (
                f"(f.task_owner {ids} OR "
                f"(f.task_owner = 0 AND {self._rang_seen('f.rang', 4, n_rang)}))"
            )
        spread = await self._spread_tasks(c, since, until, sargs, seen)
        simple = "f.day >= $1 AND f.day < $2 AND f.last_day = f.day AND f.user_id >= 0"
        if seen:
            simple += f" AND (f.user_id {self._ids_in(3)} OR {seen})"  # type: ignore[attr-defined]
        spread_ttc = [None if r["ttc"] is None else float(r["ttc"]) for r in spread]
        # The tasks per bucket: the period's rows of ``callback_buckets`` (days x reps
        # x owners x buckets, whatever the number of tasks), plus the spread ones; for
        # a scope, those of its reps or owners, and the unowned ones that rang it (and
        # are not of its reps: counted already) from ``callback_figure_rang``.
        bwhere = "b.day >= $1 AND b.day < $2"
        if seen:
            ids = self._ids_in(3)  # type: ignore[attr-defined]
            bwhere += f" AND (b.user_id {ids} OR b.task_owner {ids})"
        per: Counter[int] = Counter()
        for r in await c.fetch(
            "SELECT b.bucket AS b, SUM(b.tasks) AS n FROM callback_buckets b "
            f"WHERE {bwhere} GROUP BY b.bucket",
            *sargs[:3],
        ):
            per[int(r["b"])] += int(r["n"])
        if seen:
            unowned = self._rang_tasks(
                3,
                "$1",
                "$2",
                f"r.last_day = r.day AND r.user_id >= 0 AND NOT (r.user_id {ids})",
                bucket=True,
            )
            for r in await c.fetch(
                f"SELECT seen.bucket AS b, COUNT(*) AS n FROM ({unowned}) seen GROUP BY 1",
                *sargs[:3],
            ):
                per[int(r["b"])] += int(r["n"])
        per.update(callback_bucket(ttc) for ttc in spread_ttc)
        sargs.append(self._ids_param(spread_ttc))  # type: ignore[attr-defined]
        floats = self._floats_rows(len(sargs))
        n = len(sargs)
        narrow = self._index_hint("callback_figures_ttc")  # type: ignore[attr-defined]

        def one_bucket(below: str = "<") -> str:
            """The period's tasks with $n+1 <= ttc {below} $n+2 (in one bucket)."""
            return (
                f"SELECT f.time_to_callback AS ttc FROM callback_figures f {narrow} "
                f"WHERE f.time_to_callback >= ${n + 1} AND f.time_to_callback {below} ${n + 2} "
                f"AND {simple} UNION ALL SELECT * FROM ({floats}) spread "
                f"WHERE value >= ${n + 1} AND value {below} ${n + 2}"
            )

        counted = sorted((b, k) for b, k in per.items() if b >= 0 and k)
        n_tasks = sum(per.values())
        returned = sum(k for _, k in counted)
        # within the SLA: the buckets below it whole, the one holding it task by task
        in_sla = sum(k for b, k in counted if bucket_range(b)[1] <= sla)
        holding = callback_bucket(sla)
        if per.get(holding):
            # from the bucket's start to the SLA only (none when the SLA is a bound)
            in_sla += int(
                await c.fetchval(
                    f"WITH tasks AS ({one_bucket('<=')}) SELECT COUNT(*) FROM tasks",
                    *sargs,
                    bucket_range(holding)[0],
                    sla,
                )
            )
        median: float | None = None
        if returned:
            middle: list[float] = []
            for b, first, k in _median_places(counted, returned):
                lo, hi = bucket_range(b)
                rows = await c.fetch(
                    f"WITH tasks AS ({one_bucket()}) SELECT ttc FROM tasks "
                    f"ORDER BY ttc LIMIT ${n + 3} OFFSET ${n + 4}",
                    *sargs,
                    lo,
                    hi,
                    k,
                    first,
                )
                middle.extend(float(r["ttc"]) for r in rows)
            median = sum(middle) / len(middle)
        return n_tasks, returned, in_sla, median

    async def _spread_tasks(
        self, c: Any, since: float, until: float, sargs: list[Any], seen: str
    ) -> list[Any]:
        """(id, ttc) of the spread tasks (several days or reps) with a visible missed
        inbound call in the period, read from the few spread rows to their calls' copy
        (not from the period's calls).  A scope's are those its team owns (one range per
        owner of ``callback_figures_spread_owner``), those nobody owns that rang it (one
        range per extension, ``_rang_tasks``) and those with a call of its reps
        (``callback_figure_calls_user``): not every spread task of the period tested for
        the scope, most of which other teams own.  ``seen``: the scope's test, '' for
        none."""

        def missed(n: int) -> str:
            """The spread rows of the days, their missed inbound calls in [$n, $n+1)."""
            return (
                "(f.last_day > f.day OR f.user_id < 0) AND f.last_day >= $1 AND f.day < $2 "
                f"AND calls.direction = 'inbound' AND calls.outcome {MISSED_SQL} "
                f"AND calls.started_at >= ${n} AND calls.started_at < ${n + 1}"
            )

        hint = self._index_hint  # type: ignore[attr-defined]
        ids = self._ids_in(3)  # type: ignore[attr-defined]

        async def read(source: str, where: str, *args: Any) -> list[Any]:
            """(id, ttc) of the spread tasks of ``source`` (joining ``f`` and ``calls``)
            that pass ``where``; ``args`` come before the period's bounds."""
            return list(
                await c.fetch(
                    f"SELECT f.task_id AS id, f.time_to_callback AS ttc FROM {source} "
                    f"WHERE calls.task_id = f.task_id AND {where}{missed(len(args) + 1)} "
                    "GROUP BY f.task_id, f.time_to_callback",
                    *args,
                    since,
                    until,
                )
            )

        figures_then_calls = "callback_figures f {} CROSS JOIN callback_figure_calls calls"
        if not seen:
            return await read(figures_then_calls.format(hint("callback_figures_spread")), "",
                              *sargs)  # fmt: skip
        spread = "r.last_day > r.day OR r.user_id < 0"
        found = await read(figures_then_calls.format(hint("callback_figures_spread_owner")),
                           f"f.task_owner {ids} AND ", *sargs[:3])  # fmt: skip
        unowned = await read(figures_then_calls.format(""),
                             f"f.task_id IN ({self._rang_tasks(3, '$1', '$2', spread)}) AND ",
                             *sargs[:3])  # fmt: skip
        by_reps = await read(
            f"callback_figure_calls calls {hint('callback_figure_calls_user')} "
            "CROSS JOIN callback_figures f", f"calls.user_id {ids} AND ", *sargs[:3]
        )  # fmt: skip
        return list({r["id"]: r for r in [*found, *unowned, *by_reps]}.values())

    async def _missed_lines(
        self, c: Any, since: float, until: float, user_ids: Any, inbound: str, args: list[Any]
    ) -> list[dict[str, Any]]:
        """Per line (DID): inbound calls and missed ones, ordered by line as the database
        orders it (NULL first on SQLite, last on PostgreSQL)."""
        days = await self._days(c, since, until, user_ids=user_ids)
        if days is None:
            rows = await c.fetch(
                "SELECT calls.did AS did, COUNT(*) AS total, "
                f"SUM(CASE WHEN calls.outcome {MISSED_SQL} THEN 1 ELSE 0 END) AS missed "
                f"FROM calls WHERE {inbound} GROUP BY calls.did ORDER BY calls.did",
                *args,
            )
            return [dict(r) for r in rows]
        fargs: list[Any] = []
        where = self._figures_where(fargs, days, user_ids)
        rows = await c.fetch(
            "SELECT f.did AS did, SUM(f.calls) AS total, "
            f"SUM(CASE WHEN f.outcome {MISSED_SQL} THEN f.calls ELSE 0 END) AS missed "
            f"FROM call_figures f WHERE f.direction = 'inbound' AND {where} "
            "GROUP BY f.did HAVING SUM(f.calls) > 0",
            *fargs,
        )
        merged = {r["did"]: [int(r["total"]), int(r["missed"])] for r in rows}
        for r in await self._unowned_calls(
            c, since, until, days, user_ids,
            "COALESCE(calls.did, '') AS did, COUNT(*) AS total, "
            f"SUM(CASE WHEN calls.outcome {MISSED_SQL} THEN 1 ELSE 0 END) AS missed",
            "COALESCE(calls.did, '')", "calls.direction = 'inbound'",
        ):  # fmt: skip
            line = merged.setdefault(r["did"], [0, 0])
            line[0] += int(r["total"])
            line[1] += int(r["missed"])
        # '' is the figures' "no line"; both engines sort NULL as the calls query did.
        out = [{"did": did or None, "total": n, "missed": m} for did, (n, m) in merged.items()]
        nulls_first = self.dialect == "sqlite"  # type: ignore[attr-defined]
        return sorted(out, key=lambda r: ((r["did"] is None) != nulls_first, r["did"] or ""))

    async def _missed_by_rep(
        self, c: Any, since: float, until: float, user_ids: Any
    ) -> list[MissedByRep]:
        rung = await self._rung_missed(c, since, until, user_ids)
        args: list[Any] = [since, until]
        mine = ""
        if user_ids is not None:
            args.append(self._ids_param(user_ids))  # type: ignore[attr-defined]
            mine = f" AND {{col}} {self._ids_in(3)}"  # type: ignore[attr-defined]
        days = await self._days(c, since, until)
        if days is None:
            sql = (
                "SELECT user_id, COUNT(*) AS n FROM calls WHERE calls.direction = 'inbound' "
                "AND calls.answered AND calls.user_id IS NOT NULL "
                "AND calls.started_at >= $1 AND calls.started_at < $2"
                + mine.format(col="calls.user_id")
                + " GROUP BY user_id"
            )
            answered_args = args
        else:
            sql = (
                "SELECT f.user_id AS user_id, SUM(f.answered) AS n FROM call_figures f "
                "WHERE f.direction = 'inbound' AND f.user_id > 0 "
                "AND f.day >= $1 AND f.day < $2"
                + mine.format(col="f.user_id")
                + " GROUP BY f.user_id HAVING SUM(f.answered) > 0"
            )
            answered_args = [*days, *args[2:]]
        answered = {r["user_id"]: int(r["n"]) for r in await c.fetch(sql, *answered_args)}
        closed = {
            r["uid"]: (int(r["n"]), r["avg_ttc"])
            for r in await c.fetch(
                "SELECT closed_by_user_id AS uid, COUNT(*) AS n, AVG(time_to_callback) AS avg_ttc "
                "FROM callback_tasks WHERE closed_by_user_id IS NOT NULL "
                "AND time_to_callback IS NOT NULL AND closed_at >= $1 AND closed_at < $2"
                + mine.format(col="closed_by_user_id")
                + " GROUP BY closed_by_user_id",
                *args,
            )
        }
        names = await self._user_names(c)
        rows = [
            MissedByRep(
                user_id=uid,
                name=names.get(uid, f"user {uid}"),
                rung_missed=rung.get(uid, 0),
                answered=answered.get(uid, 0),
                callbacks_closed=closed.get(uid, (0, None))[0],
                avg_time_to_callback=(
                    float(closed[uid][1]) if uid in closed and closed[uid][1] is not None else None
                ),
            )
            for uid in set(rung) | set(answered) | set(closed)
        ]
        return sorted(rows, key=lambda r: (r.name.lower(), r.user_id))

    async def calls_per_day(
        self, since: float, until: float, user_ids: Any = None, utc_offset: float = 0.0
    ) -> list[tuple[str, str, int]]:
        """(day ``YYYY-MM-DD``, outcome, count), by day then outcome."""
        counts = await self._started(since, until, user_ids, utc_offset, "day", by_outcome=True)
        return [(_day_text(d), o, n) for (d, o), n in sorted(counts.items())]

    async def per_rep(self, since: float, until: float, user_ids: Any = None) -> list[RepFigures]:
        where, args = rep_calls_where(self, since, until, user_ids)
        async with self._use_report() as c:  # type: ignore[attr-defined]
            days = await self._days(c, since, until)
        # Alike in shape to _missed_by_rep on purpose: each figure has its own query of
        # the calls and of the figures, chosen by the same test (``_days``).
        if days is None:
            sql = (
                "SELECT calls.user_id AS user_id, "
                "SUM(CASE WHEN calls.answered THEN 1 ELSE 0 END) AS answered, "
                "COALESCE(SUM(calls.talk_seconds), 0) AS talk "
                f"FROM calls {self._index_hint('calls_report')} "  # type: ignore[attr-defined]
                f"WHERE {where} GROUP BY calls.user_id"
            )
        else:
            args[:2] = days
            scoped = f" AND f.user_id {self._ids_in(3)}" if user_ids is not None else ""  # type: ignore[attr-defined]
            sql = (
                "SELECT f.user_id AS user_id, SUM(f.answered) AS answered, "
                "SUM(f.talk_seconds) AS talk FROM call_figures f "
                f"WHERE f.user_id > 0 AND f.day >= $1 AND f.day < $2{scoped} "
                "GROUP BY f.user_id HAVING SUM(f.calls) > 0"
            )
        async with self._use_report() as c:  # type: ignore[attr-defined]
            handled = {
                r["user_id"]: (int(r["answered"]), float(r["talk"]))
                for r in await c.fetch(sql, *args)
            }
            missed = await self._rung_missed(c, since, until, user_ids)
            names = await self._user_names(c)
        rows = [
            RepFigures(
                user_id=uid,
                name=names.get(uid, f"user {uid}"),
                answered=handled.get(uid, (0, 0.0))[0],
                missed=missed.get(uid, 0),
                talk_seconds=handled.get(uid, (0, 0.0))[1],
            )
            for uid in set(handled) | set(missed)
        ]
        return sorted(rows, key=lambda r: (r.name.lower(), r.user_id))

    async def busiest_hours(
        self, since: float, until: float, user_ids: Any = None, utc_offset: float = 0.0
    ) -> list[tuple[int, int]]:
        """(hour 0-23, calls started in it) for the hours that had calls."""
        counts: dict[int, int] = {}
        for (h,), n in (await self._started(since, until, user_ids, utc_offset, "hour")).items():
            # Hours since the epoch folded to the hour of the day (UTC days are whole
            # hours); the figures' hours are of the day already.
            counts[h % 24] = counts.get(h % 24, 0) + n
        return sorted(counts.items())

    async def _started(
        self,
        since: float,
        until: float,
        user_ids: Any,
        utc_offset: float,
        unit: str,
        by_outcome: bool = False,
    ) -> dict[tuple[Any, ...], int]:
        """The calls started in the period, counted by ``unit`` (``day``: day number,
        ``hour``: hour number since the epoch, or of the day from the figures) at
        ``utc_offset``, and by outcome if ``by_outcome``: the keys are (unit[, outcome]).
        From the figures (``call_figures`` by day, ``hour_figures`` by hour of the day)
        where they serve, plus the calls ``_unowned_calls`` adds; else from the calls,
        grouped by number, not by a date formatted for each of the period's calls."""
        seconds, figures = {"day": (86400, "call_figures"), "hour": (3600, "hour_figures")}[unit]

        def outcome(alias: str) -> str:
            return f", {alias}.outcome AS outcome" if by_outcome else ""

        group = "1, 2" if by_outcome else "1"
        counts: dict[tuple[Any, ...], int] = {}
        async with self._use_report() as c:  # type: ignore[attr-defined]
            days = await self._days(c, since, until, utc_offset, user_ids=user_ids)
            if days is not None:
                fargs: list[Any] = []
                fwhere = self._figures_where(fargs, days, user_ids)
                rows = await c.fetch(
                    f"SELECT f.{unit} AS {unit}{outcome('f')}, SUM(f.calls) AS n "
                    f"FROM {figures} f WHERE {fwhere} GROUP BY {group} "
                    "HAVING SUM(f.calls) > 0",
                    *fargs,
                )
                number = self._floor_div("calls.started_at + $6", seconds)  # type: ignore[attr-defined]
                rows += await self._unowned_calls(
                    c, since, until, days, user_ids,
                    f"{number} AS {unit}{outcome('calls')}, COUNT(*) AS n", group,
                    "TRUE", float(utc_offset),
                )  # fmt: skip
            else:
                args: list[Any] = [float(utc_offset), since, until]
                where = self._range_where(args, user_ids, 2)
                number = self._floor_div("calls.started_at + $1", seconds)  # type: ignore[attr-defined]
                rows = await c.fetch(
                    f"SELECT {number} AS {unit}{outcome('calls')}, COUNT(*) AS n "
                    f"FROM calls WHERE {where} GROUP BY {group}",
                    *args,
                )
        for r in rows:
            key = (int(r[unit]), r["outcome"]) if by_outcome else (int(r[unit]),)
            counts[key] = counts.get(key, 0) + int(r["n"])
        return counts
