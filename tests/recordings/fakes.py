"""An in-memory ``RecordingCatalog`` with the semantics the CRM's store gives it."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(slots=True, frozen=True)
class Row:
    id: int
    call_id: int
    path: str
    status: str = "pending"
    duration_seconds: float | None = None
    media_path: str | None = None
    size_bytes: int | None = None
    error: str | None = None
    checked_at: float | None = None
    created_at: float = 0.0


class FakeCatalog:
    def __init__(self) -> None:
        self.rows: dict[int, Row] = {}
        self.updates: list[tuple[int, str]] = []
        self.fail_updates_for: set[int] = set()

    def add(self, path: str, *, call_id: int = 1, created_at: float = 0.0, **kw: object) -> Row:
        row = Row(len(self.rows) + 1, call_id, path, created_at=created_at, **kw)  # type: ignore[arg-type]
        self.rows[row.id] = row
        return row

    async def recordings_to_check(self, limit: int = 100) -> list[Row]:
        """As the SQL store does it today: pending and missing (given up or not), oldest
        first."""
        due = [r for r in self.rows.values() if r.status in ("pending", "missing")]
        due.sort(key=lambda r: (r.created_at, r.id))
        return due[:limit]

    async def update_recording(
        self,
        rec_id: int,
        *,
        status: str,
        duration_seconds: float | None = None,
        media_path: str | None = None,
        size_bytes: int | None = None,
        error: str | None = None,
        at: float,
    ) -> bool:
        if rec_id in self.fail_updates_for:
            raise RuntimeError("database is locked")
        self.updates.append((rec_id, status))
        self.rows[rec_id] = replace(
            self.rows[rec_id],
            status=status,
            duration_seconds=duration_seconds,
            media_path=media_path,
            size_bytes=size_bytes,
            error=error,
            checked_at=at,
        )
        return True

    async def get_recording(self, rec_id: int) -> Row | None:
        return self.rows.get(rec_id)

    async def recordings_for_call(self, call_id: int) -> list[Row]:
        return [r for r in self.rows.values() if r.call_id == call_id]

    async def recordings_older_than(self, before: float, limit: int) -> list[Row]:
        old = [r for r in self.rows.values() if r.created_at < before and r.status != "deleted"]
        return old[:limit]

    async def mark_recording_deleted(self, rec_id: int, at: float) -> bool:
        if rec_id not in self.rows:
            return False
        self.rows[rec_id] = replace(self.rows[rec_id], status="deleted", checked_at=at)
        return True
