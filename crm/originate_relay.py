"""Click-to-call from a web process that does not consume the rep's PBX link.

On PostgreSQL each PBX link is consumed by exactly one process (``web.linkmanager``), but
a rep's browser may talk to any process.  The requesting process keeps everything that
concerns the rep (validation, double-click protection, rate limit, audit: they stay in
``crm.clicktocall``) and hands only the Originate to the link's consumer over the event
fan-out (``crm.fanout``)::

    requester                                        consumer of link L
      originate_request {request, link, request_id} ---->
                       <---- originate_reply {request_id, link, result: null}  (accepted)
                                                       AmiLink.originate(request), once
                       <---- originate_reply {request_id, link, result: {...}}
      call_progress / call_recorded come back through the fan-out like any call's

The requester's click fails with "PBX link down" when nobody accepts within a few
seconds (no process consumes L), when another process starts consuming L after the
request was accepted (the acceptor died before answering), or when no answer comes within
the Originate's own timeout plus a margin.  These failures are "soft", as a local link
drop is: evidence that the PBX placed the call after all brings the click back.

Exactly once, even across a takeover: every process's ``OriginateDesk`` remembers each
ActionID it has seen in a request or a reply, whether it consumes the link or not; the
acceptor makes sure its acceptance has left the process before it sends the Originate;
and a process that takes a link over only picks up requests nobody accepted that are
still inside their accept window.  So a request is never sent by two processes, and a
re-delivered one is never sent twice.

These events are for processes, not people: they are targeted at user id 0 (nobody) so
no subscriber that filters by user or extension gets them, and the SSE hub drops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from ami_bridge.facts import OriginateResult
from ami_bridge.originate import LINK_DOWN, OriginateRequest, failure

from .clicktocall import OriginateLink
from .eventjson import from_jsonable, jsonable
from .events import Event, EventBus

log = logging.getLogger(__name__)

ORIGINATE_REQUEST = "originate_request"
ORIGINATE_REPLY = "originate_reply"
LINK_CONSUMER = "link_consumer"
RELAY_KINDS = frozenset({ORIGINATE_REQUEST, ORIGINATE_REPLY, LINK_CONSUMER})
"""Kinds that carry work between processes; never shown to a browser."""
NOBODY = frozenset({0})
"""User ids start at 1: an event targeted at user 0 reaches no person."""

ACCEPT_TIMEOUT = 3.0
RESULT_MARGIN = 40.0
"""Seconds past the Originate's ring timeout the requester waits for the answer: the
consumer's ``AmiLink`` gives up after ring timeout + ``originate_grace`` (30 s) itself."""


def request_event(req: OriginateRequest, link: str) -> Event:
    payload = {"request": jsonable(req), "link": link, "request_id": req.action_id}
    return Event(ORIGINATE_REQUEST, payload, user_ids=NOBODY)


def reply_event(request_id: str, link: str, result: OriginateResult | None) -> Event:
    payload = {"request_id": request_id, "link": link,
               "result": None if result is None else jsonable(result)}  # fmt: skip
    return Event(ORIGINATE_REPLY, payload, user_ids=NOBODY)


def consumer_event(link: str) -> Event:
    """Published by a process when it starts consuming ``link``."""
    return Event(LINK_CONSUMER, {"link": link}, user_ids=NOBODY)


def request_from(payload: dict[str, Any]) -> OriginateRequest:
    """The request a peer sent, validated again (``OriginateRequest`` refuses line breaks:
    nothing read off the wire reaches the AMI session unchecked)."""
    req = from_jsonable(OriginateRequest, dict(payload["request"]))
    if not isinstance(req, OriginateRequest) or req.action_id != payload.get("request_id"):
        raise ValueError("the request id does not match the request")
    return req  # type: ignore[no-any-return]


def result_from(data: Any) -> OriginateResult:
    if isinstance(data, OriginateResult):
        return data
    return from_jsonable(OriginateResult, dict(data))  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class RelayStatus:
    """A relayed link's status: "relayed" (the consumer, elsewhere, knows the real one)."""

    state: str = "relayed"


@dataclass(eq=False, repr=False)  # one per click: compared by identity, as any link is
class RelayedLink:
    """An ``OriginateLink`` for a link this process does not consume: forwards the
    Originate to whichever process does and waits for its answer."""

    bus: EventBus
    name: str
    _: KW_ONLY
    accept_timeout: float = ACCEPT_TIMEOUT
    result_margin: float = RESULT_MARGIN

    @property
    def status(self) -> RelayStatus:
        return RelayStatus()

    async def originate(
        self, req: OriginateRequest, timeout: float | None = None
    ) -> OriginateResult:
        loop = asyncio.get_running_loop()
        # Subscribed before publishing: a reply can never slip past.
        with self.bus.subscribe(user_ids=NOBODY, maxsize=10_000) as sub:
            self.bus.publish(request_event(req, self.name))
            deadline = loop.time() + self.accept_timeout
            acceptor: str | None = None
            accepted = False
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    async with asyncio.timeout(left):
                        event = await sub.get()
                except TimeoutError:
                    break
                payload = event.payload if isinstance(event.payload, dict) else {}
                if event.kind == ORIGINATE_REPLY and payload.get("request_id") == req.action_id:
                    if payload.get("result") is not None:
                        return result_from(payload["result"])
                    if not accepted:
                        accepted, acceptor = True, event.origin
                        wait = timeout if timeout is not None else req.timeout_ms / 1000
                        deadline = loop.time() + wait + self.result_margin
                elif (
                    event.kind == LINK_CONSUMER
                    and accepted
                    and payload.get("link") == self.name
                    and event.origin != acceptor
                ):
                    log.warning("originate %s: link %s changed hands before the answer",
                                req.action_id, self.name)  # fmt: skip
                    break
        if not accepted:
            log.warning("originate %s: no process consumes link %s", req.action_id, self.name)
        return failure(req.action_id, LINK_DOWN, time.time())


