"""Calls during an outage: backfilled from the PBX's own CDR when the link comes back.

A call that starts and ends while no process holds a PBX's AMI link (the CRM stopped,
the network down, the second or two of a takeover) never reaches the tracker; Asterisk
still writes its CDR.  For every link this module keeps a *watermark*: the last moment the
link was known alive (kept in memory on every fact the link delivers, stored every few
seconds while it is up, and when it goes down).  On every start of the link and every
reconnect it reads the CDR rows of the gap -- from the watermark (less
``overlap_seconds``) to now -- turns them into calls (``ami_bridge.cdr``, the tracker's
own number rules) and writes each through the ingest, flagged ``source = 'cdr'``:

* a call already stored (the link saw it, whole or in part) is never written again, and a
  CDR call is never replaced by a partial view (``crm.ingest``);
* the CDR comes from ``cdr_csv``'s Master.csv (read in a worker thread, from the end
  backwards only as far as the gap, and from where the last read stopped; a rotated file is
  noticed by its inode and its rest read from the rotated copy; a line Asterisk is still
  writing is read once it is whole), or from the ``cdr`` table ``cdr_pgsql`` /
  ``cdr_adaptive_odbc`` fill in PostgreSQL;
* a backfill that fails (file missing, database down) says so on the admin page and
  keeps its window: the next attempt (every ``retry_seconds`` while the link is up, and
  on the next reconnect) starts from the same place, so a gap is never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ami_bridge.cdr import CdrCalls, CdrRow, zone
from ami_bridge.facts import CallRecord
from ami_bridge.profile import PbxProfile

from .cdr_sources import CdrError, brief, read_cdr_table, read_master_csv
from .closing import stop_task
from .models import BackfillState
from .store import Store

__all__ = [
    "BackfillReport",
    "BackfillSettings",
    "CdrBackfill",
    "CdrError",
    "backfill_settings",
    "read_cdr_table",
    "read_master_csv",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class BackfillSettings:
    """``[cdr]`` (a ``[[pbx_links]]`` entry may set ``cdr_csv_path``, ``cdr_dsn`` and
    ``cdr_table`` for its own PBX)."""

    csv_path: str = ""
    """cdr_csv's Master.csv as this machine sees it (a mount of the PBX's
    /var/log/asterisk/cdr-csv, or a copy kept in sync)."""
    dsn: str = field(default="", repr=False)
    """PostgreSQL holding cdr_pgsql's / cdr_adaptive_odbc's table (may hold a password)."""
    table: str = "cdr"
    timezone: str = "UTC"
    """The zone the PBX writes CDR times in (its local time, unless ``usegmtime``)."""
    overlap_seconds: float = 120.0
    """Read this much before the watermark: more than the link's ping interval plus
    timeout (a half-open link looks alive that long) and the PBX's clock drift."""
    first_lookback_hours: float = 0.0
    """A link with no watermark yet (first start): how far back to look."""
    alive_interval: float = 5.0
    retry_seconds: float = 60.0
    max_call_hours: float = 8.0
    """The CDR table is searched by start time: calls longer than this that ended in the
    gap are not found."""
    partial_wait: float = 1.0
    """A last line without its newline is being written: wait this long, up to 3 times."""

    @property
    def configured(self) -> bool:
        return bool(self.csv_path or self.dsn)


def backfill_settings(settings: Mapping[str, Any], link: Mapping[str, Any] | None = None) -> (
    BackfillSettings
):  # fmt: skip
    """The settings for one link: ``[cdr]``, with the link's own ``cdr_*`` keys on top.
    With several PBXes (``[[pbx_links]]``) each link reads only the CDR it names itself:
    one PBX's calls must never land on another's link.  A wrong value is a ValueError
    naming the key."""
    cdr = dict(settings.get("cdr", {}))
    if settings.get("pbx_links"):
        cdr["csv_path"] = cdr["dsn"] = ""
    for key in ("csv_path", "dsn", "table"):
        if link and link.get(f"cdr_{key}") not in (None, ""):
            cdr[key] = link[f"cdr_{key}"]
    floats: dict[str, float] = {}
    for key, name in (
        ("overlap_seconds", "overlap_seconds"),
        ("first_lookback_hours", "first_lookback_hours"),
        ("alive_interval_seconds", "alive_interval"),
        ("retry_seconds", "retry_seconds"),
        ("max_call_hours", "max_call_hours"),
    ):
        if key not in cdr:
            continue
        value = cdr[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"cdr.{key} must be a number of seconds/hours, not negative")
        floats[name] = float(value)
    tz = str(cdr.get("timezone", "UTC") or "UTC")
    zone(tz)  # a wrong name fails here, at start, not at the first backfill
    table = str(cdr.get("table", "cdr") or "cdr")
    if (
        not all(part.replace("_", "").isalnum() for part in table.split("."))
        or table.count(".") > 1
    ):
        raise ValueError("cdr.table must be a table name, optionally schema.table")
    return BackfillSettings(
        csv_path=str(cdr.get("csv_path", "") or ""),
        dsn=str(cdr.get("dsn", "") or ""),
        table=table,
        timezone=tz,
        **floats,  # type: ignore[arg-type]
    )


