"""Outgoing webhooks: the CRM tells other systems when a call rings, ends or is missed,
and when a lead appears.

Targets come from the ``[webhooks]`` settings and from the admin's stored setting
(``service.get_setting("webhooks")``), each a URL, a secret and the events it wants.  Each
POST carries ``X-CRM-Event``, ``X-CRM-Delivery`` (a uuid, the same on every retry so the
receiver can drop duplicates), ``X-CRM-Timestamp`` and ``X-CRM-Signature: sha256=<hex
HMAC of the body with the target's secret>``.

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
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from crm.events import Event, EventBus
from crm.models import MISSED_OUTCOMES, Call, Contact

from .api.serialize import call_json, contact_json, iso

log = logging.getLogger(__name__)
EVENTS = ("call.ringing", "call.ended", "call.missed", "lead.created")
USER_AGENT = "SwitchboardCRM-Webhooks/1"


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    secret: str
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


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: what a receiver recomputes to know the hook is ours."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


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
            out.append(Target(url, str(entry.get("secret", "")), events))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.error("webhooks: skipping target %r: %s", entry, exc)
    return out


def options_from(section: Any) -> Options:
    section = section if isinstance(section, dict) else {}
    d = Options()
    return Options(
        timeout=float(section.get("timeout", d.timeout)),
        max_attempts=max(1, int(section.get("max_attempts", d.max_attempts))),
        backoff_initial=float(section.get("backoff_initial", d.backoff_initial)),
        backoff_max=float(section.get("backoff_max", d.backoff_max)),
        queue_size=max(1, int(section.get("queue_size", d.queue_size))),
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
        return []

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

    def offer(self, delivery: Delivery) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.queue.task_done()
            self.dropped += 1
            log.warning("webhooks: %s is behind; dropped the oldest delivery", self.target.url)
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
            except Exception:
                self.failed += 1
                log.exception("webhooks: delivery to %s failed", self.target.url)
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
        log.error("webhooks: gave up on %s %s after %d tries", d.event, self.target.url,
                  self.opts.max_attempts)  # fmt: skip
        return False

    async def _attempt(self, d: Delivery, attempt: int) -> bool | None:
        """True delivered, False refused for good, None worth another try."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-CRM-Event": d.event,
            "X-CRM-Delivery": d.delivery_id,
            "X-CRM-Timestamp": str(int(time.time())),
            "X-CRM-Attempt": str(attempt),
            "X-CRM-Signature": signature(self.target.secret, d.body),
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
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("webhooks: %s %s try %d: %s", d.event, self.target.url, attempt, exc)
            return None
        if 200 <= status < 300:
            return True
        if status >= 500 or status in (408, 429):
            log.warning("webhooks: %s %s try %d: HTTP %d", d.event, self.target.url, attempt,
                        status)  # fmt: skip
            return None
        log.error("webhooks: %s refused %s with HTTP %d", self.target.url, d.event, status)
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
        session = self._session or aiohttp.ClientSession()
        sub = self.bus.subscribe(maxsize=10_000)
        self.workers = [TargetWorker(t, session, self.opts) for t in self.targets]
        for w in self.workers:
            w.task = asyncio.create_task(w.run(), name=f"webhook {w.target.url}")
        try:
            while True:
                event = await sub.get()
                try:
                    self.dispatch(event)
                except Exception:
                    log.exception("webhooks: could not map %s", event.kind)
        finally:
            sub.close()
            for w in self.workers:
                if w.task is not None:
                    w.task.cancel()
            await asyncio.gather(*(w.task for w in self.workers if w.task),
                                 return_exceptions=True)  # fmt: skip
            if self._own_session:
                await session.close()


async def load_targets(rt: Any) -> tuple[list[Target], Options]:
    """``[webhooks]`` from the settings file, plus the stored admin setting (its targets
    added to the file's; its options win)."""
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
    Without targets it returns at once.  Target changes take effect on restart."""
    targets, opts = await load_targets(rt)
    if not targets:
        log.info("webhooks: no targets configured")
        return
    log.info("webhooks: sending to %d target(s)", len(targets))
    await WebhookSender(rt.bus, targets, opts).run()
