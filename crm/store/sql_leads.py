"""Leads: their conversion time, their history on the contact's timeline (from the audit
log), and the managers' lead statistics, aggregated by the database so only grouped rows
cross the wire (one row per source and owner, whatever the number of leads).

A mixin of ``SqlStore`` (uses ``_use``, ``_ids_in``, ``_ids_param``).
"""

from __future__ import annotations

from typing import Any

from ..models import AuditEntry, LeadStatRow


class LeadQueries:
    async def set_lead_converted_at(self, contact_id: int, at: float | None) -> None:
        async with self._use() as c:  # type: ignore[attr-defined]
            await c.execute(
                "UPDATE contacts SET lead_converted_at = $2 WHERE id = $1", contact_id, at
            )

    async def audit_for_target(
        self, target: str, prefix: str = "", limit: int = 200
    ) -> list[AuditEntry]:
        """Audit entries about one object (``contact:12``), newest first; only actions
        starting with ``prefix`` (``lead.``) when given."""
        from .sql import _audit_row

        args: list[Any] = [target, limit]
        sql = "SELECT id, at, actor, action, target, detail FROM audit_log WHERE target = $1"
        if prefix:
            args.append(prefix.replace("%", "").replace("_", "") + "%")
            sql += f" AND action LIKE ${len(args)}"
        sql += " ORDER BY id DESC LIMIT $2"
        async with self._use() as c:  # type: ignore[attr-defined]
            return [_audit_row(r) for r in await c.fetch(sql, *args)]

    async def lead_stats(
        self, since: float, until: float, user_ids: Any = None
    ) -> list[LeadStatRow]:
        """Leads created in [since, until) by source and owner; ``user_ids`` (a scope)
        keeps the leads those users own (unassigned ones only without it)."""
        args: list[Any] = [since, until]
        where = "lead_status IS NOT NULL AND lead_created_at >= $1 AND lead_created_at < $2"
        if user_ids is not None:
            args.append(self._ids_param(user_ids))  # type: ignore[attr-defined]
            where += f" AND owner_id {self._ids_in(len(args))}"  # type: ignore[attr-defined]
        timed = "lead_status = 'converted' AND lead_converted_at IS NOT NULL"
        sql = (
            "SELECT lead_source, owner_id, COUNT(*) AS leads, "
            "SUM(CASE WHEN lead_status = 'converted' THEN 1 ELSE 0 END) AS converted, "
            f"SUM(CASE WHEN {timed} THEN lead_converted_at - lead_created_at ELSE 0 END) "
            "AS seconds, "
            f"SUM(CASE WHEN {timed} THEN 1 ELSE 0 END) AS timed "
            f"FROM contacts WHERE {where} AND NOT erased "
            "GROUP BY lead_source, owner_id"
        )
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(sql, *args)
        return [
            LeadStatRow(
                source=r["lead_source"] or "manual",
                owner_id=r["owner_id"],
                leads=int(r["leads"]),
                converted=int(r["converted"] or 0),
                conversion_seconds=float(r["seconds"] or 0.0),
                timed=int(r["timed"] or 0),
            )
            for r in rows
        ]
