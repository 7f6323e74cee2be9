"""The presence service: the presence tracker's facts into stored agent events and live
board updates on the bus.

The consuming process of a link hands every ``PresenceChange`` and ``AgentChange`` here.
A change is published first (the board must hear it within half a second), then the
agent events are stored (``agent_events``: the queue figures read pause time from them;
a store that refuses is logged, and the board is not held up by it).  Bus payloads are
plain JSON dicts, the same in this process and after ``crm.fanout`` carried them to
another one.

Wrap-up is the CRM's own state, not the PBX's: ``set_wrapup`` is the hook the wrap-up
feature calls when a rep starts (or ends) writing up a call; the board shows the rep "in
wrap-up" until then while the phone is free.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ami_bridge.presence import AgentChange, PresenceChange

from .events import Event, EventBus
from .models import AgentEvent
from .store import Store

log = logging.getLogger(__name__)

PRESENCE_EVENT = "presence"
"""Bus kind; payload ``{"link": name, "rep": {...}}``, ``{"link", "queue": {...}}`` or
``{"link", "wrapup": {"extension", "until"}}``."""


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def change_payload(link: str, change: PresenceChange) -> dict[str, Any]:
    """A presence change as the bus (and the browser) carries it."""
    payload: dict[str, Any] = {"link": link, "at": change.at}
    if change.received_at is not None:
        payload["received_at"] = change.received_at
    if change.rep is not None:
        payload["rep"] = _plain(change.rep)
    if change.queue is not None:
        payload["queue"] = _plain(change.queue)
    return payload


class PresenceService:
    def __init__(self, store: Store, bus: EventBus, clock: Callable[[], float]) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.stored = 0
        self.store_failures = 0
        self._latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        """The last payload per (link, "rep"|"queue", key): what a board hub that starts
        after the link (or restarts) begins from."""

    async def handle(
        self, link: str, link_id: int | None, facts: Sequence[PresenceChange | AgentChange]
    ) -> None:
        """Publish the changes, then store the agent events among them."""
        events: list[AgentEvent] = []
        for fact in facts:
            if isinstance(fact, PresenceChange):
                payload = change_payload(link, fact)
                if fact.rep is not None:
                    self._latest[(link, "rep", fact.rep.extension)] = payload
                elif fact.queue is not None:
                    self._latest[(link, "queue", fact.queue.queue)] = payload
                exts = frozenset([fact.rep.extension]) if fact.rep is not None else frozenset()
                self.bus.publish(Event(PRESENCE_EVENT, payload, exts))
            elif isinstance(fact, AgentChange):
                events.append(
                    AgentEvent(fact.ts, fact.kind, fact.extension, fact.queue, fact.reason, link_id)
                )
        if events:
            try:
                await self.store.add_agent_events(events)
                self.stored += len(events)
            except Exception:
                self.store_failures += 1
                log.exception("presence: could not store %d agent events", len(events))

    def snapshot(self) -> list[dict[str, Any]]:
        """The latest payload of every rep and queue this process's links reported."""
        return list(self._latest.values())

    def set_wrapup(self, link: str, extension: str, until: float | None) -> None:
        """The wrap-up hook: ``extension`` is writing up a call until ``until`` (epoch
        seconds; None: done).  The board shows it while the phone is free."""
        self.bus.publish(
            Event(
                PRESENCE_EVENT,
                {
                    "link": link,
                    "at": self.clock(),
                    "wrapup": {"extension": extension, "until": until},
                },
                frozenset([extension]),
            )
        )