# ----------------------------------------------------------------------- the backfill


@dataclass(frozen=True, slots=True)
class BackfillReport:
    """What one backfill did."""

    since: float
    until: float
    found: int
    """Calls the CDR holds that ended in the window."""
    written: int
    """Of those, calls no link had stored."""
    error: str | None = None


RecordFn = Callable[[CallRecord], Awaitable[Any]]


class CdrBackfill:
    """One link's watermark and backfills.

    ``record`` writes one call and returns the ingest's ``Ingested`` (its ``created`` says
    whether the call was new).  Tell it about the link with ``link_state`` (the link's
    ``on_status``) and ``traffic`` (every fact delivered); ``close`` stores the watermark.
    """

    def __init__(
        self,
        store: Store,
        link: str,
        settings: BackfillSettings,
        record: RecordFn,
        profile: PbxProfile | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.link = link
        self.settings = settings
        self.record = record
        """Writes one call: the ingest of whoever consumes the link now."""
        self.open_ids: Callable[[], Collection[str]] = frozenset
        """Linkedids and uniqueids of the calls the link's tracker holds (in progress after
        the reconnect's channel listing): left to the tracker, whose record is whole, while
        their CDR may hold only the legs that ended so far (a transfer's consultation)."""
        self._calls = CdrCalls(profile)
        self._tz = zone(settings.timezone)
        self._clock = clock
        self._link_up = False
        self._connected = False
        """The window of the last connect is taken: the watermark may move on."""
        self._alive_mem: float | None = None
        self._stored_alive: float | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.runs = 0
        self.last_report: BackfillReport | None = None
        self.changed = asyncio.Event()
        """Set after every backfill (tests wait on it)."""

    # -- the link's life

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name=f"cdr-alive-{self.link}")

    async def close(self) -> None:
        await stop_task(self._ticker)
        self._ticker = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._connected:
            self.traffic()
        with contextlib.suppress(Exception):
            await self._store_alive()
        self._connected = self._link_up = False

    def traffic(self, at: float | None = None) -> None:
        """The link delivered something: it is alive now (stored by the ticker)."""
        if self._connected:
            at = self._clock() if at is None else at
            if self._alive_mem is None or at > self._alive_mem:
                self._alive_mem = at

    def link_state(self, state: str) -> None:
        """The link's state changed (``LinkStatus.state``): on ``connected``, backfill
        the gap; on a drop, store when it was last alive."""
        up = state == "connected"
        if up and not self._link_up:
            self._link_up = True
            self._spawn(self._on_connected(), "cdr-backfill")
        elif not up and self._link_up:
            self._link_up = False
            if self._connected:
                self._connected = False
                self._spawn(self._guarded(self._store_alive()), "cdr-alive")

    async def _guarded(self, coro: Awaitable[Any]) -> None:
        try:
            await coro
        except Exception as exc:
            log.warning("link %s: could not store when the link was last alive: %s",
                        self.link, brief(exc))  # fmt: skip

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"{name}-{self.link}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_connected(self) -> None:
        until = self._clock()
        delay = 0.5
        while True:
            # The window is taken before the watermark moves on; until it can be read
            # (the database restarting) the watermark stays where it is.
            try:
                async with self._lock:
                    since = await self._window_start(until)
                    if not self._link_up:
                        return  # down again already: the next connect reads it
                    self._connected = True
                    self.traffic(until)
                break
            except Exception as exc:
                log.warning("link %s: cannot read the CDR watermark yet: %s", self.link,
                            brief(exc))  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)
                if not self._link_up:
                    return
        await self._guarded(self._store_alive())
        await self.run(since, until)

    async def _tick(self) -> None:
        every = max(0.05, self.settings.alive_interval)
        retry_at: float | None = None
        while True:
            await asyncio.sleep(every)
            if self._connected:
                self.traffic()
                with contextlib.suppress(Exception):
                    await self._store_alive()
                report = self.last_report
                if report is not None and report.error is not None and not self._lock.locked():
                    now = self._clock()
                    if retry_at is None:
                        retry_at = now + self.settings.retry_seconds
                    elif now >= retry_at:
                        retry_at = None
                        self._spawn(self.run(report.since, now), "cdr-backfill-retry")
                else:
                    retry_at = None

    async def _store_alive(self) -> None:
        at = self._alive_mem
        if at is None or (self._stored_alive is not None and at <= self._stored_alive):
            return
        await self.store.mark_link_alive(self.link, at)
        self._stored_alive = at

    async def _window_start(self, until: float) -> float:
        state = await self.store.get_backfill_state(self.link)
        lookback = self.settings.first_lookback_hours * 3600
        if state is None or state.alive_at is None:
            since = until - lookback
        else:
            since = state.alive_at - self.settings.overlap_seconds
        if state is not None and state.last_error and state.last_window_start is not None:
            since = min(since, state.last_window_start)  # a failed window is not skipped
        return since

    # -- one backfill

    async def run(self, since: float, until: float | None = None) -> BackfillReport:
        """Backfill the calls that ended between ``since`` and ``until`` (now)."""
        async with self._lock:
            until = self._clock() if until is None else until
            loaded: BackfillState | None = None
            kept: BackfillState | None = None
            try:
                loaded = await self.store.get_backfill_state(self.link) or BackfillState(self.link)
                rows, read_state = await self._read(since, loaded)
                loop = asyncio.get_running_loop()
                calls = await loop.run_in_executor(None, self._calls.calls, rows)
                # A PBX clock a little ahead must not push a call out of the window.
                last = until + self.settings.overlap_seconds
                tracked = self.open_ids()
                found = [
                    r
                    for r in calls
                    if since <= r.ended_at <= last
                    and r.linkedid not in tracked
                    and not tracked.intersection(r.uniqueids)
                ]
                written = 0
                for rec in found:
                    result = await self.record(rec)
                    if getattr(result, "created", False):
                        written += 1
                report = BackfillReport(since, until, len(found), written)
                kept = read_state  # done: the next read starts after these rows
            except Exception as exc:
                if not isinstance(exc, CdrError):
                    log.exception("link %s: CDR backfill failed", self.link)
                report = BackfillReport(since, until, 0, 0, brief(exc))
                kept = loaded  # failed: the retry reads the same rows again
            if kept is not None:
                state = replace(
                    kept,
                    last_run_at=self._clock(),
                    last_window_start=since,
                    last_window_end=until,
                    last_count=report.written,
                    total_count=kept.total_count + report.written,
                    last_error=report.error,
                )
                with contextlib.suppress(Exception):
                    await self.store.save_backfill_state(state, self._clock())
            self.runs += 1
            self.last_report = report
        if report.error:
            log.error("link %s: CDR backfill of %s .. %s failed: %s", self.link,
                      _iso(since), _iso(until), report.error)  # fmt: skip
        elif report.written:
            log.warning("link %s: %d call(s) of the gap %s .. %s backfilled from the CDR",
                        self.link, report.written, _iso(since), _iso(until))  # fmt: skip
        self.changed.set()
        self.changed = asyncio.Event()
        return report

    async def _read(self, since: float, state: BackfillState) -> tuple[
        list[CdrRow], BackfillState
    ]:  # fmt: skip
        s = self.settings
        rows: list[CdrRow] = []
        if s.csv_path:
            loop = asyncio.get_running_loop()
            read = None
            for _ in range(4):
                read = await loop.run_in_executor(
                    None, read_master_csv, s.csv_path, since, self._tz, state.file_id,
                    state.file_offset,
                )  # fmt: skip
                if not read.partial:
                    break
                await asyncio.sleep(s.partial_wait)  # Asterisk is writing that line
            assert read is not None
            if read.rotated_from:
                log.info("link %s: %s was rotated; read the rest of %s", self.link,
                         s.csv_path, read.rotated_from)  # fmt: skip
            rows += read.rows
            state = replace(state, file_id=read.file_id, file_offset=read.offset)
        if s.dsn:
            rows += await read_cdr_table(s.dsn, s.table, since, self._tz, s.max_call_hours * 3600)
        return rows, state


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
