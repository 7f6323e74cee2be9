"""Helpers the shared SQL modules all use: JSON in text columns, child rows grouped by
their parent's id, and the outcomes that count as a missed call.  Kept apart so the
query modules need not import each other."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

Row = Mapping[str, Any]
T = TypeVar("T")

MISSED_SQL = "IN ('missed', 'abandoned', 'busy', 'no_answer')"
"""``models.MISSED_OUTCOMES`` as SQL."""

TASK_RANG_FROM_CALLS = (
    "INSERT INTO callback_rang (task_id, extension) SELECT DISTINCT rc.task_id, cr.extension "
    "FROM callback_calls rc JOIN call_rang cr ON cr.call_id = rc.call_id"
)
"""``callback_rang`` (migration 0022) made from the tasks' calls: the bulk loader's for every
task, a call written again's for its tasks (with a WHERE)."""

CONTACT_COLS = (
    "id, name, company, email, owner_id, tags, custom, lead_status, lead_source, "
    "lead_created_at, created_at, updated_at, last_contact_at, erased"
)
"""The columns ``sql_contacts._contact_row`` reads, in the order the INSERTs write them."""


def columns(cols: str) -> list[str]:
    """The names in a column list as the SELECTs spell it (``"id, name"``): the row
    readers take a row's fields by these names."""
    return [col.strip() for col in cols.split(",")]


def values(obj: Any, names: Sequence[str]) -> tuple[Any, ...]:
    """``obj``'s attributes ``names``, in order: the values an INSERT or UPDATE binds."""
    return tuple(getattr(obj, name) for name in names)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def grouped(
    ids: Sequence[int], rows: Iterable[Row], key: str, value: Callable[[Row], T]
) -> dict[int, list[T]]:
    """``value`` of each row, listed under the id in its ``key`` column; every id has a
    list (empty when no row names it)."""
    out: dict[int, list[T]] = {i: [] for i in ids}
    for r in rows:
        out[r[key]].append(value(r))
    return out


async def children(
    store: Any,
    c: Any,
    ids: Sequence[int],
    select: str,
    key: str,
    order: str,
    value: Callable[[Row], T],
) -> dict[int, list[T]]:
    """The child rows of the parents ``ids`` (``select``, narrowed to ``key`` in ``ids``,
    in ``order``), as ``value`` of each under its parent; every id has a list."""
    if not ids:
        return {}
    rows = await c.fetch(
        f"{select} WHERE {key} {store._ids_in(1)} ORDER BY {order}", store._ids_param(ids)
    )
    return grouped(ids, rows, key, value)


def where_clause(conditions: Sequence[str]) -> str:
    """`` WHERE a AND b`` for the conditions, or nothing when there is none."""
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def rep_calls_where(store: Any, since: float, until: float, user_ids: Any) -> tuple[str, list[Any]]:
    """WHERE text and its arguments ($1, $2, then $3 for ``user_ids``) for the calls a
    rep had in ``[since, until)``, only those reps' when ``user_ids`` is given: what
    every per-rep figure starts from."""
    args: list[Any] = [since, until]
    where = "calls.user_id IS NOT NULL AND calls.started_at >= $1 AND calls.started_at < $2"
    if user_ids is not None:
        args.append(store._ids_param(user_ids))
        where += f" AND calls.user_id {store._ids_in(3)}"
    return where, args
