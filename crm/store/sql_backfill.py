"""CDR backfill bookkeeping per link (``cdr_backfill``): the watermark, the Master.csv
position, and the last run's figures.  A mixin of ``SqlStore`` (uses ``_use``, ``_tx``)."""

from __future__ import annotations

from typing import Any

from ..models import BackfillState
from .sql_common import Row, columns

_RUN_COLS = (
    "file_id, file_offset, last_run_at, last_window_start, last_window_end, last_count, "
    "total_count, last_error"
)
"""The columns ``save_backfill_state`` replaces: all but the link and its watermark."""

_COLS = f"link, alive_at, {_RUN_COLS}"
"""``BackfillState``'s fields, so a row is one by name."""


def _state(r: Row) -> BackfillState:
    return BackfillState(**dict(r))


class BackfillQueries:
    async def get_backfill_state(self, link: str) -> BackfillState | None:
        async with self._use() as c:  # type: ignore[attr-defined]
            row = await c.fetchrow(f"SELECT {_COLS} FROM cdr_backfill WHERE link = $1", link)
        return None if row is None else _state(row)

    async def list_backfill_states(self) -> list[BackfillState]:
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(f"SELECT {_COLS} FROM cdr_backfill ORDER BY link")
        return [_state(r) for r in rows]

    async def _upsert_backfill(self, row: dict[str, Any], updates: str) -> None:
        """Write ``row`` (column: value) as its link's row, or, when the link has one,
        change only ``updates`` (SQL that may read the new row as ``excluded``): the two
        writers keep different columns, so each says which it moves."""
        marks = ", ".join(f"${i}" for i in range(1, len(row) + 1))
        async with self._use() as c:  # type: ignore[attr-defined]
            await c.execute(
                f"INSERT INTO cdr_backfill ({', '.join(row)}) VALUES ({marks}) "
                f"ON CONFLICT (link) DO UPDATE SET {updates}",
                *row.values(),
            )

    async def mark_link_alive(self, link: str, at: float) -> None:
        """The link was up at ``at``; the watermark only moves forward."""
        await self._upsert_backfill(
            {"link": link, "alive_at": at, "updated_at": at},
            "alive_at = CASE "
            "WHEN cdr_backfill.alive_at IS NULL OR cdr_backfill.alive_at < excluded.alive_at "
            "THEN excluded.alive_at ELSE cdr_backfill.alive_at END, "
            "updated_at = excluded.updated_at",
        )

    async def save_backfill_state(self, state: BackfillState, at: float) -> None:
        """Everything but the watermark, which only ``mark_link_alive`` moves (it is
        written only when the link has no row yet)."""
        replaced = [*columns(_RUN_COLS), "updated_at"]
        await self._upsert_backfill(
            {**{col: getattr(state, col) for col in columns(_COLS)}, "updated_at": at},
            ", ".join(f"{col} = excluded.{col}" for col in replaced),
        )
