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

With ``write_many`` (the link manager gives one), calls are not written one transaction
each but collected by a ``crm.batching.Batcher`` and written a batch per transaction
(``Ingest.record_many``), with the snapshots of calls in progress the ingest defers
(``keep_live``).  The guarantees above stay per call: a batch the store refuses is tried
again one call at a time in order, so the first refusal holds that call and every later
one (journaled), and a call the store cannot take for a reason of its own does not keep
the others of its batch out; held calls are written back in batches too.  A call
accepted into a batch and not yet written is in memory only, as it was while it waited
in the link's queue: after a crash the taker-over finishes it from its ``live_calls``
row (``crm.recovery``).

Held calls are also journaled on disk when a ``journal`` path is given (the link
manager gives one per link, in the data dir): every held record is appended as a JSON
line and fsynced before the sink returns, so a process killed while the database is
down loses nothing; ``replay_journal`` on the next start writes them (idempotent: a call
already written is updated in place, never doubled), and the file is truncated as soon
as nothing is held.  ``max_held`` bounds the memory; beyond it the oldest held call
leaves memory with an error in the log and is counted in ``status.lost`` (it stays in
the journal, so the next start still writes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from ami_bridge.facts import CallRecord, Fact

from .batching import MAX_CALLS, MAX_WAIT, Batch, Batcher
from .closing import finish_within, stop_task
from .eventjson import from_jsonable, jsonable
from .ingest import LiveSnapshot

log = logging.getLogger(__name__)

PENDING_BATCHES = 8
"""Batches of finished calls that may wait while one is written before the link's
consumer waits for room.  A burst's calls end together (200 at once at ten times a
burst's pace): with room for one batch only, the consumer waited for the store's
writes, and every fact behind it, screen pops of new calls included, waited as long
(issue 17).  The link reads on into its own queue meanwhile, so a smaller bound here
saved no memory; these calls are in memory either way (as they were in the link's
queue), and the backfill from the CDR covers a crash."""

Handler = Callable[[Fact], Awaitable[object]]
BatchWriter = Callable[[Sequence[CallRecord], Sequence[LiveSnapshot]], Awaitable[object]]
"""Writes calls and live snapshots in one transaction, all or nothing (``Ingest.record_many``)."""
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


def merge_status(statuses: Iterable[HoldingStatus]) -> HoldingStatus:
    """One status for several sinks (one per link): counts add up, the oldest wait wins."""
    items = list(statuses)
    since = [s.held_since for s in items if s.held_since is not None]
    return HoldingStatus(
        held=sum(s.held for s in items),
        held_since=min(since) if since else None,
        last_error=next((s.last_error for s in items if s.last_error), None),
        retries=sum(s.retries for s in items),
        written_late=sum(s.written_late for s in items),
        lost=sum(s.lost for s in items),
        live_dropped=sum(s.live_dropped for s in items),
    )


class Journal:
    """Held calls on disk: append + fsync one JSON line per held record, read them back,
    truncate.  Blocking file work runs in a thread, never on the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = asyncio.Lock()

    async def append(self, rec: CallRecord) -> None:
        line = json.dumps(jsonable(rec), separators=(",", ":")) + "\n"
        async with self.lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    async def read(self) -> list[CallRecord]:
        """The journaled calls, the latest version of each, in first-held order."""
        async with self.lock:
            text = await asyncio.to_thread(self._read)
        out: OrderedDict[str, CallRecord] = OrderedDict()
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec: CallRecord = from_jsonable(CallRecord, json.loads(line))
            except (ValueError, TypeError, KeyError) as exc:
                # A line cut short by a crash mid-write: the record was never
                # acknowledged as kept, so nothing a user saw is lost with it.
                log.warning("held-calls journal %s line %d unreadable: %s", self.path, n, exc)
                continue
            out[rec.linkedid] = rec
        return list(out.values())

    def _read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    async def truncate_if(self, empty: Callable[[], bool]) -> None:
        """Empty the file, if ``empty()`` still holds once the journal is ours."""
        async with self.lock:
            if empty():
                await asyncio.to_thread(self._truncate)

    def _truncate(self) -> None:
        if self.path.exists():
            with self.path.open("w", encoding="utf-8") as f:
                f.flush()
                os.fsync(f.fileno())


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
        journal: Path | None = None,
        write_many: BatchWriter | None = None,
        batch_calls: int = MAX_CALLS,
        batch_wait: float = MAX_WAIT,
    ) -> None:
        self._handle = handle
        self._write_many = write_many
        self._batch_calls = batch_calls
        self._batcher: Batcher[CallRecord, LiveSnapshot] | None = None
        if write_many is not None:
            self._batcher = Batcher(self._flush, max_calls=batch_calls, max_wait=batch_wait,
                                    live_key=_live_key,
                                    max_pending=PENDING_BATCHES * batch_calls)  # fmt: skip
        self._journal = Journal(journal) if journal is not None else None
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
            await self._keep(fact)  # behind the ones already waiting, in order
            return
        if self._batcher is not None:
            await self._batcher.add_call(fact)
            return
        await self._write_one(fact)

    def defer_live(self, snap: LiveSnapshot) -> None:
        """Give a snapshot of a call in progress to the next batch (``Ingest.defer_live``)."""
        assert self._batcher is not None, "defer_live needs write_many"
        self._batcher.add_live(snap)

    @property
    def batching(self) -> bool:
        return self._batcher is not None

    @property
    def batcher(self) -> Batcher[CallRecord, LiveSnapshot] | None:
        """The batcher (its counters say how full the batches were), if batching."""
        return self._batcher

    async def drain(self) -> None:
        """Wait until every call accepted so far is written or held (batching only)."""
        if self._batcher is not None:
            await self._batcher.drain()

    async def replay_journal(self) -> int:
        """Write (or hold again) the calls a previous process journaled and never wrote;
        how many there were.  Call once, before the link's first facts matter."""
        if self._journal is None:
            return 0
        recs = await self._journal.read()
        for rec in recs:
            await self(rec)
        await self.drain()  # written (or held again) before the file is emptied
        if recs:
            log.warning("%d held call(s) from the journal %s replayed", len(recs),
                        self._journal.path)  # fmt: skip
        await self._journal_truncate()
        return len(recs)

    async def _journal_append(self, rec: CallRecord) -> None:
        if self._journal is None:
            return
        try:
            await self._journal.append(rec)
        except OSError:
            log.exception("could not journal held call %s (kept in memory only)", rec.linkedid)

    async def _journal_truncate(self) -> None:
        if self._journal is None:
            return
        try:
            await self._journal.truncate_if(lambda: not self._held)
        except OSError:
            log.exception("could not truncate the held-calls journal")

    def retry_now(self) -> None:
        """Try the held calls at once (the admin's "retry" button, or the store said it is back)."""
        self._wake.set()

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is batched, one last attempt to write what is held, then stop."""
        if self._batcher is not None:
            await self._batcher.close(timeout)
        if self._held:
            await finish_within(self._write_held(), timeout)
        await stop_task(self._task)
        self._task = None
        if self._held:
            log.error("%d finished calls were never written: %s", len(self._held),
                      ", ".join(self._held))  # fmt: skip

    # -- internals

    async def _flush(self, batch: Batch[CallRecord, LiveSnapshot]) -> None:
        """Write one batch; on a refusal, fall back to one call at a time (see above)."""
        assert self._write_many is not None
        calls = batch.calls
        if self._held:  # the calls behind held ones wait their turn, in order
            for rec in calls:
                await self._keep(rec)
            calls = []
        if not calls and not batch.live:
            return
        try:
            await self._write_many(calls, batch.live)
            return
        except Exception as exc:
            if not calls:  # live snapshots only: tried once, like a screen pop
                self._snapshots_lost(len(batch.live), exc)
                return
            log.warning("a batch of %d calls was refused (%s); writing them one by one",
                        len(calls), str(exc) or type(exc).__name__)  # fmt: skip
        if batch.live:
            try:
                await self._write_many((), batch.live)
            except Exception as exc:
                self._snapshots_lost(len(batch.live), exc)
        for rec in calls:
            if self._held:
                await self._keep(rec)
            else:
                await self._write_one(rec)

    async def _write_one(self, rec: CallRecord) -> None:
        """Write one call now; held and journaled when the database refuses it."""
        try:
            await self._handle(rec)
        except Exception as exc:
            self._failed(exc)
            await self._keep(rec)

    async def _keep(self, rec: CallRecord) -> None:
        """Hold a call until the database takes it, and journal it for the next start."""
        self._hold(rec)
        await self._journal_append(rec)

    def _snapshots_lost(self, count: int, exc: Exception) -> None:
        self._live_dropped += count
        log.warning("%d snapshots of calls in progress not kept: %s", count, exc)

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
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            if await self._write_held():
                delay = self._retry_initial
            else:
                delay = min(self._retry_max, delay * 2)

    async def _write_held(self) -> bool:
        """Write held calls oldest first; False at the first refusal (the rest keep waiting).
        Batching, a batch at a time; a batch refused is tried again with its first call
        alone, so one call the store rejects can only hold up the others behind it."""
        while self._held:
            chunk = list(islice(self._held.items(), self._batch_calls if self._batcher else 1))
            if len(chunk) > 1:
                assert self._write_many is not None
                try:
                    await self._write_many([rec for _, rec in chunk], ())
                except Exception:
                    chunk = chunk[:1]
            if len(chunk) == 1:
                try:
                    await self._handle(chunk[0][1])
                except Exception as exc:
                    self._failed(exc)
                    self._changed()
                    return False
            for linkedid, rec in chunk:
                if self._held.get(linkedid) is rec:
                    del self._held[linkedid]
                self._written_late += 1
        self._held_since = None
        self._last_error = None
        log.warning("the database is back: held calls written (%d in all)", self._written_late)
        await self._journal_truncate()
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


def _live_key(snap: LiveSnapshot) -> tuple[int | None, str]:
    return snap.pbx_link_id, snap.linkedid
