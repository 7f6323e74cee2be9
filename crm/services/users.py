"""People's accounts: creating one, logging in, passwords, a user's own language and
time zone, extensions, role, switching an account off and on.  Every change but a login
is audited."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .. import passwords
from ..errors import InvalidInput
from ..models import ROLES, Role, User
from .core import ServiceCore

_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_EXTENSION = re.compile(r"^\d{2,6}$")


class UserServices(ServiceCore):
    async def create_user(
        self,
        username: str,
        display_name: str,
        password: str,
        role: Role = "rep",
        extensions: Iterable[str] = (),
        team_id: int | None = None,
        actor: str = "system",
    ) -> User:
        if not _USERNAME.match(username or ""):
            raise InvalidInput("username: 1-64 letters, digits, . _ @ -")
        _check_role(role)
        _check_password(password)
        exts = self._extensions(extensions)
        password_hash = await asyncio.to_thread(passwords.hash_password, password)
        async with self.store.transaction() as tx:
            if await tx.get_user_by_username(username):
                raise InvalidInput(f"username {username!r} is taken")
            for ext in exts:
                if await tx.user_for_extension(ext):
                    raise InvalidInput(f"extension {ext} belongs to another user")
            user = User(
                None,
                username,
                display_name or username,
                role,
                exts,
                password_hash,
                True,
                team_id,
            )
            user = await tx.add_user(user, self.clock())
            await self.audit(actor, "user.created", f"user:{user.id}", {"role": role}, tx)
        return user

    @staticmethod
    def _extensions(extensions: Iterable[str]) -> list[str]:
        exts = sorted({e.strip() for e in extensions if e.strip()})
        for ext in exts:
            if not _EXTENSION.match(ext):
                raise InvalidInput(f"extension {ext!r}: 2-6 digits")
        return exts

    async def authenticate(self, username: str, password: str) -> User | None:
        """The active user with these credentials, else None; upgrades old hashes."""
        user = await self.store.get_user_by_username(username)
        # argon2 costs tens of milliseconds of CPU by design: keep it off the event loop
        ok = await asyncio.to_thread(
            passwords.verify_password, user.password_hash if user else None, password
        )
        if user is None or not ok or not user.active:
            return None
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = await asyncio.to_thread(passwords.hash_password, password)
            await self.store.update_user(user)
        return user

    async def set_password(self, user_id: int, password: str, actor: str) -> None:
        _check_password(password)
        user = await self._user(user_id)
        user.password_hash = await asyncio.to_thread(passwords.hash_password, password)
        await self._save_user(user, actor, "user.password_changed")

    async def set_preferences(
        self, user_id: int, language: str | None, timezone: str | None, actor: str
    ) -> User:
        """A user's own language and time zone (None: not chosen, the install's apply).
        The web layer knows which languages it has catalogs for and checks that; a time
        zone must be a name the system's zone database knows."""
        if language is not None and not re.fullmatch(r"[a-z]{2,3}(_[A-Za-z]{2,4})?", language):
            raise InvalidInput("language: not a language code")
        if timezone is not None:
            try:
                if timezone.startswith("/") or ".." in timezone:
                    raise ValueError(timezone)
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise InvalidInput("time zone: not a known time zone") from None
        user = await self._user(user_id)
        if (user.language, user.timezone) != (language, timezone):
            old = {"language": user.language, "timezone": user.timezone}
            user.language, user.timezone = language, timezone
            change = {"from": old, "to": {"language": language, "timezone": timezone}}
            await self._save_user(user, actor, "user.preferences", change)
        return user

    async def set_extensions(self, user_id: int, extensions: Iterable[str], actor: str) -> User:
        exts = self._extensions(extensions)
        async with self.store.transaction() as tx:
            user = await self._user(user_id, tx)
            for ext in exts:
                other = await tx.user_for_extension(ext)
                if other and other.id != user_id:
                    raise InvalidInput(f"extension {ext} belongs to {other.username}")
            user.extensions = exts
            await tx.update_user(user)
            await self.audit(actor, "user.extensions", f"user:{user_id}", {"extensions": exts}, tx)
        return user

    async def deactivate_user(self, user_id: int, actor: str) -> User:
        """The user can no longer log in and gets no new calls; history keeps the name."""
        user = await self._user(user_id)
        user.active = False
        await self._save_user(user, actor, "user.deactivated")
        return user

    async def reactivate_user(self, user_id: int, actor: str) -> User:
        user = await self._user(user_id)
        if not user.active:
            user.active = True
            await self._save_user(user, actor, "user.reactivated")
        return user

    async def set_role(self, user_id: int, role: Role, actor: str) -> User:
        _check_role(role)
        user = await self._user(user_id)
        if user.role != role:
            old, user.role = user.role, role
            await self._save_user(user, actor, "user.role", {"from": old, "to": role})
        return user

    async def list_users(self, include_inactive: bool = False) -> list[User]:
        return await self.store.list_users(include_inactive)

    async def _save_user(
        self, user: User, actor: str, action: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Store a changed user and audit the change, in one transaction."""
        async with self.store.transaction() as tx:
            await tx.update_user(user)
            await self.audit(actor, action, f"user:{user.id}", detail, tx)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise InvalidInput("password: at least 8 characters")
