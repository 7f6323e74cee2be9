"""Outgoing webhooks: the CRM tells other systems when a call rings, ends or is missed,
and when a lead appears.

Targets come from the ``[webhooks]`` settings and from the admin's stored setting
(``service.get_setting("webhooks")``), each a URL, a secret and the events it wants.  Each
POST carries ``X-CRM-Event``, ``X-CRM-Delivery`` (a uuid, the same on every retry so the
receiver can drop duplicates), ``X-CRM-Timestamp`` (Unix seconds) and ``X-CRM-Signature:
sha256=<hex HMAC-SHA256 with the target's secret of "{timestamp}.{delivery}.{body}">``:
the timestamp and the id are signed, so a captured request cannot be replayed later
(``verify`` is the receiver's check, with a tolerance of five minutes).

A target must have a secret (an empty one is a configuration error), and may not be on a
loopback, link-local, private or otherwise internal address unless ``[webhooks]
allow_private_targets`` says so: the host is resolved and every address checked, at the
connection itself (no second lookup to race), and redirects are never followed.  Log lines
name a target by its URL without credentials or query, never by its secret.

A slow or dead target must never hold up the ingest or the other targets: the sender
reads the bus through its own subscription, and every target has its own bounded queue
(oldest dropped and counted when full) and its own worker, which retries 5xx answers,
429s, timeouts and connection errors with exponential backoff, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from crm.events import Event, EventBus
from crm.models import MISSED_OUTCOMES, Call, CallbackTask, Contact

from .api.serialize import call_json, callback_json, contact_json, iso

log = logging.getLogger(__name__)
EVENTS = ("call.ringing", "call.ended", "call.missed", "lead.created", "callback.overdue")
USER_AGENT = "SwitchboardCRM-Webhooks/1"
TOLERANCE = 300.0
"""Seconds a receiver accepts between ``X-CRM-Timestamp`` and its own clock."""


class WebhookConfigError(ValueError):
    """A webhook target that must not be used (no secret); the message names it."""


class ForbiddenTarget(aiohttp.ClientConnectionError):
    """The target resolves to an address webhooks may not reach (SSRF guard)."""


def safe_url(url: str) -> str:
    """The URL fit for a log line: no user name, password, query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<unreadable url>"


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    secret: str = field(repr=False)
    events: frozenset[str] = frozenset(EVENTS)

    def wants(self, event: str) -> bool:
        return event in self.events


@dataclass(frozen=True, slots=True)
class Delivery:
    event: str
    body: bytes
    delivery_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(slots=True)
class Options:
    timeout: float = 5.0
    max_attempts: int = 6
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    queue_size: int = 1000
    allow_private: bool = False
    """Deliver to loopback, private and link-local addresses (a receiver on the LAN)."""


def signature(secret: str, timestamp: str, delivery_id: str, body: bytes) -> str:
    """``sha256=<hex HMAC of "{timestamp}.{delivery_id}.{body}">``: what a receiver
    recomputes to know the hook is ours, sent now, and this delivery."""
    signed = f"{timestamp}.{delivery_id}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(secret: str, headers: Any, body: bytes, now: float | None = None,
           tolerance: float = TOLERANCE) -> bool:  # fmt: skip
    """The receiver's check (README, "Webhooks"): the signature matches the timestamp, the
    delivery id and the body, and the timestamp is within ``tolerance`` of ``now``.  A
    receiver should also drop a delivery id it has already processed."""
    try:
        ts = str(headers["X-CRM-Timestamp"])
        delivery = str(headers["X-CRM-Delivery"])
        sent = str(headers["X-CRM-Signature"])
        age = abs((time.time() if now is None else now) - int(ts))
    except (KeyError, ValueError, TypeError):
        return False
    if not secret or age > tolerance:
        return False
    return hmac.compare_digest(sent, signature(secret, ts, delivery, body))


