"""Callback tasks and their attempts: the SQL of ``crm.callbacks`` (misses open tasks,
answers close them) and ``crm.callback_work`` (claim, attempt, snooze, close, overdue).

Who may see an unowned task is decided here as in ``crm.access``: the users whose
extensions its calls rang (``callback_rang`` joined to ``user_extensions``), never everyone.
A mixin of ``SqlStore`` (uses ``_use``, ``_tx``, ``_ids_in``, ``_ids_param``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..models import CallbackAttempt, CallbackStatus, CallbackTask
from .params import UserIds
from .sql_common import columns, values

Row = Mapping[str, Any]

TASK_COLS = (
    "id, number_e164, contact_id, owner_id, opened_at, due_at, closed_at, closed_by_user_id, "
    "closed_by_call_id, time_to_callback, missed_count, status, attempts, snoozed_until, "
    "close_reason, claimed_at, overdue_at, kind"
)
_RUNG_USERS = (
    "SELECT DISTINCT ue.user_id FROM callback_rang r "
    "JOIN user_extensions ue ON ue.extension = r.extension WHERE r.task_id = $1"
)
"""The users a task's calls rang, from ``callback_rang`` (migration 0022): a few rows per
task however many times its number called."""


def task_row(row: Row, rung: tuple[int, ...] = ()) -> CallbackTask:
    """A row of ``TASK_COLS`` (the task's fields by name, but ``closed_by_call_id``)."""
    fields = dict(row)
    fields["closed_by_call"] = fields.pop("closed_by_call_id")
    return CallbackTask(**fields, rung_user_ids=rung)


_TASK_FIELDS = [
    "closed_by_call" if col == "closed_by_call_id" else col for col in columns(TASK_COLS)[1:]
]
"""The task's fields in the order of ``TASK_COLS`` but ``id``: how the INSERT and the
UPDATE bind them."""


def _task_args(task: CallbackTask) -> tuple[Any, ...]:
    return values(task, _TASK_FIELDS)


class CallbackQueries:
    def _visible_task(self, alias: str, n: int) -> str:
        """SQL: task ``alias`` is visible to the user ids bound as $n (``crm.access``):
        owned by one of them, or unowned and one of its calls rang one of them."""
        ids_in = self._ids_in(n)  # type: ignore[attr-defined]
        return (
            f"({alias}.owner_id {ids_in} OR ({alias}.owner_id IS NULL AND EXISTS ("
            "SELECT 1 FROM callback_rang xr JOIN user_extensions xu ON xu.extension = xr.extension "
            f"WHERE xr.task_id = {alias}.id AND xu.user_id {ids_in})))"
        )

    async def add_callback(self, task: CallbackTask) -> CallbackTask:
        async with self._use() as c:  # type: ignore[attr-defined]
            task.id = await c.fetchval(
                "INSERT INTO callback_tasks (number_e164, contact_id, owner_id, opened_at, "
                "due_at, closed_at, closed_by_user_id, closed_by_call_id, time_to_callback, "
                "missed_count, status, attempts, snoozed_until, close_reason, claimed_at, "
                "overdue_at, kind) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
                "$13, $14, $15, $16, $17) RETURNING id",
                *_task_args(task),
            )
        return task

    async def save_callback(self, task: CallbackTask) -> None:
        async with self._tx() as c:  # type: ignore[attr-defined]
            # A new owner changes who may see the task's calls: their figures move.
            owner_before = await c.fetchrow(
                "SELECT owner_id, time_to_callback FROM callback_tasks WHERE id = $1", task.id
            )
            moved = owner_before is not None and owner_before["owner_id"] != task.owner_id
            # So does its time to callback the audit's figures (closed, reopened).
            returned = (
                owner_before is not None
                and owner_before["time_to_callback"] != task.time_to_callback
            )
            if moved:
                await self._count_task_calls(c, [task.id], -1)  # type: ignore[attr-defined]
            await c.execute(
                "UPDATE callback_tasks SET number_e164 = $2, contact_id = $3, owner_id = $4, "
                "opened_at = $5, due_at = $6, closed_at = $7, closed_by_user_id = $8, "
                "closed_by_call_id = $9, time_to_callback = $10, missed_count = $11, "
                "status = $12, attempts = $13, snoozed_until = $14, close_reason = $15, "
                "claimed_at = $16, overdue_at = $17, kind = $18 WHERE id = $1",
                task.id,
                *_task_args(task),
            )
            if moved:
                await self._count_task_calls(c, [task.id], 1)  # type: ignore[attr-defined]
            elif returned:
                await self._count_callbacks(c, [task.id])  # type: ignore[attr-defined]

    async def _one_task(self, sql: str, *args: Any, pop: bool = False) -> CallbackTask | None:
        """``pop``: on the screen pop's path, read without waiting behind a write."""
        use = self._use_read if pop else self._use  # type: ignore[attr-defined]
        async with use() as c:
            row = await c.fetchrow(sql, *args)
            if not row:
                return None
            rung = await c.fetch(_RUNG_USERS, row["id"])
        return task_row(row, tuple(sorted(r["user_id"] for r in rung)))

    async def callback_rung_users(self, task_id: int) -> tuple[int, ...]:
        """The users the task's calls rang (``CallbackTask.rung_user_ids``)."""
        async with self._use() as c:  # type: ignore[attr-defined]
            rung = await c.fetch(_RUNG_USERS, task_id)
        return tuple(sorted(r["user_id"] for r in rung))

    async def get_callback(self, task_id: int) -> CallbackTask | None:
        return await self._one_task(
            f"SELECT {TASK_COLS} FROM callback_tasks WHERE id = $1", task_id
        )

    async def open_callback_for_number(self, e164: str) -> CallbackTask | None:
        return await self._one_task(
            f"SELECT {TASK_COLS} FROM callback_tasks WHERE number_e164 = $1 AND status = 'open'",
            e164,
            pop=True,
        )

    async def link_callback_call(self, task_id: int, call_id: int) -> bool:
        """True when the call was not linked to the task before (idempotent ingest)."""
        async with self._tx() as c:  # type: ignore[attr-defined]
            # The task's owner joins the call's visibility: its figures move.
            await self._count_call(c, call_id, -1)  # type: ignore[attr-defined]
            rows = await c.fetch(
                "INSERT INTO callback_calls (task_id, call_id) VALUES ($1, $2) "
                "ON CONFLICT (task_id, call_id) DO NOTHING RETURNING task_id",
                task_id,
                call_id,
            )
            await c.execute(
                "INSERT INTO callback_rang (task_id, extension) SELECT $1, extension "
                "FROM call_rang WHERE call_id = $2 ON CONFLICT (task_id, extension) DO NOTHING",
                task_id,
                call_id,
            )
            await self._count_call(c, call_id, 1)  # type: ignore[attr-defined]
        return bool(rows)

    async def callback_for_call(self, call_id: int) -> CallbackTask | None:
        cols = ", ".join("t." + x.strip() for x in TASK_COLS.split(","))
        return await self._one_task(
            f"SELECT {cols} FROM callback_calls cc JOIN callback_tasks t ON t.id = cc.task_id "
            "WHERE cc.call_id = $1 ORDER BY t.id DESC LIMIT 1",
            call_id,
        )

    async def list_callbacks(
        self,
        owner_id: int | None = None,
        status: CallbackStatus | None = "open",
        limit: int = 200,
        user_ids: UserIds = None,
    ) -> list[CallbackTask]:
        """Oldest due first; with ``user_ids`` only theirs, and unowned ones whose calls
        rang one of them."""
        args: list[Any] = [limit]
        where: list[str] = []
        if user_ids is not None:
            args.append(self._ids_param(user_ids))  # type: ignore[attr-defined]
            where.append(self._visible_task("t", len(args)))
        if owner_id is not None:
            args.append(owner_id)
            where.append(f"t.owner_id = ${len(args)}")
        if status is not None:
            args.append(status)
            where.append(f"t.status = ${len(args)}")
        sql = f"SELECT {TASK_COLS} FROM callback_tasks t"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY t.due_at, t.id LIMIT $1"
        async with self._use() as c:  # type: ignore[attr-defined]
            return [task_row(r) for r in await c.fetch(sql, *args)]

    async def callbacks_for_contact(self, contact_id: int, limit: int = 500) -> list[CallbackTask]:
        """Newest opened first."""
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                f"SELECT {TASK_COLS} FROM callback_tasks WHERE contact_id = $1 "
                "ORDER BY opened_at DESC, id DESC LIMIT $2",
                contact_id,
                limit,
            )
        return [task_row(r) for r in rows]

    # -- the workflow ------------------------------------------------------------------
    async def least_loaded_rung_user(self, call_id: int) -> int | None:
        """Of the active users whose extensions ``call_id`` rang, the one with the fewest
        open callbacks (then the lowest id, so the choice is reproducible)."""
        async with self._use() as c:  # type: ignore[attr-defined]
            return await c.fetchval(
                "SELECT u.id FROM users u WHERE u.active AND u.id IN ("
                "SELECT ue.user_id FROM call_rang cr JOIN user_extensions ue "
                "ON ue.extension = cr.extension WHERE cr.call_id = $1) "
                "ORDER BY (SELECT count(*) FROM callback_tasks t "
                "WHERE t.owner_id = u.id AND t.status = 'open'), u.id LIMIT 1",
                call_id,
            )

    async def add_callback_attempt(self, attempt: CallbackAttempt) -> CallbackAttempt:
        attempt.id = await self._inserted(  # type: ignore[attr-defined]
            "callback_attempts", attempt, "task_id, user_id, at, result, comment"
        )
        return attempt

    async def callback_attempts(self, task_ids: list[int]) -> list[CallbackAttempt]:
        """The attempts on these tasks, oldest first."""
        if not task_ids:
            return []
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                "SELECT id, task_id, user_id, at, result, comment FROM callback_attempts "
                f"WHERE task_id {self._ids_in(1)} ORDER BY at, id",  # type: ignore[attr-defined]
                self._ids_param(task_ids),  # type: ignore[attr-defined]
            )
        return [CallbackAttempt(**dict(r)) for r in rows]

    async def overdue_unsignalled(self, now: float, limit: int = 200) -> list[CallbackTask]:
        """Open tasks past due (and past any snooze) whose overdue signal has not gone out."""
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                f"SELECT {TASK_COLS} FROM callback_tasks WHERE status = 'open' "
                "AND overdue_at IS NULL AND due_at < $1 "
                "AND (snoozed_until IS NULL OR snoozed_until < $1) ORDER BY due_at, id LIMIT $2",
                now,
                limit,
            )
            out = []
            for r in rows:
                rung = await c.fetch(_RUNG_USERS, r["id"])
                out.append(task_row(r, tuple(sorted(x["user_id"] for x in rung))))
        return out

    async def mark_callback_overdue(self, task_id: int, at: float) -> bool:
        """Claim the overdue signal of one task: True for exactly one caller, however many
        processes sweep at once."""
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                "UPDATE callback_tasks SET overdue_at = $2 WHERE id = $1 AND overdue_at IS NULL "
                "AND status = 'open' RETURNING id",
                task_id,
                at,
            )
        return bool(rows)
