"""Several PBX links, each consumed by exactly one process at a time.

Settings name the links: ``[[pbx_links]]`` entries (``name``, ``team`` and the ``[ami]``
keys), or, without any, the ``[ami]`` section as one link called ``default``.

On PostgreSQL every web process runs a ``LinkManager``; for each link it tries a
session-level advisory lock (``crm.store.pg_locks``) about once a second.  The holder
runs the AMI link, its tracker and an ingest that stamps the link's id on its calls and
keeps the calls in progress in ``live_calls``.  When the holder dies, PostgreSQL drops
its lock, another process gets it, connects, and the PBX's channel list (the link's
resync) tells it which calls are still up: those the tracker finishes, the rest of the
kept calls are written as incomplete records (``crm.recovery``).  If the lock's own
connection drops, the holder stops the link at once: someone else may hold it now.
With ``[ami] tracker_process`` the tracker runs in a child process
(``ami_bridge.tracker_process``); when one dies, its successor's first channel list
finishes the calls it left behind the same way.

Click-to-call follows the links: ``link_for`` picks the link of a rep (their team's, else
the one their calls came through, else the only one) and answers with this process's
``AmiLink`` when it consumes that link, else with a ``RelayedLink`` that forwards the
Originate to the consumer; the manager's ``OriginateDesk`` is the consumer's side
(``crm.originate_relay``).  Taking a link announces it (``link_consumer``), so a process
waiting for an answer from the previous consumer knows it will not come.

On SQLite (one process) every link simply runs, through the same code: the ingest keeps
its calls in progress, and after a restart (a crash, or the admin changing the link
settings) the new link finishes them the same way a takeover does.  Finished calls the
store refuses are held and journaled per link (``crm.holding``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ami_bridge.facts import CallRecord, Fact
from ami_bridge.link import AmiLink, LinkStatus, settings_from_config
from ami_bridge.presence import AgentChange, PresenceChange
from ami_bridge.presence.combined import calls_and_presence
from ami_bridge.protocol import Message, first
from ami_bridge.tracker_process import TrackerProcess
from config.settings import pbx_profile
from crm.batching import MAX_CALLS, MAX_WAIT
from crm.closing import cancel_all, close_within
from crm.events import Event
from crm.holding import HoldingSink
from crm.ingest import Ingest, LiveSnapshot
from crm.lanes import CallLanes
from crm.models import CallFilter, PbxLink, User
from crm.originate_relay import OriginateDesk, RelayedLink, consumer_event
from crm.policy import LeadPolicy
from crm.recovery import finish_orphans
from crm.store import Store

PresenceFact = PresenceChange | AgentChange

if TYPE_CHECKING:
    from ami_bridge.link import Tracker

    from .runtime import Runtime

log = logging.getLogger(__name__)

LINK_KEYS = ("name", "team", "default_owner")
RETRY_SECONDS = 1.0
CLOSE_SECONDS = 8.0
"""The most closing the links may take (each link's stop and lock release are bounded
on their own; this catches anything else)."""
READY_WAIT = 2.0
"""How long a fact waits for its link's row before the holding sink takes over."""
HANDOVER_SECONDS = 30.0
"""How long a new link waits for the PBX's channel list before it writes the calls it
took over as incomplete anyway (a PBX that does not answer must not leave them on every
live list)."""


class LinkConfigError(ValueError):
    """``[[pbx_links]]`` is wrong; the message says which entry and why."""


@dataclass(frozen=True)
class LinkConfig:
    name: str
    team: str | None
    ami: dict[str, Any] = field(hash=False, repr=False)  # holds the AMI secret
    default_owner: str | None = None
    """Username owning this link's unanswered calls' leads and callbacks; empty: the
    first manager of the link's team."""


def link_configs(settings: dict[str, Any]) -> list[LinkConfig]:
    """The configured links; the ``[ami]`` values are the defaults of every entry."""
    base = dict(settings.get("ami", {}))
    entries = settings.get("pbx_links") or []
    if not entries:
        return [LinkConfig("default", None, base)]
    out: list[LinkConfig] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not str(entry.get("name", "")).strip():
            raise LinkConfigError(f"pbx_links[{i}]: every link needs a name")
        name = str(entry["name"]).strip()
        if any(c.name == name for c in out):
            raise LinkConfigError(f"pbx_links[{i}]: the name {name!r} is used twice")
        ami = {**base, **{k: v for k, v in entry.items() if k not in LINK_KEYS}}
        team = str(entry.get("team") or "").strip() or None
        owner = str(entry.get("default_owner") or "").strip() or None
        out.append(LinkConfig(name, team, ami, owner))
    return out


