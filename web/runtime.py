"""The running product: one object that owns the store, the CRM services, the event bus
and the PBX link, started and stopped together.

The web application gets a ``Runtime`` and reaches everything through it, so tests can
build one on a temporary database with no PBX at all, and the demo adds its replay PBX
without the pages knowing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ami_bridge.link import AmiLink, LinkStatus
from ami_bridge.replay_pbx import ReplayPbx
from config.settings import pbx_profile
from crm.backfill import CdrBackfill, backfill_settings
from crm.callback_work import CallbackWork
from crm.clock import Clock
from crm.closing import cancel_all, close_within
from crm.events import Event, EventBus
from crm.holding import HoldingSink, HoldingStatus, merge_status
from crm.ingest import Ingest
from crm.policy import LeadPolicy
from crm.presence import PresenceService
from crm.secretbox import SecretBox
from crm.services import CrmService
from crm.store import Store, open_store

from . import i18n
from .metrics import Metrics
from .security import LoginLimiter, Signer, load_secret_key

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
CLOSE_STEP_SECONDS = 10.0
"""The most one part of the runtime (link, link manager, fan-out, store...) may take to
close before it is cancelled and left behind."""


def install_words(language: str) -> Callable[[str], str]:
    """gettext in the install's language, for text the CRM writes for everyone."""

    def words(phrase: str) -> str:
        return i18n.translations(language).gettext(phrase)

    return words


def lead_policy(settings: dict[str, Any], default_owner_id: int | None = None) -> LeadPolicy:
    leads = settings.get("leads", {})
    language = i18n.normalize(str(settings.get("server", {}).get("language", "en"))) or "en"
    return LeadPolicy(
        create_on=leads.get("create_on", "every_call"),
        repeat_window_hours=float(leads.get("repeat_window_hours", 72.0)),
        default_owner_id=default_owner_id,
        callback_sla_minutes=float(leads.get("callback_sla_minutes", 60.0)),
        own_numbers=tuple(str(n) for n in settings.get("pbx", {}).get("own_numbers", ())),
        default_region=str(settings.get("numbers", {}).get("default_region", "US")),
        display_tz=str(leads.get("display_tz", "UTC")),
        language=language,
        words=install_words(language),
    )


def resolve_path(value: str) -> Path:
    """Relative paths in the settings are relative to the project, not the shell's cwd."""
    path = Path(value)
    return path if path.is_absolute() else ROOT / path


