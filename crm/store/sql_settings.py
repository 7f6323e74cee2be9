"""The admin's settings stored in the database, one JSON object a section (they win
over the settings files).  A mixin of ``SqlStore`` (uses ``_use``)."""

from __future__ import annotations

from typing import Any

from .sql_common import dumps, loads


class SettingQueries:
    async def get_setting(self, section: str) -> dict[str, Any] | None:
        async with self._use() as c:
            value = await c.fetchval("SELECT value FROM settings WHERE section = $1", section)
        return None if value is None else dict(loads(value) or {})

    async def setting_sections(self) -> list[str]:
        """Every stored section's name (to re-encrypt stored secrets at start)."""
        async with self._use() as c:
            rows = await c.fetch("SELECT section FROM settings ORDER BY section")
        return [str(r[0]) for r in rows]

    async def put_setting(self, section: str, values: dict[str, Any], at: float) -> None:
        async with self._use() as c:
            await c.execute(
                "INSERT INTO settings (section, value, updated_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (section) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                section,
                dumps(values),
                at,
            )