async def team_owner(store: Store, row: PbxLink, username: str | None) -> int | None:
    """Who owns a link's unowned work (leads and callbacks of calls nobody answered):
    the configured user, else the first active manager of the link's team.  Owned by
    someone of the team, that work stays inside the team's scope (``crm.access``): a
    manager of another team never sees it."""
    if username:
        user = await store.get_user_by_username(username)
        if user is not None and user.active:
            return user.id
        log.warning("link %s: default_owner %r is no active user", row.name, username)
    if row.team_id is None:
        return None
    managers = [u for u in await store.list_users()
                if u.role == "manager" and u.team_id == row.team_id and u.active]  # fmt: skip
    return min((u.id for u in managers if u.id is not None), default=None)


def batch_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``[database] batch_calls`` / ``batch_wait_ms``: how finished calls are batched
    (``batch_calls = 0``: not at all, one transaction per call and per live snapshot)."""
    db = settings.get("database", {})
    return {
        "batch_calls": max(0, int(db.get("batch_calls", MAX_CALLS))),
        "batch_wait": max(0.0, float(db.get("batch_wait_ms", MAX_WAIT * 1000)) / 1000),
    }


def link_policy(root: LeadPolicy, owner_id: int | None) -> LeadPolicy:
    return root if owner_id is None else replace(root, default_owner_id=owner_id)


class ListingWatch:
    """The tracker, plus a note of which calls the PBX listed on (re)connecting.

    Delegates everything to the pure tracker; only watches the CoreShowChannel events
    go by, so the link manager knows which kept calls are still up after a takeover."""

    def __init__(self, tracker: Tracker | TrackerProcess) -> None:
        self.inner: Any = tracker
        self.listed: set[str] = set()
        self.listings = 0
        self.listed_start = 0
        """Which of the tracker process's starts the last listing came after (0: no
        process): a listing after a restart tells which calls the dead one left."""
        self.relisted = asyncio.Event()
        """Set at every complete listing (the link manager clears it)."""
        self.listed_once = asyncio.Event()
        self._current: set[str] | None = None

    def wants(self, name: str, frame_text: str) -> bool:
        return self.inner.wants(name, frame_text)

    @property
    def worker(self) -> Any:
        """The tracker's own process, when it runs in one (the link then calls
        ``observe`` with the listing events it gets back, instead of ``feed``)."""
        return getattr(self.inner, "worker", None)

    def feed(self, msg: Message, at: float) -> list[Fact]:
        self.observe(msg)
        return self.inner.feed(msg, at)

    def observe(self, msg: Message) -> None:
        name = first(msg.get("Event")) if msg.get("Event") is not None else None
        if name == "CoreShowChannel":
            if self._current is None:
                self._current = set()
            linkedid = msg.get("Linkedid")
            if linkedid:
                self._current.add(first(linkedid))
        elif name == "CoreShowChannelsComplete":
            self.listed = self._current or set()
            self._current = None
            self.listings += 1
            self.listed_start = getattr(self.worker, "starts", 0)
            self.relisted.set()
            self.listed_once.set()

    def tick(self, at: float) -> list[Fact]:
        return self.inner.tick(at)

    def greeting(self, banner: str, at: float) -> list[Fact]:
        greeting = getattr(self.inner, "greeting", None)  # the PBX's AMI version
        return greeting(banner, at) if greeting is not None else []

    def begin_resync(self, at: float) -> None:
        self._current = set()
        self.inner.begin_resync(at)

    def flush(self) -> list[Fact]:
        return self.inner.flush()

    @property
    def resync_actions(self) -> tuple[str, ...]:
        return tuple(getattr(self.inner, "resync_actions", ()))

    def open_ids(self) -> set[str]:
        return self.inner.open_ids()


@dataclass
class RunningLink:
    config: LinkConfig
    row: PbxLink | None
    """None until the link's row is read (its facts wait until then)."""
    link: AmiLink
    ingest: Ingest
    watch: ListingWatch
    sink: HoldingSink
    ready: asyncio.Event
    owner: list[int | None]
    recovered: list[str] = field(default_factory=list)
    lanes: CallLanes | None = None
    """The sink's front: a call's first lookup does not hold up the others."""


