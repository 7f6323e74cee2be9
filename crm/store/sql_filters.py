"""Filtered lists the database answers itself, so a page never reads rows in batches to
throw most of them away in Python: the leads list (by lead status, source, owner, scope,
search) and the calls in progress a page or a hub starts from.

Leads are paged by contact id.  ``lead_status IN (...) ORDER BY id`` over an index on
(lead_status, id) would read every lead of those statuses and sort them; instead each
status is one index range read in id order that stops after a page, and the ranges are
merged (``UNION ALL`` of at most five small sorted pieces).  See the ``EXPLAIN QUERY
PLAN`` checks in ``tests/crm/test_filters.py``.

A mixin of ``SqlStore`` (uses ``_use``, ``_contacts``, ``_contact_filters``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import LEAD_SOURCES, LEAD_STATUSES, Contact, LiveCallRow
from .params import ContactSearch
from .sql_common import CONTACT_COLS, loads


class FilterQueries:
    def _leads_sql(
        self,
        statuses: Sequence[str],
        search: ContactSearch,
        source: str | None,
        after_id: int | None,
        limit: int,
    ) -> tuple[str, list[Any]]:
        """The leads query and its arguments, apart from ``list_leads`` so a test can
        ask the database for its plan."""
        wanted = [s for s in LEAD_STATUSES if s in set(statuses)]
        if not wanted:
            raise ValueError("list_leads: no lead status to list")
        if source is not None and source not in LEAD_SOURCES:
            raise ValueError(f"list_leads: unknown lead source {source!r}")
        args: list[Any] = [after_id or 0, limit]
        common = self._contact_filters(args, search)  # type: ignore[attr-defined]
        if source is not None:
            args.append(source)
            common.append(f"c.lead_source = ${len(args)}")
        cols = ", ".join(f"c.{col.strip()}" for col in CONTACT_COLS.split(","))
        parts = []
        for i, status in enumerate(wanted):
            args.append(status)
            where = " AND ".join([f"c.lead_status = ${len(args)}", "c.id > $1", *common])
            parts.append(
                f"SELECT * FROM (SELECT {cols} FROM contacts c WHERE {where} "
                f"ORDER BY c.id LIMIT $2) AS s{i}"
            )
        sql = " UNION ALL ".join(parts) + " ORDER BY id LIMIT $2"
        return sql, args

    async def list_leads(
        self,
        statuses: Sequence[str],
        search: ContactSearch,
        source: str | None = None,
        limit: int = 50,
        after_id: int | None = None,
    ) -> list[Contact]:
        """Contacts whose lead status is one of ``statuses`` (and source ``source``)
        passing ``search`` (as in ``search_contacts``), ordered by id after
        ``after_id``."""
        sql, args = self._leads_sql(statuses, search, source, after_id, limit)
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(sql, *args)
            return await self._contacts(c, rows)  # type: ignore[attr-defined,no-any-return]

    async def list_live_calls(
        self, since: float | None = None, limit: int = 500
    ) -> list[LiveCallRow]:
        """Calls in progress on every link (``live_calls``, kept when the ingest runs
        with ``keep_live``), latest update first, updated at/after ``since``.  Small by
        nature (calls up right now), but indexed by update time so a table full of stale
        rows from a dead link does not slow every page."""
        args: list[Any] = [limit]
        where = ""
        if since is not None:
            args.append(since)
            where = "WHERE updated_at >= $2 "
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(
                "SELECT linkedid, pbx_link_id, snapshot, updated_at FROM live_calls "
                f"{where}ORDER BY updated_at DESC LIMIT $1",
                *args,
            )
        return [
            LiveCallRow(
                r["linkedid"], r["pbx_link_id"], dict(loads(r["snapshot"]) or {}), r["updated_at"]
            )
            for r in rows
        ]
