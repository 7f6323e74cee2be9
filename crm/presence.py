"""The presence service: the presence tracker's facts into stored agent events and live
board updates on the bus.

The consuming process of a link hands every ``PresenceChange`` and ``AgentChange`` here.
A change is published at once (the board must hear it within half a second); the agent
events are stored by a background writer (``agent_events``: the queue figures read pause
time from them), in order, retried while the store refuses, so the board never waits
for the database.  Bus payloads are
plain JSON dicts, the same in this process and after ``crm.fanout`` carried them to
another one.

Wrap-up is the CRM's own state, not the PBX's: ``set_wrapup`` is the hook the wrap-up
feature calls when a rep starts (or ends) writing up a call; the board shows the rep "in
wrap-up" until then while the phone is free.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ami_bridge.presence import AgentChange, PresenceChange

from .events import Event, EventBus
from .models import AgentEvent
from .store import Store

log = logging.getLogger(__name__)

PENDING_MAX = 100_000
"""Agent events kept for a store that refuses them, at most (the oldest go first)."""
WRAPUP_SECONDS = 120.0
"""After a call, the board shows its rep "in wrap-up" this long, or until the rep saves
the wrap-up (``clear_wrapup``), whichever comes first."""
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
        self._pending: list[AgentEvent] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        bus.add_tap(self._on_event)
        self._latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        """The last payload per (link, "rep"|"queue", key): what a board hub that starts
        after the link (or restarts) begins from."""

    async def handle(
        self, link: str, link_id: int | None, facts: Sequence[PresenceChange | AgentChange]
    ) -> None:
        """Publish the changes; the agent events among them are stored in the background
        (``flush`` waits for that)."""
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
            self._pending.extend(events)
            if len(self._pending) > PENDING_MAX:  # the store is gone for long: keep the newest
                dropped = len(self._pending) - PENDING_MAX
                del self._pending[:dropped]
                log.error("presence: %d agent events dropped (the store refuses them)", dropped)
            self._wake.set()
            if self._writer is None or self._writer.done():
                self._writer = asyncio.create_task(self._write(), name="presence-writer")

    async def _write(self) -> None:
        """Store the agent events in order, off the link's delivery path (the board never
        waits for the database); a store that refuses is retried with a growing pause."""
        delay = 0.5
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._pending[:500]
            try:
                await self.store.add_agent_events(batch)
            except Exception:
                self.store_failures += 1
                log.exception("presence: could not store %d agent events; retrying", len(batch))
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)
                continue
            delay = 0.5
            del self._pending[: len(batch)]
            self.stored += len(batch)

    async def flush(self, timeout: float = 5.0) -> None:
        """Until every agent event handed in so far is stored (or ``timeout``)."""
        async with asyncio.timeout(timeout):
            while self._pending:
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            await self.flush(2.0)
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
            self._writer = None

    def snapshot(self) -> list[dict[str, Any]]:
        """The latest payload of every rep and queue this process's links reported."""
        return list(self._latest.values())

    def _on_event(self, event: Event) -> None:
        """A finished call puts the rep who had it last "in wrap-up" (a bus tap: runs
        inside ``publish``, so the new event goes out on the next loop turn)."""
        if event.kind != "call_recorded":
            return
        call = getattr(event.payload, "call", None)
        extension = call and (call.final_agent or call.answered_by)
        if not extension:
            return
        until = float(call.ended_at) + WRAPUP_SECONDS
        asyncio.get_running_loop().call_soon(self.set_wrapup, "", str(extension), until)

    def clear_wrapup(self, extensions: Sequence[str]) -> None:
        """The rep saved the wrap-up: the board shows the phone's own state again."""
        for extension in extensions:
            self.set_wrapup("", extension, None)

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
