"""Web sessions: one row per login, so a logout, "log out everywhere", a password change
or a deactivation ends the session in every web process at once.  A mixin of
``SqlStore`` (uses ``_use``)."""

from __future__ import annotations

from ..models import WebSession
from .sql_common import Row

SESSION_COLS = "id, user_id, created_at, last_seen_at, ended_at, address, user_agent"


def _session(row: Row) -> WebSession:
    return WebSession(**dict(row))


class SessionQueries:
    async def add_web_session(self, session: WebSession) -> None:
        async with self._use() as c:  # type: ignore[attr-defined]
            await c.execute(
                f"INSERT INTO web_sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                session.id, session.user_id, session.created_at, session.last_seen_at,
                session.ended_at, session.address[:100], session.user_agent[:300],
            )  # fmt: skip

    async def get_web_session(self, session_id: str) -> WebSession | None:
        async with self._use() as c:  # type: ignore[attr-defined]
            row = await c.fetchrow(
                f"SELECT {SESSION_COLS} FROM web_sessions WHERE id = $1", session_id
            )
        return _session(row) if row else None

    async def touch_web_session(self, session_id: str, at: float) -> None:
        """Note activity (the idle timeout counts from the last touch)."""
        async with self._use() as c:  # type: ignore[attr-defined]
            await c.execute(
                "UPDATE web_sessions SET last_seen_at = $2 "
                "WHERE id = $1 AND ended_at IS NULL AND last_seen_at < $2",
                session_id,
                at,
            )

    async def end_web_sessions(
        self, user_id: int, at: float, *, only: str | None = None, keep: str | None = None
    ) -> int:
        """End the user's open sessions (just ``only``, or all but ``keep``); how many."""
        sql = "UPDATE web_sessions SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL"
        args: list[object] = [user_id, at]
        if only is not None:
            sql += " AND id = $3"
            args.append(only)
        elif keep is not None:
            sql += " AND id <> $3"
            args.append(keep)
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(sql + " RETURNING id", *args)
        return len(rows)

    async def list_web_sessions(self, user_id: int) -> list[WebSession]:
        """The user's sessions not yet ended, newest first."""
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                f"SELECT {SESSION_COLS} FROM web_sessions WHERE user_id = $1 "
                "AND ended_at IS NULL ORDER BY created_at DESC, id",
                user_id,
            )
        return [_session(r) for r in rows]

    async def purge_web_sessions(self, before: float) -> int:
        """Delete sessions ended, or last seen, before ``before``."""
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                "DELETE FROM web_sessions WHERE ended_at < $1 OR last_seen_at < $1 RETURNING id",
                before,
            )
        return len(rows)
