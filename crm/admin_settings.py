"""Settings the admin pages change at run time (lead policy, number formats, PBX link),
kept in the store one JSON object per section so every process sees the same values.

Every change leaves a ``settings.changed`` audit entry naming the keys that changed and
their new values, except secrets: their values never reach the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput

if TYPE_CHECKING:
    from .store import Store

_SECTION = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_SECRET = re.compile(r"secret|password|passwd|token|api_key", re.IGNORECASE)
REDACTED = "********"


def is_secret_key(key: str) -> bool:
    return bool(_SECRET.search(key))


def redact(key: str, value: Any) -> Any:
    """``value`` as the audit log may show it: secret keys masked, at any depth."""
    if is_secret_key(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(str(k), v) for k, v in value.items()}
    return value


def _check_webhook_targets(targets: Any) -> None:
    """Every webhook target needs a secret: without one a receiver cannot tell our hooks
    from forged ones (the sender refuses to start with such a target, too)."""
    for entry in targets or ():
        if isinstance(entry, dict) and not str(entry.get("secret", "") or "").strip():
            raise InvalidInput("webhooks: every target needs a secret")


class SettingsServices:
    store: Store
    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by CrmService

        async def audit(
            self, actor: str, action: str, target: str = "", detail: Any = None, store: Any = None
        ) -> Any: ...

    async def get_setting(self, section: str) -> dict[str, Any]:
        """The stored values of ``section`` ({} when never saved)."""
        return await self.store.get_setting(section) or {}

    async def put_setting(self, section: str, values: dict[str, Any], actor: str) -> dict[str, Any]:
        """Merge ``values`` into ``section`` (keys not given keep their value, so a form
        may leave a write-only secret empty); returns the section as stored now."""
        if not _SECTION.match(section or ""):
            raise InvalidInput("settings section: lower-case letters, digits, . _ -")
        if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
            raise InvalidInput("settings values must be an object with text keys")
        if section == "webhooks":
            _check_webhook_targets(values.get("targets"))
        async with self.store.transaction() as tx:
            old = await tx.get_setting(section) or {}
            new = {**old, **values}
            changed = sorted(k for k in new if k not in old or old[k] != new[k])
            if not changed:
                return new
            await tx.put_setting(section, new, self.clock())
            await self.audit(
                actor,
                "settings.changed",
                section,
                {"changed": changed, "values": {k: redact(k, new[k]) for k in changed}},
                tx,
            )
        return new