def sqlite_url_absolute(url: str) -> str:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        path = resolve_path(url[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    return url


@dataclass
class Runtime:
    settings: dict[str, Any] = field(repr=False)
    """Holds the AMI secret: never in a repr, a log line or a page."""
    store: Store
    service: CrmService
    bus: EventBus
    ingest: Ingest
    signer: Signer
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    link: AmiLink | None = None
    pbx: ReplayPbx | None = None
    clock: Clock = field(default_factory=Clock)
    """The one "now" of this process: pages ("today", "overdue"), the services and the
    ingest read it; tests set it (``rt.clock.set(...)``)."""
    metrics: Metrics = field(default_factory=Metrics)
    """The Prometheus figures of this process (``GET /metrics``)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Optional parts (click-to-call, recordings worker) keyed by name."""
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def link_status(self) -> LinkStatus | None:
        return self.link.status if self.link is not None else None

    @property
    def presence(self) -> PresenceService:
        """Who is free, ringing, talking or paused: the board's source (``crm.presence``)."""
        found = self.extras.get("presence")
        if found is None:
            found = self.extras["presence"] = PresenceService(self.store, self.bus, self.clock)
            self.on_close(found.close)
        return found

    @property
    def links(self) -> dict[str, AmiLink]:
        """Every PBX link this process consumes now, by name (``default`` for the one
        ``[ami]`` link run without the link manager)."""
        manager = self.extras.get("link_manager")
        if manager is not None:
            return {name: r.link for name, r in list(manager.running.items())}
        return {"default": self.link} if self.link is not None else {}

    @property
    def holding_status(self) -> HoldingStatus | None:
        """Finished calls waiting for the database, over every sink of this process
        (None: no link delivers here)."""
        sinks = [self.extras["holding"]] if "holding" in self.extras else []
        manager = self.extras.get("link_manager")
        if manager is not None:
            sinks += [r.sink for r in manager.running.values()]
        return merge_status([s.status for s in sinks]) if sinks else None

    def spawn(self, coro: Awaitable[Any], name: str) -> None:
        self._tasks.append(asyncio.ensure_future(coro))
        self._tasks[-1].set_name(name)

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        self._closers.append(closer)

    async def close(self, step_timeout: float = CLOSE_STEP_SECONDS) -> None:
        """Stop everything, in order; each part gets at most ``step_timeout`` seconds
        (``crm.closing``), so a close always ends, whatever one part waits for."""
        if self.link is not None:
            await close_within(self.link.stop(flush=False), step_timeout, "the PBX link")
        await cancel_all(self._tasks, step_timeout, "runtime tasks")
        for closer in reversed(self._closers):
            what = getattr(closer, "__qualname__", repr(closer))
            await close_within(closer(), step_timeout, what)
        if self.pbx is not None:
            await close_within(self.pbx.close(), step_timeout, "the replay PBX")
        await close_within(self.store.close(), step_timeout, "the store")


async def open_runtime(
    settings: dict[str, Any], *, with_link: bool = True, clock: Clock | None = None
) -> Runtime:
    """Open the store (migrating it) and build the services; start the PBX link when
    ``with_link`` and an AMI host is configured.  ``clock`` (default: the wall clock) is
    the one every page, service and ingest of this runtime reads."""
    clock = clock if clock is not None else Clock()
    url = sqlite_url_absolute(settings["database"]["url"])
    store = await open_store(url)
    server = settings.get("server", {})
    key = load_secret_key(
        str(server.get("secret_key", "")), resolve_path(server.get("key_file", "var/secret.key"))
    )
    owner = settings.get("leads", {}).get("default_owner", "")
    owner_id = None
    if owner:
        user = await store.get_user_by_username(owner)
        owner_id = user.id if user else None
    policy = lead_policy(settings, owner_id)
    bus = EventBus()
    service = CrmService(store, policy, clock)
    service.secret_box = SecretBox(key)
    await service.seal_stored_secrets()
    ingest = Ingest(store, policy, bus, clock)
    rt = Runtime(settings, store, service, bus, ingest, Signer(key), clock=clock)
    rt.metrics.bind(rt)
    from .linkstate import board

    board(rt)  # hears every link_status from now on (the banner, /healthz)
    if store.dialect == "postgres":
        await start_fanout(rt, url)
    if with_link:
        start_links(rt, url if store.dialect == "postgres" else None)
    return rt


async def start_fanout(rt: Runtime, url: str) -> None:
    """Several processes on one PostgreSQL: every bus event reaches every process."""
    from crm.fanout import Fanout
    from crm.store.pg_notify import PgChannel

    fanout = Fanout(rt.bus, PgChannel(url))
    await fanout.start()
    rt.extras["fanout"] = fanout
    rt.on_close(fanout.close)


def holding_sink(rt: Runtime) -> HoldingSink:
    """A holding sink on the root ingest (no link id), for facts that come from no PBX
    link (tools, tests): a finished call the store refuses is held and retried, never
    dropped; the admin sees it.  Each PBX link has its own, journaled, from the link
    manager (``web.linkmanager``); ``Runtime.holding_status`` adds them all up."""
    sink = rt.extras.get("holding")
    if sink is None:
        sink = HoldingSink(
            rt.ingest.handle, on_change=lambda st: rt.bus.publish(Event("store_status", st))
        )
        rt.extras["holding"] = sink
        rt.on_close(sink.close)
    return sink  # type: ignore[no-any-return]


def cdr_backfill(
    rt: Runtime, link: str, ingest: Ingest, link_keys: dict[str, Any] | None = None
) -> CdrBackfill | None:
    """The link's CDR backfill (``[cdr]``; None when no CDR source is configured): one
    per link name and process, kept across link restarts so its watermark stays."""
    backfills: dict[str, CdrBackfill] = rt.extras.setdefault("backfills", {})
    found = backfills.get(link)
    if found is not None:
        return found
    settings = backfill_settings(rt.settings, link_keys)
    if not settings.configured:
        return None
    found = CdrBackfill(rt.store, link, settings, ingest.record, pbx_profile(rt.settings))
    found.start()
    backfills[link] = found
    rt.on_close(found.close)
    return found


def data_dir(settings: dict[str, Any]) -> Path | None:
    """Where the process keeps files of its own (the held-calls journal): ``[server]
    data_dir`` if set, else the SQLite database's folder, else ``var/``; None for an
    in-memory database (tests that keep nothing on disk)."""
    configured = str(settings.get("server", {}).get("data_dir", "") or "")
    if configured:
        folder = resolve_path(configured)
    else:
        url = str(settings.get("database", {}).get("url", ""))
        if url.startswith("sqlite:"):
            path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
            if not path or path == ":memory:" or "mode=memory" in path:
                return None
            folder = resolve_path(path).parent
        else:
            folder = resolve_path("var")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start_links(rt: Runtime, database_url: str | None) -> None:
    """The PBX links, always through the link manager (one code path in every mode):
    on PostgreSQL one consumer per link across processes; on SQLite every link runs
    here.  Either way calls in progress are kept in ``live_calls`` and finished after a
    restart or a takeover (``crm.recovery``)."""
    from .linkmanager import LinkManager, link_configs

    server = rt.settings.get("server", {})
    retry = float(server.get("link_retry_seconds", 1.0))
    handover = float(server.get("link_handover_seconds", 30.0))
    manager = LinkManager(rt, link_configs(rt.settings), database_url=database_url, retry=retry,
                          handover=handover)  # fmt: skip
    rt.extras["link_manager"] = manager
    rt.on_close(manager.close)
    manager.start()


def start_link(rt: Runtime) -> AmiLink | None:
    """Start the PBX links with the current settings if they do not run yet; the link
    ``rt.link`` names (None on PostgreSQL until this process wins a link's lock).  To
    apply changed settings to running links, ``await restart_links(rt)``."""
    manager = rt.extras.get("link_manager")
    if manager is None:
        start_links(rt, rt.settings["database"]["url"] if rt.store.dialect == "postgres" else None)
    return rt.link


async def restart_links(rt: Runtime) -> None:
    """Restart the links from the current settings, handing their calls in progress
    over to the new links (``LinkManager.restart``)."""
    manager = rt.extras.get("link_manager")
    if manager is None:
        start_link(rt)
    else:
        await manager.restart()


def callback_work(rt: Runtime) -> CallbackWork:
    """The runtime's ``CallbackWork`` (claim, attempt, snooze, close, follow-up,
    overdue), made on first use."""
    work = rt.extras.get("callback_work")
    if work is None:
        work = rt.extras["callback_work"] = CallbackWork(rt.service, rt.bus)
    return work  # type: ignore[no-any-return]
