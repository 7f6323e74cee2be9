"""Handover: a leaving rep's contacts, open leads and open callbacks go to one or more
receiving reps, previewed first, moved in one transaction, audited with the users' names.

Managers hand over within their own team, admins between anyone.  The split between
receivers is the store's rule (``crm/store/sql_handover.py``): the preview and the move
compute it the same way, so what the manager confirmed is what moves.  ``reassign`` is
the quick form: everything of one rep to one other user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .access import Scope
from .errors import Forbidden, InvalidInput, NotFound
from .models import HandoverPlan, User

if TYPE_CHECKING:
    from .store import Store

MAX_RECEIVERS = 20


class HandoverServices:
    store: Store
    clock: Callable[[], float]

    async def scope_for(self, user: User) -> Scope: ...  # CrmService

    async def audit(self, *args: Any, **kwargs: Any) -> Any: ...  # CrmService

    async def _handover_users(
        self, by: User, from_user_id: int, to_user_ids: Sequence[int]
    ) -> tuple[User, list[User]]:
        if by.role not in ("manager", "admin"):
            raise Forbidden("only managers and admins hand work over")
        receivers = list(dict.fromkeys(to_user_ids))
        if not receivers:
            raise InvalidInput("choose at least one rep to receive the work")
        if len(receivers) > MAX_RECEIVERS:
            raise InvalidInput(f"choose at most {MAX_RECEIVERS} receiving reps")
        if from_user_id in receivers:
            raise InvalidInput("the leaving rep cannot also receive the work")
        scope = await self.scope_for(by)
        leaving = await self.store.get_user(from_user_id)
        if leaving is None or not scope.covers(from_user_id):
            raise NotFound(f"user {from_user_id}")
        out = []
        for uid in receivers:
            user = await self.store.get_user(uid)
            if user is None or not scope.covers(uid):
                raise InvalidInput("choose the receiving reps from the list")
            if not user.active:
                raise InvalidInput(f"{user.display_name} is deactivated and cannot receive work")
            out.append(user)
        return leaving, out

    async def handover_plan(
        self, by: User, from_user_id: int, to_user_ids: Sequence[int], sample: int = 10
    ) -> HandoverPlan:
        """What would move and to whom (nothing moves)."""
        _leaving, receivers = await self._handover_users(by, from_user_id, to_user_ids)
        ids = tuple(u.id or 0 for u in receivers)
        shares = await self.store.handover_shares(from_user_id, ids)
        contacts = await self.store.handover_sample(from_user_id, sample) if sample else []
        return HandoverPlan(from_user_id, ids, tuple(shares), tuple(contacts))

    async def handover(
        self, by: User, from_user_id: int, to_user_ids: Sequence[int]
    ) -> HandoverPlan:
        """Move the leaving rep's contacts (leads included) and open callbacks to the
        receivers; returns the plan that was applied.  All or nothing."""
        leaving, receivers = await self._handover_users(by, from_user_id, to_user_ids)
        ids = tuple(u.id or 0 for u in receivers)
        async with self.store.transaction() as tx:
            shares = await tx.handover_shares(from_user_id, ids)
            contacts, callbacks = await tx.handover_move(from_user_id, ids, self.clock())
            await self.audit(
                by.username,
                "user.handover",
                f"user:{from_user_id}",
                {
                    "from": leaving.username,
                    "from_name": leaving.display_name,
                    "to": [u.username for u in receivers],
                    "to_names": [u.display_name for u in receivers],
                    "contacts": contacts,
                    "leads": sum(s.leads for s in shares),
                    "callbacks": callbacks,
                    "shares": {
                        u.username: {
                            "contacts": s.contacts,
                            "leads": s.leads,
                            "callbacks": s.callbacks,
                        }
                        for u, s in zip(receivers, shares, strict=True)
                    },
                },
                tx,
            )
        return HandoverPlan(from_user_id, ids, tuple(shares))

    async def reassign(self, from_user_id: int, to_user_id: int, actor: str) -> tuple[int, int]:
        """Hand all of a rep's contacts and open callbacks to one other user, all or nothing:
        the admin's quick form of a handover (no preview, no team check)."""
        if from_user_id == to_user_id:
            raise InvalidInput("choose a different user")
        async with self.store.transaction() as tx:
            target = await tx.get_user(to_user_id)
            if target is None or not target.active:
                raise InvalidInput("the new owner must be an active user")
            if await tx.get_user(from_user_id) is None:
                raise NotFound(f"user {from_user_id}")
            contacts, callbacks = await tx.reassign_owner(from_user_id, to_user_id)
            await self.audit(
                actor,
                "user.reassigned",
                f"user:{from_user_id}",
                {"to": to_user_id, "contacts": contacts, "callbacks": callbacks},
                tx,
            )
        return contacts, callbacks
