"""Figures kept up to date by every write that changes what the managers' pages count,
so the missed-calls audit and the reports add up a month of hourly rows rather than read
a month of calls (``call_figures`` and ``rang_figures``, migration 0017).

Why hours in UTC: a period on the pages is whole days in the display time zone, and any
zone whose offset is whole hours cuts days on hour boundaries, so one set of figures serves
every user's zone; ``sql_reports`` falls back to the calls when a period does not fall on
hours (a +05:30 zone).

Why a count per call, not a recount per hour: each write removes the call's contribution
as it stood and adds it as it stands (``_count_calls`` with -1 then +1), inside the
call's own transaction, so figures and calls commit or roll back together and a batch of
calls per transaction composes (the function is per call).  What moves a call's
contribution: its row (re-ingest), its callback link and that task's owner (a manager's
visibility rule reads the task owner), and who it rang.  Erasure and relinking change
neither and so leave the figures alone.  ``rebuild_figures`` recomputes everything from
the calls (``run.py rebuild-figures``).

A mixin of ``SqlStore`` (``_use``, ``_tx``, ``_floor_div``, ``_ids_in``, ``_ids_param``).
"""

from __future__ import annotations

from typing import Any

FIGURE_KEY = "hour, direction, outcome, did, user_id, task_owner"


class FigureQueries:
    def _call_contribution(self, where: str, sign: int) -> str:
        """INSERT .. SELECT adding ``sign`` times the selected calls' counts to their
        hours (one statement, grouped, so it is one row per key on both engines)."""
        hour = self._floor_div("calls.started_at", 3600)  # type: ignore[attr-defined]
        s = int(sign)
        return (
            f"INSERT INTO call_figures ({FIGURE_KEY}, calls, answered, talk_seconds) "
            f"SELECT {hour}, calls.direction, calls.outcome, COALESCE(calls.did, ''), "
            "COALESCE(calls.user_id, 0), "
            "CASE WHEN cc.task_id IS NULL THEN -1 ELSE COALESCE(t.owner_id, 0) END, "
            f"{s} * COUNT(*), {s} * SUM(CASE WHEN calls.answered THEN 1 ELSE 0 END), "
            f"{s} * COALESCE(SUM(calls.talk_seconds), 0) "
            "FROM calls LEFT JOIN callback_calls cc ON cc.call_id = calls.id "
            "LEFT JOIN callback_tasks t ON t.id = cc.task_id "
            f"WHERE {where} GROUP BY 1, 2, 3, 4, 5, 6 "
            f"ON CONFLICT ({FIGURE_KEY}) DO UPDATE SET "
            "calls = call_figures.calls + excluded.calls, "
            "answered = call_figures.answered + excluded.answered, "
            "talk_seconds = call_figures.talk_seconds + excluded.talk_seconds"
        )

    def _rang_contribution(self, where: str, sign: int) -> str:
        hour = self._floor_div("started_at", 3600)  # type: ignore[attr-defined]
        return (
            "INSERT INTO rang_figures (hour, extension, missed) "
            f"SELECT {hour}, extension, {int(sign)} * COUNT(*) FROM call_rang "
            f"WHERE missed AND {where} GROUP BY 1, 2 "
            "ON CONFLICT (extension, hour) DO UPDATE SET "
            "missed = rang_figures.missed + excluded.missed"
        )

    async def _count_call(self, c: Any, call_id: int, sign: int) -> None:
        """Add (+1) or remove (-1) one call's contribution to the figures: call it with -1
        before changing the call or who it rang, +1 after, in the same transaction."""
        await c.execute(self._call_contribution("calls.id = $1", sign), call_id)
        await c.execute(self._rang_contribution("call_id = $1", sign), call_id)

    async def _count_task_calls(self, c: Any, task_ids: list[int], sign: int) -> None:
        """The same for every call linked to these callback tasks (their owner changes)."""
        if task_ids:
            tasks = self._ids_in(1)  # type: ignore[attr-defined]
            where = f"calls.id IN (SELECT call_id FROM callback_calls WHERE task_id {tasks})"
            await c.execute(
                self._call_contribution(where, sign),
                self._ids_param(task_ids),  # type: ignore[attr-defined]
            )

    async def rebuild_figures(self) -> tuple[int, int]:
        """Recompute every figure from the calls, in one transaction (readers see the
        old figures until it commits).  Returns the numbers of rows written."""
        async with self._tx() as c:  # type: ignore[attr-defined]
            await c.execute("DELETE FROM call_figures")
            await c.execute("DELETE FROM rang_figures")
            await c.execute(self._call_contribution("TRUE", 1))
            await c.execute(self._rang_contribution("TRUE", 1))
            figures = int(await c.fetchval("SELECT COUNT(*) FROM call_figures"))
            rang = int(await c.fetchval("SELECT COUNT(*) FROM rang_figures"))
        return figures, rang
