"""The queue report's questions, answered by the database (both engines): queue calls of a
period grouped small enough that a month of them crosses the wire as a few thousand rows,
who answered and who let them ring, and the agents' pause and registration events.

A mixin of ``SqlStore`` like ``sql_reports``: it uses the store's connection handling and
dialect hooks (``_use``, ``_ids_in``, ``_ids_param``, ``_visible_call``, ``_floor_div``).
The figures themselves (service level, averages, colours) are worked out from these rows
by ``crm.queue_stats``; nothing here knows a threshold.

A queue call's **wait** is from the call's start to its answer by a rep, or to its end when
nobody answered: the PBX answers the caller before ``Queue()`` (the lab's dial plan does,
most do, for the music on hold), so the call's own answer time says nothing; the tracker's
``ring_seconds`` is that wait.
"""

from __future__ import annotations

from typing import Any

from ..models import AgentEventRow, QueueCallGroup, QueueRepGroup

WAIT_SQL = "calls.ring_seconds"
"""The wait of a queue call (see the module docstring)."""
STATE_KINDS = ("paused", "unpaused", "registered", "unregistered")
"""The agent events the figures read: pause time, and time with a registered phone."""


class QueueQueries:
    def _ceil(self, expr: str) -> str:
        """SQL for the whole seconds ``ceil(expr)`` of a non-negative expression, so
        "within N seconds" (wait <= N) holds exactly on the grouped value."""
        if getattr(self, "dialect", "") == "postgres":
            return f"CAST(CEIL({expr}) AS BIGINT)"
        return f"(CAST({expr} AS INTEGER) + (({expr}) > CAST({expr} AS INTEGER)))"

    def _queue_where(self, args: list[Any], user_ids: Any) -> str:
        """Queue calls started in [$1, $2), seen by ``user_ids`` (the calls list's rule)."""
        where = "calls.queue IS NOT NULL AND calls.started_at >= $1 AND calls.started_at < $2"
        if user_ids is not None:
            args.append(self._ids_param(user_ids))  # type: ignore[attr-defined]
            where += " AND " + self._visible_call("calls", len(args))  # type: ignore[attr-defined]
        return where

    async def queue_call_groups(
        self, since: float, until: float, user_ids: Any = None, utc_offset: float = 0.0
    ) -> list[QueueCallGroup]:
        args: list[Any] = [since, until]
        where = self._queue_where(args, user_ids)
        args.append(float(utc_offset))
        hour = self._floor_div(f"calls.started_at + ${len(args)}", 3600)  # type: ignore[attr-defined]
        wait = self._ceil(f"{WAIT_SQL}")
        sql = (
            f"SELECT calls.queue AS queue, {hour} AS hour, "
            "CASE WHEN calls.answered THEN 1 ELSE 0 END AS answered, "
            f"{wait} AS wait_ceil, COUNT(*) AS n, SUM({WAIT_SQL}) AS wait_sum, "
            f"MAX({WAIT_SQL}) AS wait_max, SUM(calls.talk_seconds) AS talk_sum "
            f"FROM calls WHERE {where} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        )
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(sql, *args)
        return [
            QueueCallGroup(
                queue=r["queue"],
                hour=int(r["hour"]),
                answered=bool(r["answered"]),
                wait_ceil=int(r["wait_ceil"]),
                calls=int(r["n"]),
                wait_sum=float(r["wait_sum"] or 0.0),
                wait_max=float(r["wait_max"] or 0.0),
                talk_sum=float(r["talk_sum"] or 0.0),
            )
            for r in rows
        ]

    async def queue_rep_groups(
        self, since: float, until: float, user_ids: Any = None
    ) -> list[QueueRepGroup]:
        """Per user and queue: queue calls they answered (and their talk), and queue calls
        that rang them and that they did not answer (RONA).  A call still ringing a phone
        when its caller gave up (the last one it rang) is not that phone's RONA."""
        args: list[Any] = [since, until]
        mine = ""
        if user_ids is not None:
            args.append(self._ids_param(user_ids))  # type: ignore[attr-defined]
            mine = f" AND {{col}} {self._ids_in(3)}"  # type: ignore[attr-defined]
        last = (
            "(calls.rang::jsonb ->> -1)"
            if getattr(self, "dialect", "") == "postgres"
            else "json_extract(calls.rang, '$[#-1]')"
        )
        async with self._use() as c:  # type: ignore[attr-defined]
            answered = await c.fetch(
                "SELECT calls.user_id AS user_id, calls.queue AS queue, COUNT(*) AS n, "
                "SUM(calls.talk_seconds) AS talk FROM calls "
                "WHERE calls.queue IS NOT NULL AND calls.answered AND calls.user_id IS NOT NULL "
                "AND calls.started_at >= $1 AND calls.started_at < $2"
                + mine.format(col="calls.user_id")
                + " GROUP BY 1, 2",
                *args,
            )
            rona = await c.fetch(
                "SELECT ue.user_id AS user_id, calls.queue AS queue, "
                "COUNT(DISTINCT calls.id) AS n FROM call_rang cr "
                "JOIN calls ON calls.id = cr.call_id "
                "JOIN user_extensions ue ON ue.extension = cr.extension "
                "WHERE calls.queue IS NOT NULL AND cr.started_at >= $1 AND cr.started_at < $2 "
                "AND (calls.answered_by IS NULL OR calls.answered_by <> cr.extension) "
                f"AND NOT (NOT calls.answered AND cr.extension = {last})"
                + mine.format(col="ue.user_id")
                + " GROUP BY 1, 2",
                *args,
            )
        out: dict[tuple[int, str], QueueRepGroup] = {}
        for r in answered:
            key = (int(r["user_id"]), r["queue"])
            out[key] = QueueRepGroup(key[0], key[1], int(r["n"]), float(r["talk"] or 0.0), 0)
        for r in rona:
            key = (int(r["user_id"]), r["queue"])
            g = out.get(key) or QueueRepGroup(key[0], key[1], 0, 0.0, 0)
            out[key] = QueueRepGroup(g.user_id, g.queue, g.answered, g.talk_seconds, int(r["n"]))
        return [out[k] for k in sorted(out)]

    async def talk_seconds_by_user(
        self, since: float, until: float, user_ids: Any = None
    ) -> dict[int, float]:
        """Talk time of every call (queue or not, any direction) per rep: what keeps them
        busy, for their occupancy."""
        args: list[Any] = [since, until]
        where = "calls.user_id IS NOT NULL AND calls.started_at >= $1 AND calls.started_at < $2"
        if user_ids is not None:
            args.append(self._ids_param(user_ids))  # type: ignore[attr-defined]
            where += f" AND calls.user_id {self._ids_in(3)}"  # type: ignore[attr-defined]
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                "SELECT calls.user_id AS user_id, SUM(calls.talk_seconds) AS talk "
                f"FROM calls WHERE {where} GROUP BY 1",
                *args,
            )
        return {int(r["user_id"]): float(r["talk"] or 0.0) for r in rows}

    async def agent_state_events(self, since: float, until: float) -> list[AgentEventRow]:
        """Pause and registration events in [since, until), preceded by the last such
        event of each (extension, queue, pause or registration) before ``since``: the
        state the period starts in.  Oldest first, with the extension's current user."""
        kinds = ", ".join(f"'{k}'" for k in STATE_KINDS)  # our own constants
        family = "CASE WHEN e.kind IN ('paused', 'unpaused') THEN 'p' ELSE 'r' END"
        sql = (
            "WITH prior AS (SELECT e.extension AS extension, COALESCE(e.queue, '') AS q, "
            f"{family} AS fam, MAX(e.ts) AS ts FROM agent_events e "
            f"WHERE e.ts < $1 AND e.kind IN ({kinds}) GROUP BY 1, 2, 3), "
            "picked AS (SELECT e.id AS id FROM agent_events e JOIN prior "
            "ON prior.extension = e.extension AND prior.q = COALESCE(e.queue, '') "
            f"AND prior.fam = {family} AND prior.ts = e.ts WHERE e.kind IN ({kinds}) "
            f"UNION SELECT e.id FROM agent_events e WHERE e.ts >= $1 AND e.ts < $2 "
            f"AND e.kind IN ({kinds})) "
            "SELECT e.ts AS ts, e.kind AS kind, e.extension AS extension, e.queue AS queue, "
            "e.reason AS reason, ue.user_id AS user_id FROM agent_events e "
            "JOIN picked ON picked.id = e.id "
            "LEFT JOIN user_extensions ue ON ue.extension = e.extension "
            "ORDER BY e.ts, e.id"
        )
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(sql, since, until)
        return [
            AgentEventRow(
                ts=float(r["ts"]),
                kind=r["kind"],
                extension=r["extension"],
                queue=r["queue"],
                reason=r["reason"],
                user_id=r["user_id"],
            )
            for r in rows
        ]

    async def queue_names(self) -> list[str]:
        """Every queue a stored call went through, for the settings page."""
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                "SELECT DISTINCT queue FROM calls WHERE queue IS NOT NULL ORDER BY queue"
            )
        return [r["queue"] for r in rows]
