"""PBX links, their teams, and the calls in progress on each link (``live_calls``).

Several processes may run one link each over time (``web.linkmanager``); the process
that takes a link over reads the last known state of the calls the previous one was
following, so a call that ended in between is written (incomplete) instead of lost.
A mixin of ``SqlStore`` (uses ``_use``, ``_tx``)."""

from __future__ import annotations

from typing import Any

from ..models import LiveCallRow, PbxLink
from .params import ANY_LINK, AnyLink
from .sql_common import dumps, loads


class LinkQueries:
    async def ensure_pbx_link(self, name: str, team: str | None = None) -> PbxLink:
        """The link called ``name`` (created if new), serving ``team`` (created if new;
        None leaves the link's team as it is)."""
        async with self._tx() as c:  # type: ignore[attr-defined]
            team_id = None
            if team:
                await c.execute(
                    "INSERT INTO teams (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", team
                )
                team_id = await c.fetchval("SELECT id FROM teams WHERE name = $1", team)
            await c.execute(
                "INSERT INTO pbx_links (name, team_id) VALUES ($1, $2) "
                "ON CONFLICT (name) DO UPDATE SET team_id = COALESCE(excluded.team_id, "
                "pbx_links.team_id)",
                name,
                team_id,
            )
            row = await c.fetchrow("SELECT id, name, team_id FROM pbx_links WHERE name = $1", name)
        assert row is not None
        return PbxLink(row["id"], row["name"], row["team_id"])

    async def list_pbx_links(self) -> list[PbxLink]:
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch("SELECT id, name, team_id FROM pbx_links ORDER BY name")
        return [PbxLink(r["id"], r["name"], r["team_id"]) for r in rows]

    async def save_live_call(
        self, linkedid: str, pbx_link_id: int | None, snapshot: dict[str, Any], at: float
    ) -> bool:
        """Keep the latest state of a call in progress; False (nothing kept) once the
        call's record exists, so a late update never resurrects a finished call."""
        async with self._tx() as c:  # type: ignore[attr-defined]
            if await c.fetchval(
                "SELECT 1 FROM calls WHERE COALESCE(pbx_link_id, 0) = $1 AND linkedid = $2",
                pbx_link_id or 0,
                linkedid,
            ):
                return False
            # Keyed by (link, linkedid) like the calls (``live_calls_key``, 0006).
            await c.execute(
                "INSERT INTO live_calls (linkedid, pbx_link_id, snapshot, updated_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (COALESCE(pbx_link_id, 0), linkedid) "
                "DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at",
                linkedid,
                pbx_link_id,
                dumps(snapshot),
                at,
            )
        return True

    async def delete_live_call(
        self, linkedid: str, pbx_link_id: int | AnyLink | None = ANY_LINK
    ) -> None:
        async with self._use() as c:  # type: ignore[attr-defined]
            if pbx_link_id is ANY_LINK:
                await c.execute("DELETE FROM live_calls WHERE linkedid = $1", linkedid)
            else:
                await c.execute(
                    "DELETE FROM live_calls "
                    "WHERE COALESCE(pbx_link_id, 0) = $1 AND linkedid = $2",
                    pbx_link_id or 0,
                    linkedid,
                )

    async def live_calls_for_link(self, pbx_link_id: int | None) -> list[LiveCallRow]:
        async with self._use() as c:  # type: ignore[attr-defined]
            if pbx_link_id is None:
                rows = await c.fetch(
                    "SELECT linkedid, pbx_link_id, snapshot, updated_at FROM live_calls "
                    "WHERE pbx_link_id IS NULL ORDER BY updated_at"
                )
            else:
                rows = await c.fetch(
                    "SELECT linkedid, pbx_link_id, snapshot, updated_at FROM live_calls "
                    "WHERE pbx_link_id = $1 ORDER BY updated_at",
                    pbx_link_id,
                )
        return [
            LiveCallRow(
                r["linkedid"], r["pbx_link_id"], dict(loads(r["snapshot"]) or {}), r["updated_at"]
            )
            for r in rows
        ]
