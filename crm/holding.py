"""Hold finished calls while the database cannot take them, and write them when it returns.

The AMI link hands every fact to one sink and, if the sink raises, logs and moves on:
right for a bug in one fact, wrong for a database that is locked (another process holds
SQLite's write lock past the busy timeout) or unreachable (PostgreSQL restarting).  Then
every call that ends loses its record.  ``HoldingSink`` sits between the link and
``Ingest.handle``:

* a ``CallRecord`` that fails is kept, in order, and retried with backoff until it is
  written; while anything is held, later records queue behind it without trying (their
  order is kept, and the link's delivery is never stalled by a busy timeout per call);
* writes are idempotent by linkedid (``Ingest`` upserts), so a retry after a failure
  that did commit cannot make a second row;
* live facts (``CallProgress``, ``OriginateResult``) are tried once and never held: a
  screen pop is worthless minutes later;
* ``status`` says how many calls wait, since when and why, and ``on_change`` is told
  whenever that changes, so the admin sees "12 calls waiting for the database: database
  is locked" instead of nothing.

Held calls live in memory: a process killed while the database is down still loses
them (a journal file would close that gap; see the load/faults report).  ``max_held``
bounds the memory; beyond it the oldest held call is dropped with an error in the log
and counted in ``status.lost``: never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ami_bridge.facts import CallRecord, Fact

log = logging.getLogger(__name__)

Handler = Callable[[Fact], Awaitable[object]]
StatusListener = Callable[["HoldingStatus"], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class HoldingStatus:
    """What the admin page shows about writing calls (all zero / None when healthy)."""

    held: int
    """Finished calls waiting to be written."""
    held_since: float | None
    """Wall time the oldest waiting call was first refused."""
    last_error: str | None
    retries: int
    """Write attempts that failed, since start."""
    written_late: int
    """Calls written after having been held."""
    lost: int
    """Calls dropped because more than ``max_held`` waited (logged as errors)."""
    live_dropped: int
    """Live updates (screen pops) that failed and were not retried."""

    @property
    def healthy(self) -> bool:
        return self.held == 0


class HoldingSink:
    """A fact sink for ``AmiLink`` that never loses a finished call to a passing store error."""

    def __init__(
        self,
        handle: Handler,
        *,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        max_held: int = 100_000,
        on_change: StatusListener | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._handle = handle
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._max_held = max_held
        self._on_change = on_change
        self._clock = clock
        self._held: OrderedDict[str, CallRecord] = OrderedDict()
        self._held_since: float | None = None
        self._last_error: str | None = None
        self._retries = 0
        self._written_late = 0
        self._lost = 0
        self._live_dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def status(self) -> HoldingStatus:
        return HoldingStatus(
            held=len(self._held),
            held_since=self._held_since,
            last_error=self._last_error,
            retries=self._retries,
            written_late=self._written_late,
            lost=self._lost,
            live_dropped=self._live_dropped,
        )

    async def __call__(self, fact: Fact) -> None:
        if not isinstance(fact, CallRecord):
            try:
                await self._handle(fact)
            except Exception as exc:
                self._live_dropped += 1
                log.warning("live update %s not delivered: %s", type(fact).__name__, exc)
            return
        if self._held:
            self._hold(fact)  # behind the ones already waiting, in order
            return
        try:
            await self._handle(fact)
        except Exception as exc:
            self._failed(exc)
            self._hold(fact)

    def retry_now(self) -> None:
        """Try the held calls at once (the admin's "retry" button, or the store said it is back)."""
        self._wake.set()

    async def close(self, timeout: float = 5.0) -> None:
        """One last attempt to write what is held, then stop retrying."""
        if self._held:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._write_held(), timeout)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._held:
            log.error("%d finished calls were never written: %s", len(self._held),
                      ", ".join(self._held))  # fmt: skip

    # -- internals

    def _hold(self, rec: CallRecord) -> None:
        if rec.linkedid in self._held:
            self._held[rec.linkedid] = rec  # a newer version of the same call replaces it
        else:
            self._held[rec.linkedid] = rec
            if len(self._held) > self._max_held:
                lost, _ = self._held.popitem(last=False)
                self._lost += 1
                log.error("call %s dropped: more than %d calls wait for the database",
                          lost, self._max_held)  # fmt: skip
        if self._held_since is None:
            self._held_since = self._clock()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._retry_loop(), name="crm-holding-retry")
        self._changed()

    def _failed(self, exc: Exception) -> None:
        self._retries += 1
        text = str(exc) or type(exc).__name__
        first = self._last_error is None or not self._held
        self._last_error = text
        if first:
            log.error("writing a call failed, holding it until the database answers: %s", text)

    async def _retry_loop(self) -> None:
        delay = self._retry_initial
        while self._held:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            if await self._write_held():
                delay = self._retry_initial
            else:
                delay = min(self._retry_max, delay * 2)

    async def _write_held(self) -> bool:
        """Write held calls oldest first; False at the first refusal (the rest keep waiting)."""
        while self._held:
            linkedid, rec = next(iter(self._held.items()))
            try:
                await self._handle(rec)
            except Exception as exc:
                self._failed(exc)
                self._changed()
                return False
            if self._held.get(linkedid) is rec:
                del self._held[linkedid]
            self._written_late += 1
        self._held_since = None
        self._last_error = None
        log.warning("the database is back: held calls written (%d in all)", self._written_late)
        self._changed()
        return True

    def _changed(self) -> None:
        if self._on_change is None:
            return
        try:
            result = self._on_change(self.status)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
        except Exception:
            log.exception("holding status listener failed")
