"""CDR backfill bookkeeping per link (``cdr_backfill``): the watermark, the Master.csv
position, and the last run's figures.  A mixin of ``SqlStore`` (uses ``_use``, ``_tx``)."""

from __future__ import annotations

from ..models import BackfillState
from .sql_common import Row

_COLS = (
    "link, alive_at, file_id, file_offset, last_run_at, last_window_start, "
    "last_window_end, last_count, total_count, last_error"
)
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

    # Alike in shape to save_backfill_state: each upsert moves its own columns.
    async def mark_link_alive(self, link: str, at: float) -> None:
        """The link was up at ``at``; the watermark only moves forward."""
        async with self._use() as c:  # type: ignore[attr-defined]
            await c.execute(
                "INSERT INTO cdr_backfill (link, alive_at, updated_at) VALUES ($1, $2, $2) "
                "ON CONFLICT (link) DO UPDATE SET alive_at = CASE "
                "WHEN cdr_backfill.alive_at IS NULL OR cdr_backfill.alive_at < excluded.alive_at "
                "THEN excluded.alive_at ELSE cdr_backfill.alive_at END, "
                "updated_at = excluded.updated_at",
                link,
                at,
            )

    async def save_backfill_state(self, state: BackfillState, at: float) -> None:
        """Everything but the watermark, which only ``mark_link_alive`` moves."""
        async with self._use() as c:  # type: ignore[attr-defined]
            await c.execute(
                "INSERT INTO cdr_backfill (link, alive_at, file_id, file_offset, last_run_at, "
                "last_window_start, last_window_end, last_count, total_count, last_error, "
                "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
                "ON CONFLICT (link) DO UPDATE SET file_id = excluded.file_id, "
                "file_offset = excluded.file_offset, last_run_at = excluded.last_run_at, "
                "last_window_start = excluded.last_window_start, "
                "last_window_end = excluded.last_window_end, last_count = excluded.last_count, "
                "total_count = excluded.total_count, last_error = excluded.last_error, "
                "updated_at = excluded.updated_at",
                state.link,
                state.alive_at,
                state.file_id,
                state.file_offset,
                state.last_run_at,
                state.last_window_start,
                state.last_window_end,
                state.last_count,
                state.total_count,
                state.last_error,
                at,
            )
