"""API tokens for integrations: a random bearer secret shown once, stored only as its
SHA-256 so a leaked database does not leak working credentials.  SHA-256 (not argon2)
is right here: the secret has 256 bits of entropy, and every API request checks it."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput, NotFound
from .models import ApiToken, User

if TYPE_CHECKING:
    from .store import Store

PREFIX = "crm_"
SCOPES = ("full", "read")
"""``read``: GET and HEAD only (reports, exports, polling integrations)."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenServices:
    store: Store
    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by CrmService

        async def audit(
            self, actor: str, action: str, target: str = "", detail: Any = None, store: Any = None
        ) -> Any: ...

    async def create_api_token(
        self, user_id: int, name: str, actor: str, *, expires_at: float | None = None,
        scope: str = "full",
    ) -> str:  # fmt: skip
        """A new token for ``user_id``; the plaintext is returned here and never again.
        ``scope`` ``read`` limits it to reading (GET/HEAD); ``expires_at`` ends it."""
        name = (name or "").strip()
        if not name or len(name) > 100:
            raise InvalidInput("token name: 1-100 characters")
        if scope not in SCOPES:
            raise InvalidInput(f"token scope: one of {', '.join(SCOPES)}")
        if expires_at is not None and expires_at <= self.clock():
            raise InvalidInput("token expiry: must be in the future")
        user = await self.store.get_user(user_id)
        if user is None or not user.active:
            raise NotFound(f"active user {user_id}")
        token = PREFIX + secrets.token_urlsafe(32)
        async with self.store.transaction() as tx:
            row = await tx.add_api_token(user_id, name, token_hash(token), self.clock(),
                                         expires_at, scope)  # fmt: skip
            await self.audit(
                actor, "api_token.created", f"user:{user_id}",
                {"token_id": row.id, "name": name, "scope": scope, "expires_at": expires_at},
                tx,
            )  # fmt: skip
        return token

    async def user_for_api_token(self, token: str | None) -> User | None:
        """The active user a live token belongs to, else None."""
        found = await self.api_token_auth(token)
        return found[0] if found else None

    async def api_token_auth(self, token: str | None) -> tuple[User, ApiToken] | None:
        """The active user a live (not revoked, not expired) token belongs to, with the
        token (its scope limits what the request may do), else None."""
        if not token or not token.startswith(PREFIX) or len(token) > 200:
            return None
        found = await self.store.token_for_hash(token_hash(token), self.clock())
        return found if found is not None and found[0].active else None

    async def revoke_api_token(self, token_id: int, actor: str) -> bool:
        """True when the token was live and is now revoked."""
        async with self.store.transaction() as tx:
            row = await tx.get_api_token(token_id)
            if row is None or not await tx.revoke_api_token(token_id, self.clock()):
                return False
            await self.audit(
                actor, "api_token.revoked", f"user:{row.user_id}", {"token_id": token_id}, tx
            )
        return True

    async def list_api_tokens(self, user_id: int | None = None) -> list[ApiToken]:
        return await self.store.list_api_tokens(user_id)