@dataclass(eq=False, repr=False)  # one per process, by identity; repr never shows settings
class LinkManager:
    rt: Runtime
    configs: list[LinkConfig]
    _: KW_ONLY
    database_url: str | None = None
    """A PostgreSQL URL: take a lock per link.  None: run every link (SQLite)."""
    retry: float = RETRY_SECONDS
    handover: float = HANDOVER_SECONDS
    running: dict[str, RunningLink] = field(init=False, default_factory=dict)
    statuses: dict[str, LinkStatus] = field(init=False, default_factory=dict)
    takeovers: int = field(init=False, default=0)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    desk: OriginateDesk | None = field(init=False, default=None)
    """Sends the Originates other processes relay for the links this one consumes
    (PostgreSQL only: without it every link is this process's)."""

    def __post_init__(self) -> None:
        if self.database_url is not None:
            fanout = self.rt.extras.get("fanout")
            confirm = fanout.flush if fanout is not None else None
            self.desk = OriginateDesk(self.rt.bus, self._consumed, confirm=confirm)

    def _consumed(self, name: str) -> AmiLink | None:
        running = self.running.get(name)
        return running.link if running is not None else None

    def start(self) -> None:
        """Start every link.  Without PostgreSQL each link is built at once (``rt.link`` is
        set on return); with it, a link is built when this process wins its lock."""
        if self.desk is not None:
            self.desk.start()
        for cfg in self.configs:
            if self.database_url is None:
                running = self._build(cfg)
                task = self._serve(running, None)
            else:
                task = self._run(cfg)
            self._tasks.append(asyncio.create_task(task, name=f"link-{cfg.name}"))

    async def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Stop every link and give up its lock; bounded (``crm.closing``)."""
        await cancel_all(self._tasks, timeout, "link manager")
        self._tasks = []
        if self.desk is not None:
            await close_within(self.desk.close(), timeout, "originate desk")

    async def restart(self) -> None:
        """Stop every link and start again from the current settings (admin page).

        The calls in progress are handed over, not dropped: their ``live_calls`` rows
        stay, and the new link of the same name finishes them after its first channel
        listing (the tracker follows those still up; the rest are written incomplete).
        A link no longer configured has no successor: its calls are written now."""
        before = {c.name for c in self.configs}
        await self.close()
        self.configs = link_configs(self.rt.settings)
        gone = before - {c.name for c in self.configs}
        try:
            rows = await self.rt.store.list_pbx_links() if gone else []
        except Exception:  # the links must come back even if the database does not answer
            log.exception("could not read the links to finish the calls of removed ones")
            rows = []
        for row in rows:
            if row.name in gone:
                await self._finish_all(row)
        self.start()

    async def _finish_all(self, row: PbxLink) -> None:
        """Write every kept call of a link nobody will run again (as incomplete)."""
        ingest = Ingest(self.rt.store, self.rt.ingest.policy, self.rt.bus, self.rt.ingest.clock,
                        pbx_link_id=row.id, keep_live=True)  # fmt: skip
        try:
            await finish_orphans(ingest, ())
        except Exception:
            log.exception("link %s: could not finish its calls in progress", row.name)

    # -- one link ----------------------------------------------------------------------
    async def _run(self, cfg: LinkConfig) -> None:
        """PostgreSQL: consume the link whenever this process holds its lock."""
        assert self.database_url is not None
        from crm.store.pg_locks import SessionLock

        await self._link_row(cfg)
        lock = SessionLock(self.database_url, f"crm-link:{cfg.name}")
        waiting_logged = False
        try:
            while True:
                if await lock.try_acquire():
                    log.info("link %s: this process is its consumer now", cfg.name)
                    waiting_logged = False
                    try:
                        await self._serve(self._build(cfg), lock.lost)
                    finally:
                        await lock.release()
                elif not waiting_logged:
                    log.info("link %s: another process consumes it; standing by", cfg.name)
                    waiting_logged = True
                await asyncio.sleep(self.retry)
        finally:
            await lock.close()

    async def _link_row(self, cfg: LinkConfig) -> PbxLink:
        delay = 0.5
        while True:
            try:
                return await self.rt.store.ensure_pbx_link(cfg.name, cfg.team)
            except Exception as exc:  # the database may be restarting: keep trying
                log.warning("link %s: cannot register it yet: %s", cfg.name, exc)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)

    def _build(self, cfg: LinkConfig) -> RunningLink:
        """The pieces of one link, the same in every mode: the tracker (watched for the
        channel listings), an ingest that keeps the calls in progress in ``live_calls``
        and stamps the link's id, the holding sink, the AMI link.  Built synchronously so
        ``rt.link`` exists at once; facts wait for the link's row before being written."""
        rt = self.rt
        root = rt.ingest
        ingest = Ingest(rt.store, root.policy, rt.bus, root.clock, keep_live=True)
        profile = pbx_profile(rt.settings)
        link_settings = settings_from_config(cfg.ami)
        tracker: Tracker | TrackerProcess = (
            TrackerProcess(partial(calls_and_presence, profile))
            if link_settings.tracker_process
            else calls_and_presence(profile)
        )
        watch = ListingWatch(tracker)
        ready = asyncio.Event()
        owner: list[int | None] = [None]

        gave_up = [False]

        async def when_ready() -> None:
            if not ready.is_set():
                # The row is read in milliseconds unless the database is down; then a
                # finished call is better held and journaled (the sink) than kept waiting
                # in memory, so wait once, briefly, and refuse until the row is known.
                if gave_up[0]:
                    raise RuntimeError("the link is not registered in the database yet")
                try:
                    async with asyncio.timeout(READY_WAIT):
                        await ready.wait()
                except TimeoutError:
                    gave_up[0] = True
                    raise RuntimeError("the link is not registered in the database yet") from None
            # The admin page may have replaced the root policy: follow it.
            ingest.policy = link_policy(root.policy, owner[0])

        async def handle(fact: Fact) -> None:
            await when_ready()
            await ingest.handle(fact)

        async def write_many(recs: Sequence[CallRecord], live: Sequence[LiveSnapshot]) -> None:
            await when_ready()
            await ingest.record_many(recs, live)

        # Finished calls are written a batch per transaction, with the snapshots of the
        # calls in progress (``crm.batching``); one the store refuses for a while (locked,
        # restarting) is held and retried (and journaled on disk: ``crm.holding``).
        batching = batch_settings(rt.settings)
        if not batching["batch_calls"]:
            batching = {}
        sink = HoldingSink(handle, on_change=lambda st: rt.bus.publish(Event("store_status", st)),
                           journal=self._journal_path(cfg.name),
                           write_many=write_many if batching else None, **batching)  # fmt: skip
        if batching:
            ingest.defer_live = sink.defer_live

        # Calls that began and ended while nobody held the link: from the PBX's CDR.
        from .runtime import cdr_backfill

        async def record_when_ready(rec: CallRecord) -> Any:
            # A backfilled call is keyed by its link's id: never write it before that is
            # known (a failure keeps the backfill's window for its retry).
            async with asyncio.timeout(READY_WAIT):
                await ready.wait()
            return await ingest.record(rec)

        backfill = cdr_backfill(rt, cfg.name, ingest, cfg.ami)
        if backfill is not None:
            backfill.record = record_when_ready  # this consumer's ingest (link id, live rows)
            backfill.open_ids = watch.open_ids  # calls this consumer's tracker will write

        async def deliver(fact: Fact | PresenceFact) -> None:
            if isinstance(fact, PresenceChange | AgentChange):
                # live state, not a call: straight to the board (never held or journaled)
                await rt.presence.handle(cfg.name, ingest.pbx_link_id, [fact])
                return
            if backfill is not None:
                backfill.traffic()
            await lanes(fact)

        lanes = CallLanes(sink, ingest.needs_lookup)

        def status(st: LinkStatus) -> None:
            self.statuses[cfg.name] = st
            if backfill is not None:
                backfill.link_state(st.state)
            rt.bus.publish(Event("link_status", st))

        link = AmiLink(link_settings, watch, deliver, on_status=status)
        running = RunningLink(cfg, None, link, ingest, watch, sink=sink, ready=ready, owner=owner,
                              lanes=lanes)  # fmt: skip
        self.running[cfg.name] = running
        self._attach(link)
        return running

    def _journal_path(self, name: str) -> Path | None:
        """Where a link's held calls are journaled (``crm.holding``): the data dir."""
        from .runtime import data_dir

        folder = data_dir(self.rt.settings)
        return None if folder is None else folder / f"held-calls-{name}.jsonl"

    async def _serve(self, running: RunningLink, lost: asyncio.Event | None) -> None:
        rt = self.rt
        cfg, link, sink = running.config, running.link, running.sink
        recovery: asyncio.Task[None] | None = None
        try:
            await link.start()  # connects meanwhile; its facts wait for ``ready``
            running.row = row = await self._link_row(cfg)
            running.ingest.pbx_link_id = row.id
            running.owner[0] = await team_owner(rt.store, row, cfg.default_owner)
            running.ready.set()
            sink.retry_now()  # anything refused while the row was unknown
            await sink.replay_journal()
            self.takeovers += 1
            rt.bus.publish(consumer_event(cfg.name))
            recovery = asyncio.create_task(self._recover(running), name=f"recover-{cfg.name}")
            if self.desk is not None:
                self.desk.link_started(cfg.name)
            if lost is None:
                await asyncio.Future()  # until cancelled
            else:
                await lost.wait()
                log.error("link %s: lost the lock; stopping the link", cfg.name)
        finally:
            if recovery is not None:
                recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await recovery
            await link.stop(flush=False, drain_timeout=2.0)
            backfill = rt.extras.get("backfills", {}).get(cfg.name)
            if backfill is not None:
                backfill.link_state("disconnected")
            with contextlib.suppress(Exception):
                if running.lanes is not None:
                    await running.lanes.close()  # their snapshots go with the last batch
                await sink.close()
            if self.running.get(cfg.name) is running:
                self.running.pop(cfg.name, None)
            self._detach(link)

    async def _recover(self, running: RunningLink) -> None:
        """After the first channel listing: finish the calls nobody else will.  No listing
        within ``handover`` seconds (the PBX is down, the new settings are wrong): write
        them all as incomplete; any still up are updated in place when the tracker sees
        them end."""
        try:
            async with asyncio.timeout(self.handover):
                await running.watch.listed_once.wait()
            listed: set[str] = running.watch.listed
        except TimeoutError:
            log.warning(
                "link %s: no channel list from the PBX within %g s; writing the calls left "
                "behind as incomplete", running.config.name, self.handover,
            )  # fmt: skip
            listed = set()
        await asyncio.sleep(0)  # let the link queue the listing's facts first
        await self._finish_left_behind(running, listed)
        watch = running.watch
        if watch.worker is None:
            return
        # A tracker process that died took its calls with it: after the new one's first
        # listing, the calls that ended meanwhile are left behind the same way.
        done = watch.worker.starts
        while True:
            await watch.relisted.wait()
            watch.relisted.clear()
            if watch.listed_start <= done:
                continue
            done = watch.listed_start
            log.warning("link %s: the tracker process was replaced; finishing the calls "
                        "it left behind", running.config.name)  # fmt: skip
            await self._finish_left_behind(running, watch.listed)

    async def _finish_left_behind(self, running: RunningLink, listed: set[str]) -> None:
        try:
            running.recovered += await finish_orphans(running.ingest, listed)
        except Exception:
            log.exception("link %s: could not finish the calls left behind",
                          running.config.name)  # fmt: skip

    # -- click-to-call -----------------------------------------------------------------
    async def link_name_for(self, user: User) -> str | None:
        """The link a rep dials through: the one serving their team; else the one their
        latest call came through (their extension is on that PBX); else the first link
        (with one link, that one)."""
        names = [c.name for c in self.configs]
        if len(names) <= 1:
            return names[0] if names else None
        rows = [r for r in await self.rt.store.list_pbx_links() if r.name in names]
        if user.team_id is not None:
            for row in rows:
                if row.team_id == user.team_id:
                    return row.name
        if user.id is not None:
            for call in await self.rt.store.list_calls(CallFilter(user_id=user.id), limit=1):
                for row in rows:
                    if call.pbx_link_id is not None and row.id == call.pbx_link_id:
                        return row.name
        return names[0]

    async def link_for(self, user: User, extension: str) -> AmiLink | RelayedLink | None:
        """Click-to-call's router: this process's link for the rep when it consumes it,
        else (PostgreSQL) a relay to the process that does; None when the rep's link is
        unknown or (SQLite) not running."""
        name = await self.link_name_for(user)
        if name is None:
            return None
        local = self._consumed(name)
        if local is not None or self.desk is None:
            return local
        return RelayedLink(self.rt.bus, name)

    def _attach(self, link: AmiLink) -> None:
        """The first link this process runs is ``rt.link`` (status page, click-to-call)."""
        if self.rt.link is None:
            self.rt.link = link
            c2c = self.rt.extras.get("clicktocall")
            if c2c is not None:
                c2c.link = link

    def _detach(self, link: AmiLink) -> None:
        if self.rt.link is link:
            self.rt.link = next((r.link for r in self.running.values()), None)
            c2c = self.rt.extras.get("clicktocall")
            if c2c is not None:
                c2c.link = self.rt.link
