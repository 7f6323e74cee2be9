"""Teams, who is in which, and what a user may see because of it: a rep their own, a
manager their team's, an admin everything (the rules themselves: ``crm.access``)."""

from __future__ import annotations

from collections.abc import Sequence

from ..access import Scope, scope_of
from ..access import can_see_call as _can_see_call
from ..access import can_see_contact as _can_see_contact
from ..errors import InvalidInput, NotFound
from ..models import Call, Contact, Team, User
from ..store import Store
from .core import ServiceCore


class TeamServices(ServiceCore):
    async def scope_for(self, user: User) -> Scope:
        """What ``user`` may see: a rep themself, a manager their team, an admin all."""
        team: list[User] = []
        if user.role == "manager" and user.team_id is not None:
            team = [
                u
                for u in await self.store.list_users(include_inactive=True)
                if u.team_id == user.team_id
            ]
        return scope_of(user, team)

    async def can_see_call(self, scope: Scope | None, call: Call) -> bool:
        """For a call's own page: the list rule, including the callback owner."""
        if scope is None or scope.user_ids is None or scope.covers(call.user_id):
            return True
        task = await self.store.callback_for_call(call.id) if call.id is not None else None
        return _can_see_call(scope, call, task)

    @staticmethod
    def can_see_contact(scope: Scope | None, contact: Contact) -> bool:
        return _can_see_contact(scope, contact)

    async def create_team(self, name: str, actor: str) -> Team:
        name = (name or "").strip()
        if not name or len(name) > 100:
            raise InvalidInput("team name: 1-100 characters")
        async with self.store.transaction() as tx:
            if any(t.name.lower() == name.lower() for t in await tx.list_teams()):
                raise InvalidInput(f"team {name!r} exists")
            team = await tx.add_team(name)
            await self.audit(actor, "team.created", f"team:{team.id}", {"name": name}, tx)
        return team

    async def list_teams(self) -> list[Team]:
        return await self.store.list_teams()

    async def set_team(self, user_id: int, team_id: int | None, actor: str) -> User:
        async with self.store.transaction() as tx:
            user = await self._user(user_id, tx)
            await _check_team(tx, team_id)
            user.team_id = team_id
            await tx.update_user(user)
            await self.audit(actor, "user.team", f"user:{user_id}", {"team_id": team_id}, tx)
        return user

    async def set_teams(self, user_ids: Sequence[int], team_id: int | None, actor: str) -> int:
        """Several users into one team (None: no team) at once, one audit entry naming
        them; returns how many users changed."""
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            raise InvalidInput("choose at least one user")
        async with self.store.transaction() as tx:
            await _check_team(tx, team_id)
            names = []
            for uid in ids:
                user = await self._user(uid, tx)
                user.team_id = team_id
                await tx.update_user(user)
                names.append(user.username)
            await self.audit(actor, "users.team", f"team:{team_id}", {"users": names}, tx)
        return len(ids)


async def _check_team(tx: Store, team_id: int | None) -> None:
    """NotFound unless ``team_id`` is None (no team) or a team that exists."""
    if team_id is not None and all(t.id != team_id for t in await tx.list_teams()):
        raise NotFound(f"team {team_id}")
