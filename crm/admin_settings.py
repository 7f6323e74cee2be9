"""Settings the admin pages change at run time (lead policy, number formats, PBX link),
kept in the store one JSON object per section so every process sees the same values.

Every change leaves a ``settings.changed`` audit entry naming the keys that changed and
their new values, except secrets: their values never reach the audit log.  With a
``secret_box`` (the runtime sets one) secret values are stored encrypted
(``crm/secretbox.py``) and ``seal_stored_secrets`` encrypts plain ones left from before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput
from .secretbox import SecretBox, SecretUnreadable, has_plain_secret, map_secrets

if TYPE_CHECKING:
    from .store import Store

_SECTION = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_SECRET = re.compile(r"secret|password|passwd|token|api_key", re.IGNORECASE)
REDACTED = "********"
log = logging.getLogger(__name__)


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
    secret_box: SecretBox | None = None
    """Encrypts secret values at rest; None (tools, benchmarks) stores them as given."""

    if TYPE_CHECKING:  # provided by CrmService

        async def audit(
            self, actor: str, action: str, target: str = "", detail: Any = None, store: Any = None
        ) -> Any: ...

    def _open(self, values: dict[str, Any]) -> dict[str, Any]:
        box = self.secret_box
        if box is None:
            return values

        def unseal(value: str) -> str:
            try:
                return box.open(value)
            except SecretUnreadable:
                log.error("settings: a stored secret cannot be decrypted (the install's secret "
                          "key changed?); enter it again on the admin pages")  # fmt: skip
                return ""

        return map_secrets(values, is_secret_key, unseal)  # type: ignore[no-any-return]

    def _seal(self, values: dict[str, Any]) -> dict[str, Any]:
        box = self.secret_box
        if box is None:
            return values
        return map_secrets(  # type: ignore[no-any-return]
            values, is_secret_key, lambda v: v if box.is_sealed(v) else box.seal(v)
        )

    async def get_setting(self, section: str) -> dict[str, Any]:
        """The stored values of ``section`` ({} when never saved), secrets decrypted."""
        return self._open(await self.store.get_setting(section) or {})

    async def seal_stored_secrets(self) -> list[str]:
        """Encrypt the secret values still stored in plain text (at start, before anything
        reads them); returns the sections rewritten."""
        if self.secret_box is None:
            return []
        done: list[str] = []
        for section in await self.store.setting_sections():
            async with self.store.transaction() as tx:
                stored = await tx.get_setting(section) or {}
                if has_plain_secret(stored, is_secret_key):
                    await tx.put_setting(section, self._seal(stored), self.clock())
                    done.append(section)
        if done:
            log.info("settings: encrypted the stored secrets of %s", ", ".join(done))
        return done

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
            old = self._open(await tx.get_setting(section) or {})
            new = {**old, **values}
            changed = sorted(k for k in new if k not in old or old[k] != new[k])
            if not changed:
                return new
            await tx.put_setting(section, self._seal(new), self.clock())
            await self.audit(
                actor,
                "settings.changed",
                section,
                {"changed": changed, "values": {k: redact(k, new[k]) for k in changed}},
                tx,
            )
        return new
