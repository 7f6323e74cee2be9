"""A lane per call in front of the link's sink, so one call's screen-pop lookup does not
hold up every other call's facts.

The link has one consumer, and it awaited each fact's handling.  A new call's first
``CallProgress`` reads the store to name the caller (``Ingest._lookup``), a few
milliseconds on a loaded machine: calls were looked up one after another, and the whole
link waited behind them (141 calls/s sustained on SQLite instead of 300).  ``CallLanes``
hands such a fact to a task of its own, a lane for its call, and lets the consumer go
on:

* a call's facts stay in order: while its lane runs, the call's later facts queue in
  it; a call with no lane (its pop is known) is handled at once, as before;
* a ``CallRecord`` waits for its call's lane to finish before it goes on (it is rare
  that one is still running): the finished call's batch deletes the ``live_calls`` row
  its progress wrote, its ``call_recorded`` follows its last ``call_progress``, and
  finished calls reach the sink in the order they finished;
* at most ``max_lanes`` lookups run at once; beyond that the consumer waits for one to
  end, so a slow store slows the link (and then the PBX) instead of memory growing;
* a fact that fails in a lane is logged and dropped, as the sink drops a failed live
  update; the lane and the consumer go on;
* ``close`` lets the lanes finish for a bounded time, then cancels them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from ami_bridge.facts import CallProgress, CallRecord, Fact

from .closing import CANCEL_GRACE, cancel_all, finish_within

log = logging.getLogger(__name__)

MAX_LANES = 32
"""Calls whose first facts are handled at once: enough to hide a store's latency at a
few hundred calls per second, few enough not to queue a pool's connections."""


class CallLanes:
    """A fact sink: ``handle`` for every fact, a call's first lookups run side by side."""

    def __init__(
        self,
        handle: Callable[[Fact], Awaitable[object]],
        needs_lookup: Callable[[CallProgress], bool],
        *,
        max_lanes: int = MAX_LANES,
    ) -> None:
        self._handle = handle
        self._needs_lookup = needs_lookup
        """True for a fact whose handling reads the store (``Ingest.needs_lookup``)."""
        self._slots = asyncio.Semaphore(max_lanes)
        self._lanes: dict[str, tuple[deque[Fact], asyncio.Task[None]]] = {}
        self.failed = 0
        """Facts that raised in a lane (logged, not retried)."""

    async def __call__(self, fact: Fact) -> None:
        linkedid = getattr(fact, "linkedid", None)
        lane = self._lanes.get(linkedid) if isinstance(linkedid, str) else None
        if isinstance(fact, CallRecord):
            if lane is not None:
                await asyncio.wait({lane[1]})  # never cancels the lane, never raises
            await self._handle(fact)
            return
        if lane is not None:
            lane[0].append(fact)
            return
        if not isinstance(fact, CallProgress) or not self._needs_lookup(fact):
            await self._handle(fact)
            return
        await self._slots.acquire()  # the one consumer: no lane for the call meanwhile
        queue: deque[Fact] = deque([fact])
        task = asyncio.create_task(self._run(fact.linkedid, queue), name="crm-call-lane")
        self._lanes[fact.linkedid] = (queue, task)

    @property
    def running(self) -> int:
        return len(self._lanes)

    async def _run(self, linkedid: str, queue: deque[Fact]) -> None:
        try:
            while queue:
                fact = queue[0]  # stays queued while handled: later facts append behind it
                try:
                    await self._handle(fact)
                except Exception:
                    self.failed += 1
                    log.exception("call %s: %s not handled", linkedid, type(fact).__name__)
                queue.popleft()
        finally:
            self._lanes.pop(linkedid, None)
            self._slots.release()

    async def drain(self) -> None:
        """Wait until every fact given so far is handled."""
        while self._lanes:
            await asyncio.wait([task for _, task in self._lanes.values()])

    async def close(self, timeout: float = 2.0) -> bool:
        """Finish the lanes within ``timeout`` seconds, else cancel them (their facts are
        live updates: worthless once the link is gone); True when they all finished."""
        if await finish_within(self.drain(), timeout):
            return True
        left = sum(len(queue) for queue, _ in self._lanes.values())
        log.warning("%d live update(s) of %d call(s) dropped at close", left,
                    len(self._lanes))  # fmt: skip
        await cancel_all([task for _, task in self._lanes.values()], CANCEL_GRACE,
                         "call lanes")  # fmt: skip
        return False
