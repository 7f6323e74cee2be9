"""Agent events: a rep's pauses, queue membership and registrations as they happened
(table ``agent_events``, written by the presence service, read by the queue figures).
A mixin of ``SqlStore`` (uses ``_use``)."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import AgentEvent

AGENT_EVENT_COLS = "ts, kind, extension, queue, reason, pbx_link_id"


class AgentEventQueries:
    async def add_agent_events(self, events: Sequence[AgentEvent]) -> None:
        """Append a rep's pauses, memberships and registrations as they happened, in one
        round trip (a burst of pauses is one insert)."""
        if not events:
            return
        async with self._use() as c:  # type: ignore[attr-defined]
            await c.executemany(
                f"INSERT INTO agent_events ({AGENT_EVENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6)",
                [(e.ts, e.kind, e.extension, e.queue, e.reason, e.pbx_link_id) for e in events],
            )

    async def list_agent_events(
        self, since: float, until: float, extension: str | None = None
    ) -> list[AgentEvent]:
        """Oldest first, ``since <= ts < until``."""
        args: list[object] = [since, until]
        sql = f"SELECT {AGENT_EVENT_COLS} FROM agent_events WHERE ts >= $1 AND ts < $2"
        if extension is not None:
            args.append(extension)
            sql += " AND extension = $3"
        sql += " ORDER BY ts, id"
        async with self._use() as c:  # type: ignore[attr-defined]
            rows = await c.fetch(sql, *args)
        return [AgentEvent(**dict(r)) for r in rows]
