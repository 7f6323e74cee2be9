"""A leaving rep's work to one or more receiving reps: what would move (the preview) and
the move itself, in one transaction.

Who gets what is a pure rule the database applies: a contact goes to receiver number
``contact id mod n``, an open callback to the receiver of its contact (so a lead and its
callback stay together), or by its own id when it has no contact.  The preview and the
move use the same expressions, so what the manager confirmed is what moves.

A mixin of ``SqlStore`` (uses ``_use``, ``_tx``, ``_contacts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import Contact, HandoverShare

OPEN_LEAD_SQL = "lead_status IN ('new', 'contacted', 'qualified')"
_TASK_KEY = "COALESCE(contact_id, id)"


def _bucket(column: str, n: int) -> str:
    # n is a count of receivers (an int we made), never user input
    return f"({column} % {int(n)})"


def _owner_case(column: str, receivers: Sequence[int], first_arg: int) -> str:
    """``CASE (column mod n) WHEN 0 THEN $k ...`` with the receivers bound from $first_arg."""
    n = len(receivers)
    whens = " ".join(f"WHEN {i} THEN CAST(${first_arg + i} AS BIGINT)" for i in range(n))
    return f"CASE {_bucket(column, n)} {whens} END"


class HandoverQueries:
    async def handover_shares(
        self, from_user_id: int, to_user_ids: Sequence[int]
    ) -> list[HandoverShare]:
        """What each receiver would get of ``from_user_id``'s contacts, open leads and
        open callbacks (the rule is this module's docstring)."""
        n = len(to_user_ids)
        if n == 0:
            return []
        counts = {i: [0, 0, 0] for i in range(n)}
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                f"SELECT {_bucket('id', n)} AS b, "
                f"CASE WHEN {OPEN_LEAD_SQL} THEN 1 ELSE 0 END AS is_lead, COUNT(*) AS k "
                "FROM contacts WHERE owner_id = $1 AND NOT erased GROUP BY 1, 2",
                from_user_id,
            )
            for r in rows:
                counts[int(r["b"])][1 if r["is_lead"] else 0] += int(r["k"])
            rows = await c.fetch(
                f"SELECT {_bucket(_TASK_KEY, n)} AS b, COUNT(*) AS k FROM callback_tasks "
                "WHERE owner_id = $1 AND status = 'open' GROUP BY 1",
                from_user_id,
            )
            for r in rows:
                counts[int(r["b"])][2] += int(r["k"])
        return [
            HandoverShare(uid, counts[i][0], counts[i][1], counts[i][2])
            for i, uid in enumerate(to_user_ids)
        ]

    async def handover_sample(self, from_user_id: int, limit: int = 10) -> list[Contact]:
        """A few of the contacts that would move, open leads first, for the preview."""
        from .sql_common import CONTACT_COLS

        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                f"SELECT {CONTACT_COLS} FROM contacts WHERE owner_id = $1 AND NOT erased "
                f"ORDER BY CASE WHEN {OPEN_LEAD_SQL} THEN 0 ELSE 1 END, id LIMIT $2",
                from_user_id,
                limit,
            )
            return await self._contacts(c, rows)  # type: ignore[attr-defined,no-any-return]

    async def handover_move(
        self, from_user_id: int, to_user_ids: Sequence[int], at: float
    ) -> tuple[int, int]:
        """Move the contacts and open callbacks (the preview's rule); returns (contacts
        including leads, callbacks) moved."""
        if not to_user_ids:
            return 0, 0
        args: list[Any] = [from_user_id, *to_user_ids]
        async with self._tx() as c:  # type: ignore[attr-defined]
            # The tasks' calls change owner for the visibility rule: their figures move.
            task_ids = [
                r["id"]
                for r in await c.fetch(
                    "SELECT id FROM callback_tasks WHERE owner_id = $1 AND status = 'open'",
                    from_user_id,
                )
            ]
            await self._count_task_calls(c, task_ids, -1)  # type: ignore[attr-defined]
            tasks = await c.fetch(
                f"UPDATE callback_tasks SET owner_id = {_owner_case(_TASK_KEY, to_user_ids, 2)} "
                "WHERE owner_id = $1 AND status = 'open' RETURNING id",
                *args,
            )
            await self._count_task_calls(c, task_ids, 1)  # type: ignore[attr-defined]
            moved = await c.fetch(
                f"UPDATE contacts SET owner_id = {_owner_case('id', to_user_ids, 2)}, "
                f"updated_at = ${len(args) + 1} WHERE owner_id = $1 AND NOT erased RETURNING id",
                *args,
                at,
            )
        return len(moved), len(tasks)
