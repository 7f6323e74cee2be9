"""The queue report's questions, answered by the database (both engines): queue calls of a
period grouped small enough that a month of them crosses the wire as a few thousand rows,
who answered and who let them ring, and the agents' pause and registration events.

A mixin of ``SqlStore`` like ``sql_reports``: it uses the store's connection handling and
dialect hooks (``_use``, ``_ids_in``, ``_ids_param``, ``_visible_call``, ``_floor_div``).
The figures themselves (service level, averages, colours) are worked out from these rows
by ``crm.queue_stats``; nothing here knows a threshold.

Waits are grouped by the limits the caller names (service-level and short-abandon
seconds, bucket edges): each group knows its waits are at most its limit and above the
one before, so "answered within N seconds" holds exactly on the groups.

A queue call's **wait** is from the call's start to its answer by a rep, or to its end when
nobody answered: the PBX answers the caller before ``Queue()`` (the lab's dial plan does,
most do, for the music on hold), so the call's own answer time says nothing; the tracker's
``ring_seconds`` is that wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import AgentEventRow, QueueCallGroup, QueueRepGroup
from .sql_common import rep_calls_where

WAIT_SQL = "calls.ring_seconds"
"""The wait of a queue call (see the module docstring)."""
STATE_KINDS = ("paused", "unpaused", "registered", "unregistered")
"""The agent events the figures read: pause time, and time with a registered phone."""


class QueueQueries:
    def _queue_where(self, args: list[Any], user_ids: Any) -> str:
        """Queue calls started in [$1, $2), seen by ``user_ids`` (the calls list's rule)."""
        where = "calls.queue IS NOT NULL AND calls.started_at >= $1 AND calls.started_at < $2"
        if user_ids is not None:
            args.append(self._ids_param(user_ids))  # type: ignore[attr-defined]
            where += " AND " + self._visible_call("calls", len(args))  # type: ignore[attr-defined]
        return where

    async def queue_call_groups(
        self,
        since: float,
        until: float,
        user_ids: Any = None,
        utc_offset: float = 0.0,
        limits: Sequence[float] = (),
        by: str = "day",
    ) -> list[QueueCallGroup]:
        """Queue calls started in [since, until) that ``user_ids`` may see, grouped by
        queue, day (``by="day"``) or hour of the day (``"hour"``), answered or not, and
        the first of the sorted ``limits`` their wait does not exceed."""
        args: list[Any] = [since, until]
        where = self._queue_where(args, user_ids)
        args.append(float(utc_offset))
        local = f"calls.started_at + ${len(args)}"
        if by == "hour":
            slot = f"({self._floor_div(local, 3600)}) % 24"  # type: ignore[attr-defined]
        else:
            slot = self._floor_div(local, 86400)  # type: ignore[attr-defined]
        # The wait as the index of the first limit it does not exceed: a handful of
        # classes instead of one group per distinct wait, whatever the call volume.
        cases = []
        for i, limit in enumerate(limits):
            args.append(float(limit))
            cases.append(f"WHEN {WAIT_SQL} <= ${len(args)} THEN {i}")
        wait_class = f"CASE {' '.join(cases)} ELSE {len(limits)} END" if cases else "0"
        sql = (
            f"SELECT calls.queue AS queue, {slot} AS slot, "
            "CASE WHEN calls.answered THEN 1 ELSE 0 END AS answered, "
            f"{wait_class} AS wait_class, COUNT(*) AS n, SUM({WAIT_SQL}) AS wait_sum, "
            f"MAX({WAIT_SQL}) AS wait_max, SUM(calls.talk_seconds) AS talk_sum "
            f"FROM calls WHERE {where} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        )
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(sql, *args)
        return [
            QueueCallGroup(
                queue=r["queue"],
                slot=int(r["slot"]),
                answered=bool(r["answered"]),
                wait_limit=(
                    float(limits[int(r["wait_class"])])
                    if int(r["wait_class"]) < len(limits)
                    else None
                ),
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
        where, args = rep_calls_where(self, since, until, user_ids)
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
        family = "CASE WHEN kind IN ('paused', 'unpaused') THEN 'p' ELSE 'r' END"
        cols = "id, ts, kind, extension, queue, reason"
        async with self._use() as c:  # type: ignore[attr-defined]
            # Events are written as they happen: the newest id of a key is its last state.
            prior = await c.fetch(
                f"SELECT {cols} FROM agent_events WHERE id IN (SELECT MAX(id) FROM agent_events "
                f"WHERE ts < $1 AND kind IN ({kinds}) "
                f"GROUP BY extension, COALESCE(queue, ''), {family})",
                since,
            )
            during = await c.fetch(
                f"SELECT {cols} FROM agent_events WHERE ts >= $1 AND ts < $2 "
                f"AND kind IN ({kinds}) ORDER BY ts, id",
                since,
                until,
            )
            owners = {
                r["extension"]: r["user_id"]
                for r in await c.fetch("SELECT extension, user_id FROM user_extensions")
            }
        rows = sorted(prior, key=lambda r: (r["ts"], r["id"])) + list(during)
        return [
            AgentEventRow(
                ts=float(r["ts"]),
                kind=r["kind"],
                extension=r["extension"],
                queue=r["queue"],
                reason=r["reason"],
                user_id=owners.get(r["extension"]),
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
