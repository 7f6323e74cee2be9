"""Teams, users and the extensions each user answers (``user_extensions``).

A mixin of ``SqlStore`` (uses ``_use``, ``_use_read``, ``_tx``, ``_ids_in``, ``_ids_param``);
``_users`` turns user rows into ``User``s, extensions included, for the other mixins too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..models import Team, User
from .sql_common import Row, children, columns, values

USER_COLS = "id, username, display_name, role, password_hash, active, team_id, language, timezone"

if TYPE_CHECKING:
    from .sql import Conn


def _user_args(user: User) -> tuple[Any, ...]:
    """The user's columns in the order both the INSERT and the UPDATE bind them: those
    of ``USER_COLS`` but ``id``."""
    return values(user, columns(USER_COLS)[1:])


_EXTENSIONS = "SELECT user_id, extension FROM user_extensions"


def _extension(r: Row) -> str:
    return r["extension"]


class UserQueries:
    async def add_team(self, name: str) -> Team:
        async with self._use() as c:
            team_id = await c.fetchval("INSERT INTO teams (name) VALUES ($1) RETURNING id", name)
        return Team(team_id, name)

    async def list_teams(self) -> list[Team]:
        async with self._use() as c:
            rows = await c.fetch("SELECT id, name FROM teams ORDER BY name")
        return [Team(r["id"], r["name"]) for r in rows]

    async def _extensions(self, c: Conn, user_ids: Sequence[int]) -> dict[int, list[str]]:
        return await children(self, c, user_ids, _EXTENSIONS, "user_id", "extension", _extension)

    async def _users(self, c: Conn, rows: list[Row]) -> list[User]:
        exts = await self._extensions(c, [r["id"] for r in rows])
        return [
            User(
                id=r["id"],
                username=r["username"],
                display_name=r["display_name"],
                role=r["role"],
                extensions=exts[r["id"]],
                password_hash=r["password_hash"],
                active=bool(r["active"]),
                team_id=r["team_id"],
                language=r["language"],
                timezone=r["timezone"],
            )
            for r in rows
        ]

    async def _insert_extensions(self, c: Conn, user: User) -> None:
        await c.executemany(
            "INSERT INTO user_extensions (extension, user_id) VALUES ($1, $2)",
            [(ext, user.id) for ext in user.extensions],
        )

    async def add_user(self, user: User, at: float) -> User:
        async with self._tx() as c:
            user.id = await c.fetchval(
                "INSERT INTO users (username, display_name, role, password_hash, active, "
                "team_id, language, timezone, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                *_user_args(user),
                at,
            )
            await self._insert_extensions(c, user)
        return user

    async def update_user(self, user: User) -> None:
        """Writes every field, extensions included (replaced)."""
        async with self._tx() as c:
            await c.execute(
                "UPDATE users SET username = $2, display_name = $3, role = $4, "
                "password_hash = $5, active = $6, team_id = $7, language = $8, timezone = $9 "
                "WHERE id = $1",
                user.id,
                *_user_args(user),
            )
            await c.execute("DELETE FROM user_extensions WHERE user_id = $1", user.id)
            await self._insert_extensions(c, user)

    async def get_user(self, user_id: int) -> User | None:
        async with self._use() as c:
            rows = await c.fetch(f"SELECT {USER_COLS} FROM users WHERE id = $1", user_id)
            users = await self._users(c, rows)
        return users[0] if users else None

    async def get_user_by_username(self, username: str) -> User | None:
        async with self._use() as c:
            rows = await c.fetch(f"SELECT {USER_COLS} FROM users WHERE username = $1", username)
            users = await self._users(c, rows)
        return users[0] if users else None

    async def user_for_extension(self, extension: str) -> User | None:
        async with self._use() as c:
            rows = await c.fetch(
                f"SELECT {', '.join('u.' + x.strip() for x in USER_COLS.split(','))} "
                "FROM user_extensions e JOIN users u ON u.id = e.user_id "
                "WHERE e.extension = $1",
                extension,
            )
            users = await self._users(c, rows)
        return users[0] if users else None

    async def list_users(self, include_inactive: bool = False) -> list[User]:
        async with self._use_read() as c:
            rows = await c.fetch(
                f"SELECT {USER_COLS} FROM users WHERE active OR $1 ORDER BY username",
                include_inactive,
            )
            return await self._users(c, rows)
