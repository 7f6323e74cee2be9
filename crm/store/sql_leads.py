"""Leads: their conversion time, and the managers' lead statistics, aggregated by the
database so only grouped rows cross the wire (one row per source and owner, whatever the
number of leads).  Their history on the contact's timeline is the audit log's
(``sql_audit.audit_for_target``).

A mixin of ``SqlStore`` (uses ``_use``, ``_ids_in``, ``_ids_param``).
"""

from __future__ import annotations

from typing import Any

from ..models import LeadStatRow


class LeadQueries:
    async def set_lead_converted_at(self, contact_id: int, at: float | None) -> None:
        """When the lead became a customer (None: not converted)."""
        async with self._use() as c:  # type: ignore[attr-defined]
            await c.execute(
                "UPDATE contacts SET lead_converted_at = $2 WHERE id = $1", contact_id, at
            )

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
