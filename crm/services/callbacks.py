"""Callback tasks as lists: a rep's open tasks, everyone's for a manager.  What a person
does to one task is ``crm.callback_work``; opening and closing them from calls,
``crm.callbacks``."""

from __future__ import annotations

from ..access import Scope
from ..models import CallbackStatus, CallbackTask
from .core import ServiceCore


class CallbackServices(ServiceCore):
    async def open_callbacks(
        self, user_id: int | None = None, scope: Scope | None = None
    ) -> list[CallbackTask]:
        """Open tasks, oldest due first; ``None`` means everyone's (managers), narrowed
        to ``scope`` (tasks owned by someone in it, or by nobody)."""
        return await self.list_callbacks(user_id, "open", scope=scope)

    async def list_callbacks(
        self,
        owner_id: int | None = None,
        status: CallbackStatus | None = "open",
        limit: int = 200,
        scope: Scope | None = None,
    ) -> list[CallbackTask]:
        return await self.store.list_callbacks(
            owner_id, status, max(1, min(limit, 1000)), scope.ids() if scope else None
        )
