"""What every area of ``CrmService`` stands on: the store, the lead policy, the clock, the
audit log, and a number as a user typed it.

Each area (``users``, ``teams``, ``contacts``...) is a class over this one, so it can write
and audit without knowing the others; ``CrmService`` puts them together.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import InvalidInput, NotFound
from ..figures_memo import FiguresMemo
from ..models import AuditEntry, PhoneNumber, User
from ..phones import normalize
from ..policy import LeadPolicy
from ..store import Store


class ServiceCore:
    def __init__(
        self, store: Store, policy: LeadPolicy, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.figures_memo = FiguresMemo(store.data_version)
        """The managers' figures at the database's current version (``crm.reports``)."""

    # -- numbers ---------------------------------------------------------------------
    def phone(self, raw: str | PhoneNumber, label: str = "") -> PhoneNumber:
        """A number typed by a user, normalised; unreadable numbers are refused."""
        if isinstance(raw, PhoneNumber):
            raw, label = raw.raw, raw.label or label
        e164 = normalize(raw, self.policy.default_region)
        if e164 is None:
            raise InvalidInput(f"not a phone number: {raw!r}")
        return PhoneNumber(raw=raw.strip(), e164=e164, label=label)

    async def _user(self, user_id: int, store: Store | None = None) -> User:
        """The user with this id (read through ``store``: a transaction), else NotFound."""
        user = await (store or self.store).get_user(user_id)
        if user is None:
            raise NotFound(f"user {user_id}")
        return user

    # -- audit -----------------------------------------------------------------------
    async def audit(
        self,
        actor: str,
        action: str,
        target: str = "",
        detail: dict[str, Any] | None = None,
        store: Store | None = None,
    ) -> AuditEntry:
        """Append to the audit log (``settings.changed``, ``recording.played``,
        ``contact.exported``, ``contact.erased``, ``call.click_to_call``, ...)."""
        entry = AuditEntry(None, self.clock(), actor, action, target, dict(detail or {}))
        return await (store or self.store).append_audit(entry)

    @property
    def list_audit(self) -> Callable[..., Awaitable[list[AuditEntry]]]:
        """``Store.list_audit`` itself (same arguments, newest first): its filters need
        no checking here, so the service hands them over as they are."""
        return self.store.list_audit

    # -- audited actions the web layer reports --------------------------------------
    async def recording_played(self, actor: str, call_id: int, recording_id: int) -> None:
        await self.audit(actor, "recording.played", f"call:{call_id}", {"recording": recording_id})

    async def click_to_call(self, actor: str, number: str, originate_id: str) -> None:
        await self.audit(
            actor, "call.click_to_call", f"number:{number}", {"originate_id": originate_id}
        )

    async def settings_changed(self, actor: str, section: str, changes: dict[str, Any]) -> None:
        await self.audit(actor, "settings.changed", section, changes)
