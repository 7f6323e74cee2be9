"""Small tables with simple lifecycles: the recordings catalogue, API tokens, and the
admin settings.  A mixin of ``SqlStore`` (uses ``_use``, ``_users``)."""

from __future__ import annotations

from typing import Any

from ..models import ApiToken, RecordingRow, RecordingStatus, User
from .sql_common import Row, dumps, loads

REC_COLS = (
    "id, call_id, path, status, duration_seconds, media_path, size_bytes, error, "
    "checked_at, created_at"
)
GAVE_UP = "file never appeared"
"""The error the recordings worker writes on a ``missing`` row when it stops waiting for
the file (``recordings.catalog.GAVE_UP``); such rows leave the checking queue."""
TOKEN_COLS = "id, user_id, name, created_at, last_used_at, revoked_at, expires_at, scope"


def _recording(row: Row) -> RecordingRow:
    return RecordingRow(
        id=row["id"],
        call_id=row["call_id"],
        path=row["path"],
        status=row["status"],
        duration_seconds=row["duration_seconds"],
        media_path=row["media_path"],
        size_bytes=row["size_bytes"],
        error=row["error"],
        checked_at=row["checked_at"],
        created_at=row["created_at"],
    )


def _token(row: Row) -> ApiToken:
    return ApiToken(**dict(row))


class CatalogueQueries:
    # -- recordings ------------------------------------------------------------------
    async def _recordings(self, sql: str, *args: Any) -> list[RecordingRow]:
        async with self._use() as c:  # type: ignore[attr-defined]
            return [_recording(r) for r in await c.fetch(sql, *args)]

    async def recordings_to_check(self, limit: int = 100) -> list[RecordingRow]:
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
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
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
        return bool(rows)

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
        return await self._recordings(
            f"SELECT {REC_COLS} FROM call_recordings WHERE created_at < $1 "
            "AND status <> 'deleted' ORDER BY created_at, id LIMIT $2",
            before,
            limit,
        )

    async def mark_recording_deleted(self, rec_id: int, at: float) -> bool:
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                "UPDATE call_recordings SET status = 'deleted', checked_at = $2 "
                "WHERE id = $1 RETURNING id",
                rec_id,
                at,
            )
        return bool(rows)

    # -- API tokens ------------------------------------------------------------------
    async def add_api_token(
        self, user_id: int, name: str, token_sha256: str, at: float,
        expires_at: float | None = None, scope: str = "full",
    ) -> ApiToken:  # fmt: skip
        async with self._use() as c:  # type: ignore[attr-defined]
            row = await c.fetchrow(
                "INSERT INTO api_tokens (user_id, name, token_sha256, created_at, expires_at, "
                f"scope) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TOKEN_COLS}",
                user_id,
                name,
                token_sha256,
                at,
                expires_at,
                scope,
            )
        assert row is not None
        return _token(row)

    async def user_for_token_hash(self, token_sha256: str, at: float) -> User | None:
        found = await self.token_for_hash(token_sha256, at)
        return found[0] if found else None

    async def token_for_hash(self, token_sha256: str, at: float) -> tuple[User, ApiToken] | None:
        async with self._use() as c:  # type: ignore[attr-defined]
            row = await c.fetchrow(
                "UPDATE api_tokens SET last_used_at = $2 WHERE token_sha256 = $1 "
                "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2) "
                f"RETURNING {TOKEN_COLS}",
                token_sha256,
                at,
            )
            if row is None:
                return None
            token = _token(row)
            rows = await c.fetch(
                "SELECT id, username, display_name, role, password_hash, active, team_id, "
                "language, timezone FROM users WHERE id = $1",
                token.user_id,
            )
            users: list[User] = await self._users(c, rows)  # type: ignore[attr-defined]
        return (users[0], token) if users else None

    async def get_api_token(self, token_id: int) -> ApiToken | None:
        async with self._use() as c:  # type: ignore[attr-defined]
            row = await c.fetchrow(f"SELECT {TOKEN_COLS} FROM api_tokens WHERE id = $1", token_id)
        return _token(row) if row else None

    async def list_api_tokens(self, user_id: int | None = None) -> list[ApiToken]:
        async with self._use() as c:  # type: ignore[attr-defined]
            if user_id is None:
                rows = await c.fetch(f"SELECT {TOKEN_COLS} FROM api_tokens ORDER BY id")
            else:
                rows = await c.fetch(
                    f"SELECT {TOKEN_COLS} FROM api_tokens WHERE user_id = $1 ORDER BY id",
                    user_id,
                )
        return [_token(r) for r in rows]

    async def revoke_api_token(self, token_id: int, at: float) -> bool:
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL "
                "RETURNING id",
                token_id,
                at,
            )
        return bool(rows)

    # -- settings --------------------------------------------------------------------
    async def get_setting(self, section: str) -> dict[str, Any] | None:
        async with self._use() as c:  # type: ignore[attr-defined]
            value = await c.fetchval("SELECT value FROM settings WHERE section = $1", section)
        return None if value is None else dict(loads(value) or {})

    async def setting_sections(self) -> list[str]:
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch("SELECT section FROM settings ORDER BY section")
        return [str(r[0]) for r in rows]

    async def put_setting(self, section: str, values: dict[str, Any], at: float) -> None:
        async with self._use() as c:  # type: ignore[attr-defined]
            await c.execute(
                "INSERT INTO settings (section, value, updated_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (section) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                section,
                dumps(values),
                at,
            )
