"""API tokens: stored as SHA-256, found by hash with their owner, revoked.
A mixin of ``SqlStore`` (uses ``_use``, ``_updated``, and ``_users`` of ``sql_users``)."""

from __future__ import annotations

from ..models import ApiToken, User
from .sql_common import Row
from .sql_users import USER_COLS

TOKEN_COLS = "id, user_id, name, created_at, last_used_at, revoked_at, expires_at, scope"


def _token(row: Row) -> ApiToken:
    return ApiToken(**dict(row))


class TokenQueries:
    async def add_api_token(
        self, user_id: int, name: str, token_sha256: str, at: float,
        expires_at: float | None = None, scope: str = "full",
    ) -> ApiToken:  # fmt: skip
        async with self._use() as c:
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
        """The owner of a live (not revoked, not expired) token; notes ``at`` as its last
        use."""
        found = await self.token_for_hash(token_sha256, at)
        return found[0] if found else None

    async def token_for_hash(self, token_sha256: str, at: float) -> tuple[User, ApiToken] | None:
        """A live token and its owner (the scope matters to the caller); notes ``at`` as
        its last use."""
        async with self._use() as c:
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
            rows = await c.fetch(f"SELECT {USER_COLS} FROM users WHERE id = $1", token.user_id)
            users: list[User] = await self._users(c, rows)
        return (users[0], token) if users else None

    async def get_api_token(self, token_id: int) -> ApiToken | None:
        async with self._use() as c:
            row = await c.fetchrow(f"SELECT {TOKEN_COLS} FROM api_tokens WHERE id = $1", token_id)
        return _token(row) if row else None

    async def list_api_tokens(self, user_id: int | None = None) -> list[ApiToken]:
        async with self._use() as c:
            if user_id is None:
                rows = await c.fetch(f"SELECT {TOKEN_COLS} FROM api_tokens ORDER BY id")
            else:
                rows = await c.fetch(
                    f"SELECT {TOKEN_COLS} FROM api_tokens WHERE user_id = $1 ORDER BY id",
                    user_id,
                )
        return [_token(r) for r in rows]

    async def revoke_api_token(self, token_id: int, at: float) -> bool:
        """False when there is no such live token."""
        return await self._set_by_id(
            "api_tokens", "revoked_at = $2", token_id, at, only="revoked_at IS NULL"
        )
