"""The audit log: who did what to which object, appended and never changed; read as the
admin's list and as one object's history (a lead's, on the contact's timeline).
A mixin of ``SqlStore`` (uses ``_use``)."""

from __future__ import annotations

from typing import Any

from ..models import AuditEntry
from .sql_common import Row, dumps, loads, where_clause

AUDIT_COLS = "id, at, actor, action, target, detail"


def _audit_row(row: Row) -> AuditEntry:
    """A row of ``AUDIT_COLS`` (the entry's fields by name, ``detail`` as JSON)."""
    fields = dict(row)
    fields["detail"] = dict(loads(fields["detail"]) or {})
    return AuditEntry(**fields)


class AuditQueries:
    async def append_audit(self, entry: AuditEntry) -> AuditEntry:
        entry.id = await self._inserted(
            "audit_log", entry, "at, actor, action, target, detail", detail=dumps(entry.detail)
        )
        return entry

    async def list_audit(
        self,
        action: str | None = None,
        actor: str | None = None,
        since: float | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        """Newest first."""
        args: list[Any] = [limit]
        where: list[str] = []
        for column, value, op in (
            ("action", action, "="),
            ("actor", actor, "="),
            ("at", since, ">="),
            ("id", before_id, "<"),
        ):
            if value is not None:
                args.append(value)
                where.append(f"{column} {op} ${len(args)}")
        sql = f"SELECT {AUDIT_COLS} FROM audit_log{where_clause(where)} ORDER BY id DESC LIMIT $1"
        return await self._audit(sql, args)

    async def audit_for_target(
        self, target: str, prefix: str = "", limit: int = 200
    ) -> list[AuditEntry]:
        """Audit entries about one object (``contact:12``), newest first; only actions
        starting with ``prefix`` (``lead.``) when given."""
        args: list[Any] = [target, limit]
        sql = f"SELECT {AUDIT_COLS} FROM audit_log WHERE target = $1"
        if prefix:
            args.append(prefix.replace("%", "").replace("_", "") + "%")
            sql += f" AND action LIKE ${len(args)}"
        return await self._audit(sql + " ORDER BY id DESC LIMIT $2", args)

    async def _audit(self, sql: str, args: list[Any]) -> list[AuditEntry]:
        async with self._use() as c:
            return [_audit_row(r) for r in await c.fetch(sql, *args)]
