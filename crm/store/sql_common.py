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

CONTACT_COLS = (
    "id, name, company, email, owner_id, tags, custom, lead_status, lead_source, "
    "lead_created_at, created_at, updated_at, last_contact_at, erased"
)
"""The columns ``sql_contacts._contact_row`` reads, in the order the INSERTs write them."""


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
