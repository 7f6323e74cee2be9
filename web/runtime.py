"""The running product: one object that owns the store, the CRM services, the event bus
and the PBX link, started and stopped together.

The web application gets a ``Runtime`` and reaches everything through it, so tests can
build one on a temporary database with no PBX at all, and the demo adds its replay PBX
without the pages knowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ami_bridge.facts import Fact
from ami_bridge.link import AmiLink, LinkStatus
from ami_bridge.replay_pbx import ReplayPbx
from ami_bridge.tracker import CallTracker
from config.settings import pbx_profile
from crm.events import Event, EventBus
from crm.ingest import Ingest
from crm.policy import LeadPolicy
from crm.services import CrmService
from crm.store import Store, open_store

from .security import LoginLimiter, Signer, load_secret_key

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent


def lead_policy(settings: dict[str, Any], default_owner_id: int | None = None) -> LeadPolicy:
    leads = settings.get("leads", {})
    return LeadPolicy(
        create_on=leads.get("create_on", "every_call"),
        repeat_window_hours=float(leads.get("repeat_window_hours", 72.0)),
        default_owner_id=default_owner_id,
        callback_sla_minutes=float(leads.get("callback_sla_minutes", 60.0)),
        own_numbers=tuple(str(n) for n in settings.get("pbx", {}).get("own_numbers", ())),
        default_region=str(settings.get("numbers", {}).get("default_region", "US")),
        display_tz=str(leads.get("display_tz", "UTC")),
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
    settings: dict[str, Any]
    store: Store
    service: CrmService
    bus: EventBus
    ingest: Ingest
    signer: Signer
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    link: AmiLink | None = None
    pbx: ReplayPbx | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    """Optional parts (click-to-call, recordings worker) keyed by name."""
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def link_status(self) -> LinkStatus | None:
        return self.link.status if self.link is not None else None

    def spawn(self, coro: Awaitable[Any], name: str) -> None:
        self._tasks.append(asyncio.ensure_future(coro))
        self._tasks[-1].set_name(name)

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        self._closers.append(closer)

    async def close(self) -> None:
        if self.link is not None:
            await self.link.stop(flush=False)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                await closer()
        if self.pbx is not None:
            await self.pbx.close()
        await self.store.close()


async def open_runtime(settings: dict[str, Any], *, with_link: bool = True) -> Runtime:
    """Open the store (migrating it) and build the services; start the PBX link when
    ``with_link`` and an AMI host is configured."""
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
    service = CrmService(store, policy)
    ingest = Ingest(store, policy, bus)
    rt = Runtime(settings, store, service, bus, ingest, Signer(key))
    if with_link:
        start_link(rt)
    return rt


def start_link(rt: Runtime) -> AmiLink:
    """(Re)start the PBX link with the current ``[ami]`` settings."""
    from ami_bridge.link import settings_from_config

    tracker = CallTracker(pbx_profile(rt.settings))

    async def deliver(fact: Fact) -> None:
        await rt.ingest.handle(fact)

    def status(st: LinkStatus) -> None:
        rt.bus.publish(Event("link_status", st))

    link = AmiLink(settings_from_config(rt.settings.get("ami", {})), tracker, deliver,
                   on_status=status)  # fmt: skip
    rt.link = link
    c2c = rt.extras.get("clicktocall")
    if c2c is not None:
        c2c.link = link
    rt.spawn(link.start(), "ami-link-start")
    return link
