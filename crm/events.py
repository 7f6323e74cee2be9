"""A small in-process pub/sub for live call updates (screen pops, live lists).

The publisher is the ingest path, which must never wait for a slow browser: every
subscriber has its own bounded queue, and when it is full the oldest event is dropped
(and counted) rather than blocking or growing without limit.  Subscribers say which
extensions / users they care about; an event without targets goes to everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    """``call_progress``, ``call_recorded``, ``originate_result``, ``callback_opened``..."""
    payload: Any
    extensions: frozenset[str] = frozenset()
    user_ids: frozenset[int] = frozenset()
    origin: str | None = None
    """None for an event raised in this process; the sending process's id for one that
    arrived from another process (``crm.fanout``), so it is never sent back out."""

    @property
    def targeted(self) -> bool:
        return bool(self.extensions or self.user_ids)


@dataclass(eq=False)
class Subscription:
    """One listener; iterate it (``async for event in sub``) or ``await sub.get()``."""

    bus: EventBus
    extensions: frozenset[str] = frozenset()
    user_ids: frozenset[int] = frozenset()
    maxsize: int = 100
    dropped: int = 0
    _queue: asyncio.Queue[Event] = field(init=False)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.maxsize)

    @property
    def everything(self) -> bool:
        return not (self.extensions or self.user_ids)

    def wants(self, event: Event) -> bool:
        if self.everything or not event.targeted:
            return True
        return bool(self.extensions & event.extensions or self.user_ids & event.user_ids)

    def offer(self, event: Event) -> None:
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    def pending(self) -> int:
        return self._queue.qsize()

    async def get(self) -> Event:
        return await self._queue.get()

    def get_nowait(self) -> Event:
        return self._queue.get_nowait()

    def close(self) -> None:
        self.bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()

    async def feed(self, handle: Callable[[Event], object], logger: logging.Logger,
                   failed: str) -> None:  # fmt: skip
        """Hand every event to ``handle`` until cancelled, then unsubscribe.  A handler
        that raises is logged (``failed`` with the event's kind) and the next event is
        handled: one bad event never ends a follower."""
        try:
            while True:
                event = await self.get()
                try:
                    handle(event)
                except Exception:
                    logger.exception(failed, event.kind)
        finally:
            self.close()


Tap = Callable[[Event], None]


class EventBus:
    def __init__(self, default_maxsize: int = 100) -> None:
        self._subs: set[Subscription] = set()
        self._taps: list[Tap] = []
        self.default_maxsize = default_maxsize

    def add_tap(self, tap: Tap) -> None:
        """Also hand every published event to ``tap`` (synchronously, before the
        subscribers): how ``crm.fanout`` sends events to other processes.  A tap must not
        block; its exceptions are swallowed so a broken tap never stops local delivery."""
        self._taps.append(tap)

    def remove_tap(self, tap: Tap) -> None:
        with contextlib.suppress(ValueError):
            self._taps.remove(tap)

    def subscribe(
        self,
        *,
        extensions: Iterable[str] = (),
        user_ids: Iterable[int] = (),
        maxsize: int | None = None,
    ) -> Subscription:
        sub = Subscription(
            self,
            frozenset(extensions),
            frozenset(user_ids),
            maxsize or self.default_maxsize,
        )
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def publish(self, event: Event) -> int:
        """Hand ``event`` to every interested subscriber now; returns how many got it."""
        for tap in self._taps:
            try:
                tap(event)
            except Exception:
                log.exception("event bus tap failed on %s", event.kind)
        delivered = 0
        for sub in list(self._subs):
            if sub.wants(event):
                sub.offer(event)
                delivered += 1
        return delivered