def forbidden_address(address: str) -> bool:
    """Loopback, private, link-local, multicast, reserved or unspecified: not a webhook
    receiver on the internet (also IPv4 mapped into IPv6)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified or not ip.is_global)  # fmt: skip


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp does, then refuses the host when any address is internal:
    the connection uses exactly the addresses checked."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        bad = [r["host"] for r in found if forbidden_address(r["host"])]
        if bad or not found:
            raise ForbiddenTarget(f"{host} resolves to an internal address ({', '.join(bad)})")
        return found

    async def close(self) -> None:
        await self.inner.close()


def check_literal(url: str) -> str | None:
    """An IP written in the URL is not resolved (the resolver never sees it): why it is
    refused, or None."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return f"{host} is an internal address" if forbidden_address(host) else None


def guarded_session() -> aiohttp.ClientSession:
    """A client session whose connections reach public addresses only."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=GuardedResolver()))


def _targets_from(section: Any) -> list[Target]:
    """Targets from a settings section: ``targets = [{url, secret, events}, ...]``; bad
    entries are logged and skipped (a typo must not stop the other targets)."""
    out: list[Target] = []
    if not isinstance(section, dict):
        return out
    for entry in section.get("targets", ()) or ():
        try:
            url = str(entry["url"]).strip()
            if not url.startswith(("http://", "https://")):
                raise ValueError("url must start with http:// or https://")
            events = frozenset(entry.get("events") or EVENTS)
            unknown = events - set(EVENTS)
            if unknown:
                raise ValueError(f"unknown events {sorted(unknown)}")
            secret = str(entry.get("secret", "") or "")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            where = safe_url(str(entry.get("url", ""))) if isinstance(entry, dict) else "?"
            log.error("webhooks: skipping target %s: %s", where, exc)
            continue
        if not secret.strip():
            raise WebhookConfigError(f"webhook target {safe_url(url)} has no secret; "
                                     "receivers could not tell our hooks from forged ones")
        out.append(Target(url, secret, events))
    return out


def check_targets(section: Any) -> None:
    """Raise ``WebhookConfigError`` if a target of ``section`` has no secret (the admin
    save and the start check)."""
    _targets_from(section)


def options_from(section: Any) -> Options:
    section = section if isinstance(section, dict) else {}
    d = Options()
    return Options(
        timeout=float(section.get("timeout", d.timeout)),
        max_attempts=max(1, int(section.get("max_attempts", d.max_attempts))),
        backoff_initial=float(section.get("backoff_initial", d.backoff_initial)),
        backoff_max=float(section.get("backoff_max", d.backoff_max)),
        queue_size=max(1, int(section.get("queue_size", d.queue_size))),
        allow_private=bool(section.get("allow_private_targets", d.allow_private)),
    )


# -- what the bus says, as hooks -------------------------------------------------------------


class EventMapper:
    """Bus events -> (hook event, JSON payload).  ``call.ringing`` once per call (the bus
    says "ringing" again whenever another phone joins the ring)."""

    def __init__(self) -> None:
        self._rang: OrderedDict[str, None] = OrderedDict()

    def map(self, event: Event) -> list[tuple[str, dict[str, Any]]]:
        if event.kind == "call_progress":
            return self._ringing(event.payload)
        if event.kind == "call_recorded":
            return self._recorded(event.payload)
        if event.kind == "lead_created" and isinstance(event.payload, Contact):
            return [("lead.created", {"contact": contact_json(event.payload), "via": "manual"})]
        if event.kind == "callback_overdue":
            return self._overdue(event)
        return []

    @staticmethod
    def _overdue(event: Event) -> list[tuple[str, dict[str, Any]]]:
        """``callback.overdue``: a task went past its SLA (or its snooze), once per task
        across processes (``CallbackWork.signal_overdue`` claims it in the store); a
        copy fanned out from another process is that process's to send."""
        if event.origin is not None or not isinstance(event.payload, CallbackTask):
            return []
        return [("callback.overdue", {"callback": callback_json(event.payload)})]

    def _ringing(self, live: Any) -> list[tuple[str, dict[str, Any]]]:
        p = getattr(live, "progress", live)
        if getattr(p, "state", None) != "ringing" or p.linkedid in self._rang:
            return []
        self._rang[p.linkedid] = None
        while len(self._rang) > 5000:
            self._rang.popitem(last=False)
        return [("call.ringing", {
            "linkedid": p.linkedid, "direction": p.direction, "caller": p.caller,
            "caller_name": p.caller_name, "callee": p.callee, "did": p.did,
            "ringing": list(p.ringing), "at": iso(p.at),
            "contact_id": getattr(live, "contact_id", None),
            "contact_name": getattr(live, "contact_name", None),
        })]  # fmt: skip

    def _recorded(self, result: Any) -> list[tuple[str, dict[str, Any]]]:
        call = getattr(result, "call", None)
        if not isinstance(call, Call) or not getattr(result, "created", False):
            return []  # an update (replay, resync) of a call already announced
        self._rang.pop(call.linkedid, None)
        data = {"call": call_json(call)}
        out = [("call.ended", data)]
        if call.direction == "inbound" and call.outcome in MISSED_OUTCOMES:
            out.append(("call.missed", data))
        lead = getattr(result, "lead_created", None)
        if isinstance(lead, Contact):
            out.append(("lead.created", {"contact": contact_json(lead), "via": "call",
                                         "call_id": call.id}))  # fmt: skip
        return out


