"""Finished calls written many per transaction: flush at ``max_calls`` or ``max_wait``.

One transaction per finished call made the store the first bottleneck under load (148
calls/s on SQLite, 70 on PostgreSQL): most of a call's cost was the transaction around
it (the lock, the commit, the round trips), not its rows.  ``Batcher`` collects the
calls a link hands over and gives them to one flush function a batch at a time:

* a batch goes out when ``max_calls`` wait, or ``max_wait`` seconds after its first call
  arrived, whichever comes first, so a quiet PBX's call is written within ``max_wait``
  (a few milliseconds) and a busy one's share a commit;
* while one batch is being written the next ones fill; once ``max_pending`` calls wait
  (``max_calls`` unless told), ``add_call`` waits for room, so memory stays bounded (the
  link keeps reading into its own queue, ``AmiLink``);
* batches are flushed one at a time, in the order their calls arrived;
* snapshots of calls in progress (``live_calls``) ride along with the next batch,
  latest per call only: a busy PBX sends several per call, and each used to be a
  transaction of its own.

What a failed batch means (hold, retry, one call at a time) is the flush function's
business: ``crm.holding.HoldingSink`` owns that.  The batcher only times and orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .closing import finish_within, stop_task

log = logging.getLogger(__name__)

C = TypeVar("C")
L = TypeVar("L")

MAX_CALLS = 50
"""Calls per transaction at most.  More makes little difference to the rate and keeps
the store (SQLite's one writer, and the pop lookups waiting behind it) busy longer."""
MAX_WAIT = 0.01
"""Seconds the first call of a batch waits for others: a quiet link's calls are written
within this, a busy link's batches fill before it passes."""


@dataclass(slots=True)
class Batch(Generic[C, L]):
    """One transaction's worth: finished calls in arrival order, live snapshots."""

    calls: list[C] = field(default_factory=list)
    live: list[L] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.calls or self.live)


class Batcher(Generic[C, L]):
    """Collects calls and live snapshots; hands them to ``flush`` in batches, in order."""

    def __init__(
        self,
        flush: Callable[[Batch[C, L]], Awaitable[None]],
        *,
        max_calls: int = MAX_CALLS,
        max_wait: float = MAX_WAIT,
        live_key: Callable[[L], Hashable] = id,
        max_pending: int | None = None,
    ) -> None:
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        self._flush = flush
        self.max_calls = max_calls
        self.max_pending = max(max_calls, max_pending or max_calls)
        """Calls that may wait for their batch before ``add_call`` waits for room."""
        self.max_wait = max(0.0, max_wait)
        self._live_key = live_key
        self._calls: list[C] = []
        self._live: dict[Hashable, L] = {}
        self._first: float | None = None
        """Loop time the oldest pending item arrived."""
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._urgent = 0
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.calls_flushed = 0
        self.largest = 0

    @property
    def pending(self) -> int:
        """Calls accepted and not yet handed to ``flush``."""
        return len(self._calls)

    async def add_call(self, call: C) -> None:
        """Queue a finished call; waits only while ``max_pending`` calls wait for the
        batch being written (the backpressure that keeps memory flat)."""
        while len(self._calls) >= self.max_pending:
            self._room.clear()
            self._kick()
            await self._room.wait()
        self._calls.append(call)
        self._kick()

    def add_live(self, item: L) -> None:
        """Queue a live snapshot; a newer one of the same call replaces it.  Never waits."""
        key = self._live_key(item)
        self._live.pop(key, None)
        self._live[key] = item
        self._kick()

    async def drain(self) -> None:
        """Flush everything pending now (no lingering) and wait until it is written."""
        if self._task is None and not (self._calls or self._live):
            return
        self._urgent += 1
        try:
            self._kick()
            while self._calls or self._live or not self._idle.is_set():
                self._wake.set()
                await self._idle.wait()
                if self._task is None or self._task.done():
                    break
        finally:
            self._urgent -= 1

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is pending (at most ``timeout`` seconds), then stop."""
        await finish_within(self.drain(), timeout)
        await stop_task(self._task)
        self._task = None
        if self._calls:
            log.error("%d finished calls were never handed to the store", len(self._calls))

    # -- internals

    def _kick(self) -> None:
        loop = asyncio.get_running_loop()
        if self._first is None:
            self._first = loop.time()
        sleeping = self._idle.is_set()  # the flusher waits for work, not lingering
        self._idle.clear()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="crm-batcher")
        if sleeping or self._urgent or len(self._calls) >= self.max_calls:
            self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not (self._calls or self._live):
                self._first = None
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            self._idle.clear()
            first = self._first if self._first is not None else loop.time()
            while len(self._calls) < self.max_calls and not self._urgent:
                delay = first + self.max_wait - loop.time()
                if delay <= 0:
                    break
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
            batch: Batch[C, L] = Batch(self._calls[: self.max_calls], list(self._live.values()))
            del self._calls[: self.max_calls]
            self._live = {}
            self._first = loop.time() if self._calls else None
            self._room.set()
            self.batches += 1
            self.calls_flushed += len(batch.calls)
            self.largest = max(self.largest, len(batch.calls))
            try:
                await self._flush(batch)
            except Exception:
                # The flush function decides what a failure means (``HoldingSink`` holds
                # the calls); one that raises anyway must not stop every later batch.
                log.exception("writing a batch of %d calls failed", len(batch.calls))
