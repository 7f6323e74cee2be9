"""The recordings catalogue (``call_recordings``): the files the worker checks, their
state, and what retention deletes.  A mixin of ``SqlStore`` (uses ``_use``, ``_updated``)."""

from __future__ import annotations

from typing import Any

from ..models import RecordingRow, RecordingStatus
from .sql_common import Row

REC_COLS = (
    "id, call_id, path, status, duration_seconds, media_path, size_bytes, error, "
    "checked_at, created_at"
)
"""``RecordingRow``'s fields, so a row is one by name."""
GAVE_UP = "file never appeared"
"""The error the recordings worker writes on a ``missing`` row when it stops waiting for
the file (``recordings.catalog.GAVE_UP``); such rows leave the checking queue."""


def _recording(row: Row) -> RecordingRow:
    return RecordingRow(**dict(row))


class RecordingQueries:
    async def _recordings(self, sql: str, *args: Any) -> list[RecordingRow]:
        async with self._use() as c:
            return [_recording(r) for r in await c.fetch(sql, *args)]

    async def recordings_to_check(self, limit: int = 100) -> list[RecordingRow]:
        """Pending files, and missing ones the worker has not given up on, oldest first."""
        return await self._recordings(
            f"SELECT {REC_COLS} FROM call_recordings WHERE status = 'pending' OR "
            "(status = 'missing' AND (error IS NULL OR error <> $2)) "
            "ORDER BY created_at, id LIMIT $1",
            limit,
            GAVE_UP,
        )

    async def update_recording(
        self,
        rec_id: int,
        *,
        status: RecordingStatus,
        duration_seconds: float | None,
        media_path: str | None,
        size_bytes: int | None,
        error: str | None,
        at: float,
    ) -> bool:
        """Facts passed as None keep what was known (a file that went missing keeps its
        duration); ``error`` is always replaced, so a good check clears an old error."""
        return await self._updated(
            "UPDATE call_recordings SET status = $2, "
            "duration_seconds = COALESCE($3, duration_seconds), "
            "media_path = COALESCE($4, media_path), size_bytes = COALESCE($5, size_bytes), "
            "error = $6, checked_at = $7 WHERE id = $1 RETURNING id",
            rec_id,
            status,
            duration_seconds,
            media_path,
            size_bytes,
            error,
            at,
        )

    async def get_recording(self, rec_id: int) -> RecordingRow | None:
        found = await self._recordings(
            f"SELECT {REC_COLS} FROM call_recordings WHERE id = $1", rec_id
        )
        return found[0] if found else None

    async def recordings_for_call(self, call_id: int) -> list[RecordingRow]:
        return await self._recordings(
            f"SELECT {REC_COLS} FROM call_recordings WHERE call_id = $1 ORDER BY id", call_id
        )

    async def recordings_older_than(self, before: float, limit: int) -> list[RecordingRow]:
        """Not yet deleted, created before ``before``, oldest first."""
        return await self._recordings(
            f"SELECT {REC_COLS} FROM call_recordings WHERE created_at < $1 "
            "AND status <> 'deleted' ORDER BY created_at, id LIMIT $2",
            before,
            limit,
        )

    async def mark_recording_deleted(self, rec_id: int, at: float) -> bool:
        return await self._set_by_id(
            "call_recordings", "status = 'deleted', checked_at = $2", rec_id, at
        )