# -- sending ------------------------------------------------------------------------------------


class TargetWorker:
    """One target's queue and its sender."""

    def __init__(self, target: Target, session: aiohttp.ClientSession, opts: Options,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:  # fmt: skip
        self.target = target
        self.session = session
        self.opts = opts
        self.sleep = sleep
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue(opts.queue_size)
        self.dropped = 0
        self.delivered = 0
        self.failed = 0
        self.task: asyncio.Task[None] | None = None
        self.where = safe_url(target.url)

    def offer(self, delivery: Delivery) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.queue.task_done()
            self.dropped += 1
            log.warning("webhooks: %s is behind; dropped the oldest delivery", self.where)
        self.queue.put_nowait(delivery)

    async def run(self) -> None:
        while True:
            delivery = await self.queue.get()
            try:
                if await self.deliver(delivery):
                    self.delivered += 1
                else:
                    self.failed += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed += 1
                log.error("webhooks: delivery to %s failed (%s)", self.where,
                          type(exc).__name__)  # fmt: skip
            finally:
                self.queue.task_done()

    async def deliver(self, d: Delivery) -> bool:
        """POST until a 2xx, a final refusal (4xx other than 408/429), or out of tries."""
        delay = self.opts.backoff_initial
        for attempt in range(1, self.opts.max_attempts + 1):
            outcome = await self._attempt(d, attempt)
            if outcome is True:
                return True
            if outcome is False:
                return False
            if attempt < self.opts.max_attempts:
                await self.sleep(delay)
                delay = min(delay * 2, self.opts.backoff_max)
        log.error("webhooks: gave up on %s %s after %d tries", d.event, self.where,
                  self.opts.max_attempts)  # fmt: skip
        return False

    async def _attempt(self, d: Delivery, attempt: int) -> bool | None:
        """True delivered, False refused for good, None worth another try."""
        if not self.opts.allow_private:
            why = check_literal(self.target.url)
            if why:
                log.error("webhooks: refusing %s: %s (allow_private_targets is off)",
                          self.where, why)  # fmt: skip
                return False
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-CRM-Event": d.event,
            "X-CRM-Delivery": d.delivery_id,
            "X-CRM-Timestamp": ts,
            "X-CRM-Attempt": str(attempt),
            "X-CRM-Signature": signature(self.target.secret, ts, d.delivery_id, d.body),
        }
        timeout = aiohttp.ClientTimeout(total=self.opts.timeout)
        try:
            async with self.session.post(
                self.target.url,
                data=d.body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                await resp.read()
                status = resp.status
        except ForbiddenTarget as exc:
            log.error("webhooks: refusing %s: %s (allow_private_targets is off)", self.where,
                      exc)  # fmt: skip
            return False
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # the exception's text may quote the URL with its credentials: its kind only
            log.warning("webhooks: %s %s try %d: %s", d.event, self.where, attempt,
                        type(exc).__name__)  # fmt: skip
            return None
        if 200 <= status < 300:
            return True
        if status >= 500 or status in (408, 429):
            log.warning("webhooks: %s %s try %d: HTTP %d", d.event, self.where, attempt,
                        status)  # fmt: skip
            return None
        if 300 <= status < 400:
            log.error("webhooks: %s answered %s with a redirect (HTTP %d); redirects are not "
                      "followed", self.where, d.event, status)  # fmt: skip
            return False
        log.error("webhooks: %s refused %s with HTTP %d", self.where, d.event, status)
        return False


class WebhookSender:
    """Follows the bus and hands each hook to every target that wants it."""

    def __init__(self, bus: EventBus, targets: list[Target], opts: Options | None = None,
                 session: aiohttp.ClientSession | None = None) -> None:  # fmt: skip
        self.bus = bus
        self.opts = opts or Options()
        self.targets = targets
        self.mapper = EventMapper()
        self._session = session
        self._own_session = session is None
        self.workers: list[TargetWorker] = []

    def dispatch(self, event: Event) -> int:
        """Queue the hooks ``event`` makes; returns how many deliveries were queued."""
        queued = 0
        for name, data in self.mapper.map(event):
            envelope = {"event": name, "sent_at": iso(time.time()), "data": data}
            body = json.dumps(envelope, separators=(",", ":"), default=str).encode()
            for worker in self.workers:
                if worker.target.wants(name):
                    worker.offer(Delivery(name, body))
                    queued += 1
        return queued

    async def run(self) -> None:
        """Until cancelled: subscribe, start one worker per target, dispatch."""
        if not self.targets:
            return
        session = self._session or (
            aiohttp.ClientSession() if self.opts.allow_private else guarded_session()
        )
        sub = self.bus.subscribe(maxsize=10_000)
        self.workers = [TargetWorker(t, session, self.opts) for t in self.targets]
        for w in self.workers:
            w.task = asyncio.create_task(w.run(), name=f"webhook {w.where}")
        try:
            await sub.feed(self.dispatch, log, "webhooks: could not map %s")
        finally:
            for w in self.workers:
                if w.task is not None:
                    w.task.cancel()
            await asyncio.gather(*(w.task for w in self.workers if w.task),
                                 return_exceptions=True)  # fmt: skip
            if self._own_session:
                await session.close()


async def load_targets(rt: Any) -> tuple[list[Target], Options]:
    """``[webhooks]`` from the settings file, plus the stored admin setting (its targets
    added to the file's; its options win).  Raises ``WebhookConfigError`` for a target
    without a secret."""
    section = dict(rt.settings.get("webhooks", {}) or {})
    targets = _targets_from(section)
    getter = getattr(rt.service, "get_setting", None)
    if getter is not None:
        try:
            stored = await getter("webhooks")
        except Exception:
            log.exception("webhooks: could not read the stored setting")
            stored = None
        if isinstance(stored, dict) and stored:
            targets += _targets_from(stored)
            section.update({k: v for k, v in stored.items() if k != "targets"})
    return targets, options_from(section)


async def start_webhooks(rt: Any) -> None:
    """Run the webhook sender for the runtime until cancelled (``rt.spawn`` it at startup).
    Without targets it returns at once, and with a target that has no secret it logs the
    configuration error and sends nothing.  Target changes take effect on restart."""
    try:
        targets, opts = await load_targets(rt)
    except WebhookConfigError as exc:
        log.error("webhooks not started: %s", exc)
        return
    if not targets:
        log.info("webhooks: no targets configured")
        return
    log.info("webhooks: sending to %d target(s)", len(targets))
    await WebhookSender(rt.bus, targets, opts).run()