@dataclass(eq=False, repr=False)  # one per process, by identity; repr never shows settings
class OriginateDesk:
    """The consumer's side: sends the Originates other processes forward for the links
    this process consumes (``links(name)``: the running link, or None), each ActionID at
    most once.  ``confirm`` waits until what was published has left the process (the
    fan-out's ``flush``): the acceptance goes out before the Originate does."""

    bus: EventBus
    links: Callable[[str], OriginateLink | None]
    _: KW_ONLY
    confirm: Callable[[], Awaitable[None]] | None = None
    accept_window: float = ACCEPT_TIMEOUT
    clock: Callable[[], float] = time.monotonic
    max_seen: int = 10_000
    sent: int = field(init=False, default=0)
    """Originates this desk put on a link (tests, status)."""
    _seen: OrderedDict[str, None] = field(init=False, default_factory=OrderedDict)
    _pending: OrderedDict[str, tuple[float, dict[str, Any]]] = field(
        init=False, default_factory=OrderedDict
    )
    _tasks: set[asyncio.Task[None]] = field(init=False, default_factory=set)
    _follower: asyncio.Task[None] | None = field(init=False, default=None)

    def start(self) -> None:
        if self._follower is None or self._follower.done():
            sub = self.bus.subscribe(user_ids=NOBODY, maxsize=10_000)
            follow = sub.feed(self.on_event, log, "originate desk: could not handle %s")
            self._follower = asyncio.create_task(follow, name="originate-desk")

    async def close(self) -> None:
        tasks = [*self._tasks]
        if self._follower is not None:
            tasks.append(self._follower)
            self._follower = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def on_event(self, event: Event) -> None:
        """Take one bus event (public for tests)."""
        payload = event.payload
        if event.kind not in (ORIGINATE_REQUEST, ORIGINATE_REPLY) or not isinstance(payload, dict):
            return
        request_id = str(payload.get("request_id") or "")
        name = str(payload.get("link") or "")
        if not request_id or request_id in self._seen:
            return
        self._prune()
        if event.kind == ORIGINATE_REPLY:
            self._mark(request_id)  # somebody took it: never ours after a takeover
            return
        link = self.links(name)
        if link is None:
            self._pending[request_id] = (self.clock(), payload)
            return
        self._take(request_id, name, payload, link, wait_connected=0.0)

    def link_started(self, name: str) -> None:
        """This process now consumes ``name``: pick up the requests for it that nobody
        accepted and that are still inside their accept window."""
        link = self.links(name)
        if link is None:
            return
        self._prune()
        now = self.clock()
        for request_id, (at, payload) in list(self._pending.items()):
            if payload.get("link") == name:
                left = self.accept_window - (now - at)
                self._take(request_id, name, payload, link, wait_connected=max(0.0, left))

    def _take(self, request_id: str, name: str, payload: dict[str, Any], link: OriginateLink,
              *, wait_connected: float) -> None:  # fmt: skip
        self._mark(request_id)
        task = asyncio.create_task(
            self._serve(request_id, name, payload, link, wait_connected),
            name=f"relayed-originate-{request_id}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _mark(self, request_id: str) -> None:
        self._pending.pop(request_id, None)
        self._seen[request_id] = None
        while len(self._seen) > self.max_seen:
            self._seen.popitem(last=False)

    def _prune(self) -> None:
        limit = self.clock() - self.accept_window
        while self._pending:
            request_id, (at, _) = next(iter(self._pending.items()))
            if at >= limit:
                break
            self._pending.pop(request_id)
            self._mark(request_id)  # too old to pick up: the requester has given up

    async def _serve(self, request_id: str, name: str, payload: dict[str, Any],
                     link: OriginateLink, wait_connected: float) -> None:  # fmt: skip
        try:
            req = request_from(payload)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("originate request %s refused: %s", request_id, exc)
            result = failure(request_id, f"the request was not valid ({exc})", time.time())
            self.bus.publish(reply_event(request_id, name, result))
            return
        self.bus.publish(reply_event(request_id, name, None))
        if self.confirm is not None:
            try:
                await self.confirm()
            except Exception as exc:  # the requester may time out; the PBX still gets it
                log.warning("originate %s: acceptance not confirmed: %s", request_id, exc)
        if wait_connected > 0:
            await self._until_connected(link, wait_connected)
        try:
            self.sent += 1
            result = await link.originate(req)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("relayed originate %s failed", request_id)
            result = failure(request_id, f"the call could not be placed ({exc})", time.time())
        self.bus.publish(reply_event(request_id, name, result))

    @staticmethod
    async def _until_connected(link: OriginateLink, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while getattr(link.status, "state", None) != "connected" and loop.time() < deadline:
            await asyncio.sleep(0.05)
