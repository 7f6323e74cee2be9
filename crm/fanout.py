"""Events raised in one web process reach the subscribers of every other process.

With several processes on one PostgreSQL, the process holding a PBX link publishes its
screen pops on its own bus only; the browser of a rep may be connected to another one.
``Fanout`` taps the local bus, sends every local event (as JSON, ``crm.eventjson``) over
a channel (``crm.store.pg_notify``: LISTEN/NOTIFY), and republishes the events other
processes sent on the local bus, marked with their origin so they are never sent again.

Publishing stays synchronous and never waits for the database: the tap encodes the event
and queues it (bounded: when the sender falls far behind, the oldest are dropped and
counted), a single task sends them in order.

Every message carries its sender's sequence number: no two are ever the same text, so a
channel that folds identical messages of one transaction into one (PostgreSQL's NOTIFY
does) can take a whole burst at once, and a receiver can count what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from .eventjson import event_from_json, event_to_json
from .events import Event, EventBus

log = logging.getLogger(__name__)

BATCH = 200
"""Events handed to a channel that takes several at once (``send_many``) per call."""


class Channel(Protocol):
    async def send(self, text: str) -> None: ...

    async def listen(self, on_message: Callable[[str], Any]) -> None: ...

    async def close(self) -> None: ...


class Fanout:
    def __init__(
        self, bus: EventBus, channel: Channel, *, origin: str | None = None, maxsize: int = 10_000
    ) -> None:
        self.bus = bus
        self.channel = channel
        self.origin = origin or uuid.uuid4().hex
        self.maxsize = maxsize
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.failed = 0
        self.missed = 0
        """Events of other processes this one never got (gaps in their sequence numbers:
        a listener that was reconnecting, a sender that dropped or failed them)."""
        self._last_seq: dict[str, int] = {}
        self._outbox: deque[str] = deque()
        self._ready = asyncio.Event()
        self._queued = 0
        """Messages ever queued; ``_handled`` of them were sent, failed or dropped."""
        self._handled = 0
        self._flushes: list[tuple[int, asyncio.Future[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self._tasks:
            return
        self.bus.add_tap(self._tap)
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="fanout-send"),
            asyncio.create_task(self.channel.listen(self._on_message), name="fanout-listen"),
        ]

    async def close(self) -> None:
        self.bus.remove_tap(self._tap)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for _, waiter in self._flushes:  # nothing more will be sent: nobody waits forever
            if not waiter.done():
                waiter.set_result(None)
        self._flushes.clear()
        await self.channel.close()

    # -- out ---------------------------------------------------------------------------
    def _tap(self, event: Event) -> None:
        if event.origin is not None:
            return  # it came from another process: that one already told everybody
        data = event_to_json(event)
        data["origin"] = self.origin
        data["seq"] = self._queued
        if len(self._outbox) >= self.maxsize:
            self._outbox.popleft()
            self.dropped += 1
            self._handled_one()
        self._outbox.append(json.dumps(data, separators=(",", ":")))
        self._queued += 1
        self._ready.set()

    async def _send_loop(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            await self._send_queued()

    async def _send_queued(self) -> None:
        """Everything queued, in order, as few messages to the channel as it takes: a
        channel with ``send_many`` takes a burst of calls, hundreds of events, in one
        round trip; any other one event per ``send``."""
        send_many = getattr(self.channel, "send_many", None)
        size = BATCH if send_many is not None else 1
        while self._outbox:
            texts = [self._outbox.popleft() for _ in range(min(size, len(self._outbox)))]
            failed = False
            try:
                if send_many is not None:
                    await send_many(texts)
                else:
                    await self.channel.send(texts[0])
                self.sent += len(texts)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failed = True
                self.failed += len(texts)
                log.warning("fan-out: %d event(s) could not be sent: %s", len(texts), exc)
            for _ in texts:
                self._handled_one()
            if failed:
                await asyncio.sleep(0.5)

    def _handled_one(self) -> None:
        self._handled += 1
        while self._flushes and self._flushes[0][0] <= self._handled:
            _, waiter = self._flushes.pop(0)
            if not waiter.done():
                waiter.set_result(None)

    async def flush(self) -> None:
        """Until every event published so far has been handed to the channel (or given up
        on): a process that must not act before others know of an event (the consumer
        accepting a forwarded Originate, ``crm.originate_relay``) awaits this.  Returns at
        once when the fan-out is not running."""
        if not self._tasks or self._handled >= self._queued:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flushes.append((self._queued, waiter))
        await waiter

    async def drain(self, timeout: float = 5.0) -> None:
        """Until everything queued was sent (tests, shutdown)."""
        async with asyncio.timeout(timeout):
            while self._outbox:
                await asyncio.sleep(0.01)

    # -- in ----------------------------------------------------------------------------
    def _on_message(self, text: str) -> None:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            log.warning("fan-out: a message that is not JSON was skipped")
            return
        origin = data.get("origin")
        if not isinstance(origin, str) or origin == self.origin:
            return
        self._count_missed(origin, data.get("seq"))
        try:
            event = event_from_json(data, origin=origin)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("fan-out: a malformed event was skipped: %s", exc)
            return
        self.received += 1
        self.bus.publish(event)

    def _count_missed(self, origin: str, seq: object) -> None:
        if not isinstance(seq, int):
            return  # a sender from before sequence numbers
        last = self._last_seq.get(origin)
        self._last_seq[origin] = seq
        if last is not None and seq > last + 1:
            self.missed += seq - last - 1
            log.warning("fan-out: %d event(s) of another process were missed", seq - last - 1)
