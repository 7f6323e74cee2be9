"""The live AMI link: connect, log in, resync, stream events to the tracker, stay up.

Built on panoramisk 1.4 (its ``AMIProtocol`` for sending actions and resolving their
futures, its ``Manager`` as the action front end), with four of its habits replaced:

* ``Manager.connect()`` returns before the Login is answered and reconnects on a fixed
  timer even after a refused login.  Here one supervisor task connects, awaits the real
  Login response, and backs off exponentially (with jitter, longer after a refused login).
* Every event becoming a ``Message`` and going through ``fnmatch`` dispatch is too slow
  for a busy PBX, and a sync callback that raises kills the connection.  Here
  ``data_received`` splits frames with our ``FrameReader``, lets the tracker's ``wants``
  drop most of them unparsed, and feeds the rest straight to the tracker, guarded;
  only responses (and list events of our own actions) reach panoramisk.
* Actions unanswered at a disconnect are queued and re-sent after the next login.  An
  Originate re-sent would ring a rep twice, so here nothing is re-sent: pending actions
  fail, and an Originate is reported failed with reason "PBX link down".
* A half-open TCP link looks healthy forever.  A watchdog Pings and closes the link
  when neither the Pong nor any other byte arrives before the deadline.
* The facts the tracker returns wait in a queue for the (slower, async) sink that writes
  them.  A PBX that finds a client not reading drops it (Asterisk after its
  ``writetimeout``, 100 ms by default), and with it every call in progress, so an
  overload must never stop the reading: the link keeps reading and feeding the tracker,
  and the backlog grows by what cannot be lost.  Past ``merge_after`` facts (or a tenth
  of ``queue_max``) a call's newer live update (``CallProgress``) replaces its older one
  still waiting, in place, unless the older one rings a phone the newer does not
  (a screen pop or a live row shows the latest state; the first lookup and the row are
  still made), so an overloaded link holds about one fact per call, its record, not
  one per event.  Only at ``queue_max`` itself, a last resort for memory, does the link
  stop reading the socket (``transport.pause_reading()``: TCP slows the sender, or the
  PBX drops the link); reading resumes when the sink has caught up to half the bound.
  Nothing is dropped; the backlog, the live updates merged and how long the queue has
  been full are in ``LinkStatus``.
* Given a ``TrackerProcess`` (``[ami] tracker_process``), the link reads and sends: the
  splitting, parsing and tracking happen in that process, on another core, and its
  answers (facts, and the responses this side resolves) come back in order
  (``ami_bridge.tracker_process``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import random
import ssl as _ssl
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.manager import Manager
from panoramisk.message import Message as PanoramiskMessage

from .facts import CallProgress, CallRecord, Fact, OriginateResult, PbxIncompatible
from .originate import (
    LINK_DOWN,
    OriginateRequest,
    failure,
    result_from_error,
    result_from_event,
)
from .protocol import FrameReader, Message, encode_action, first

if TYPE_CHECKING:
    from .tracker_process import TrackerProcess

log = logging.getLogger(__name__)

LinkState = Literal["connecting", "connected", "login_failed", "disconnected"]
FactSink = Callable[[Fact], Awaitable[None] | None]
StatusSink = Callable[["LinkStatus"], Awaitable[None] | None]


class Tracker(Protocol):
    """What the link needs of ``tracker.CallTracker``."""

    def wants(self, name: str, frame_text: str) -> bool: ...
    def feed(self, msg: Message, at: float) -> list[Fact]: ...
    def tick(self, at: float) -> list[Fact]: ...
    def begin_resync(self, at: float) -> None: ...
    def flush(self) -> list[Fact]: ...


# Alike in shape to QueueSettings and QueueFigures on purpose: one typed default a line.
@dataclass
class LinkSettings:
    """Where the PBX is and how patiently to talk to it.  The secret never shows in a repr."""

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "crm"
    secret: str = field(default="", repr=False)
    ssl: _ssl.SSLContext | None = field(default=None, repr=False)
    events: str = "on"
    connect_timeout: float = 5.0
    login_timeout: float = 5.0
    resync_timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_factor: float = 2.0
    backoff_jitter: float = 0.2
    login_retry_delay: float = 60.0
    """Least wait after a refused login: retrying a wrong secret fast only fills the
    PBX's security log (and may get the address banned)."""
    ping_interval: float = 10.0
    ping_timeout: float = 5.0
    tick_interval: float = 1.0
    stable_after: float = 10.0
    """A connection that stayed up this long resets the backoff; a flapping one does not."""
    originate_grace: float = 30.0
    """Seconds, on top of the request's ring timeout, to wait for OriginateResponse."""
    queue_max: int = 100_000
    """Facts waiting for the sink at most; at the bound the link stops reading the
    socket (TCP back-pressure) until the backlog is down to half of it.  A last resort:
    past a tenth of it live updates merge per call, so the backlog of an overload is
    about one finished call's record per call behind (see the module docstring)."""
    merge_after: int = 2_000
    """Facts waiting beyond which (or beyond a tenth of ``queue_max``, if less) a call's
    newer live update replaces its older one still waiting: about a second behind at
    300 calls/s, where the older state is stale anyway and each update costs the sink a
    live row and a screen pop per viewer; the sink catches up instead of falling
    further behind.  Finished calls are never merged."""
    tracker_process: bool = False
    """Run the tracker in a process of its own (``ami_bridge.tracker_process``); the
    link manager builds it so, the link follows whatever tracker it is given."""
    backlog_alarm: float = 10.0
    """Seconds the link may stay behind (merging, and not drained below a quarter of the
    merge point since) or full before it reports itself overloaded
    (``LinkStatus.overloaded``: ``/healthz`` is then not ok)."""


def backoff_delay(settings: LinkSettings, attempt: int, spread: float = 0.0) -> float:
    """Seconds to wait before reconnect ``attempt`` (0 for the first retry): the initial
    delay doubled per attempt up to the cap, then moved by up to ``backoff_jitter`` of
    itself (``spread`` in [-1, 1]) so many bridges restarted together do not reconnect
    in lockstep."""
    s = settings
    base = min(s.backoff_max, s.backoff_initial * s.backoff_factor ** min(attempt, 64))
    return max(0.0, base * (1 + s.backoff_jitter * max(-1.0, min(1.0, spread))))


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """What the admin page shows about the link.

    ``events_total`` and ``events_per_s`` count every AMI message received, including
    the ones the tracker skips unparsed: that is the load the PBX puts on the link.
    ``reconnects`` counts connection attempts after the first.
    """

    state: LinkState
    since: float
    endpoint: str
    last_event_at: float | None
    events_total: int
    events_per_s: float
    last_error: str | None
    reconnects: int
    pbx_too_old: str | None = None
    """Set when the PBX is older than Asterisk 13: what to tell the admin (no calls are
    recorded from it)."""
    backlog: int = 0
    """Facts received and waiting for the sink (written calls, screen pops)."""
    backlog_max: int = 0
    full_since: float | None = None
    """Wall time the queue filled up (the socket was left unread), if it has not drained
    below a quarter of ``backlog_max`` since; None: the sink keeps up."""
    pauses: int = 0
    """Times the link stopped reading the socket because the queue was full."""
    overloaded: bool = False
    """Behind or full for longer than ``LinkSettings.backlog_alarm``: the sink cannot
    keep up."""
    tracker_restarts: int = 0
    """Times the tracker's own process (``[ami] tracker_process``) died and was replaced."""
    behind_since: float | None = None
    """Wall time the backlog reached the merge point (``LinkSettings.merge_after``), if it
    has not drained below a quarter of it since; None: the sink keeps up."""
    merged: int = 0
    """Live updates replaced by a newer one of their call while both waited (the
    backlog was past ``LinkSettings.merge_after``): the sink fell behind."""


_ONE_ANSWER = frozenset({"queueadd", "queueremove", "queuepause"})
"""Actions answered by one response, whatever its message says."""


class LinkDown(ConnectionError):
    """The AMI connection is gone (or never came up) while an action waited for its answer."""


class LoginFailed(Exception):
    """The PBX refused our credentials."""


class _Rate:
    """Events per second over the last few whole seconds, counted per received chunk."""

    def __init__(self, window: int = 5) -> None:
        self._window = window
        self._buckets: deque[list[int]] = deque()

    def add(self, now: float, count: int) -> None:
        sec = int(now)
        buckets = self._buckets
        if buckets and buckets[-1][0] == sec:
            buckets[-1][1] += count
        else:
            buckets.append([sec, count])
            while buckets and buckets[0][0] <= sec - self._window:
                buckets.popleft()

    def per_second(self, now: float) -> float:
        floor = int(now) - self._window
        return sum(c for s, c in self._buckets if s > floor) / self._window


class _LoginAction(Action):
    """A Login whose repr hides the secret (panoramisk logs actions with ``%r``)."""

    def __repr__(self) -> str:
        return f"<Action Login Username={self.get('Username')!r} Secret=********>"


class _Manager(Manager):
    """panoramisk's Manager as the action front end only: the link owns the connection."""

    def connection_lost(self, exc: Exception | None) -> None:
        # The default schedules a reconnect on a fixed timer; the link's supervisor decides.
        return None

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("AmiLink owns the connection; use AmiLink.start()")


READ_SIZE = 1 << 20
"""Bytes the link takes from the socket per read, at most.  asyncio reads 256 KiB per
turn of the event loop; a loop busy with the sink (the store, the screen pops) turns
a few dozen times a second, less than a busy PBX sends (16 MB/s at 300 calls/s with
every event on), and a PBX drops a client whose data it cannot write.  A megabyte a
turn keeps the socket drained while the sink falls behind."""


class _FastProtocol(AMIProtocol, asyncio.BufferedProtocol):
    """AMIProtocol whose receive path feeds the tracker directly (see module docstring),
    reading into one buffer of its own (``READ_SIZE``: see there)."""

    def __init__(self, link: AmiLink) -> None:
        self.link = link
        self._buffer = memoryview(bytearray(READ_SIZE))
        self.rx_chunks = 0
        self.held: deque[Message] = deque()
        """Messages read but not yet fed: the queue filled up in the middle of a chunk."""
        self.paused = False
        link._connections += 1
        self.number = link._connections
        """Which connection of the link this is (the tracker process keeps a frame
        reader per connection)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.link._worker is None:
            self.reader = FrameReader(skip=self._skip)
            self._wants = self.link._tracker.wants
        self.link._wire(self)

    def _skip(self, name: str, text: str) -> bool:
        if tracker_wants(self._wants, name, text):
            return False
        # Our own actions' list events (CoreShowChannel, OriginateResponse) must still
        # resolve their futures even when the tracker has no use for them.
        return not (self.responses and "ActionID:" in text)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._buffer[:nbytes]))

    def data_received(self, data: bytes) -> None:
        self.rx_chunks += 1
        try:
            self.link._on_data(self, data)
        except Exception:
            # Never let an exception escape: asyncio would close the transport.
            log.exception("AMI receive path failed on a %d-byte chunk", len(data))

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()
        self.link._on_lost(self, exc)

    def close(self, abort: bool = False) -> None:
        """Fail what waits for an answer instead of queueing it for a re-send."""
        pending = {id(a): a for a in self.responses.values()}.values()
        self.responses.clear()
        for action in pending:
            if not action.future.done():
                action.future.cancel()
        if not self.closed:
            self.closed = True
            if abort:
                self.transport.abort()
            else:
                self.transport.close()


class AmiLink:
    """One PBX's AMI connection, kept alive, feeding one tracker.

    ``on_fact`` gets every fact the tracker returns, in order, one at a time (sync or
    async; exceptions are logged and swallowed).  ``on_status`` is told of state changes.
    """

    # Alike in shape to ClickToCall.start's signature: keyword options, each its own setting.
    def __init__(
        self,
        settings: LinkSettings,
        tracker: Tracker,
        on_fact: FactSink | None = None,
        *,
        on_status: StatusSink | None = None,
    ) -> None:
        self.settings = settings
        self._tracker = tracker
        self._on_fact = on_fact
        self._on_status = on_status
        self.manager = _Manager(host=settings.host, port=settings.port, events=settings.events)
        self._proto: _FastProtocol | None = None
        self._lost: asyncio.Future[Exception | None] | None = None
        self._state: LinkState = "disconnected"
        self._since = time.time()
        self._changed = asyncio.Event()
        self._last_error: str | None = None
        self._too_old: str | None = None
        self._last_event_at: float | None = None
        self._heard_at: float | None = None
        """When the PBX last sent anything (an event, a response, a Pong): the calls it
        had up were alive then; a resync closes the ones gone from that time."""
        self._events_total = 0
        self._rate = _Rate()
        self._reconnects = 0
        self._facts: asyncio.Queue[Fact | _Latest] = asyncio.Queue()
        self._latest: dict[str, _Latest] = {}
        """Calls whose live update waits in the queue in a slot a newer one replaces."""
        self._merged = 0
        self._behind_since: float | None = None
        self._full_since: float | None = None
        self._pauses = 0
        self._orphans: deque[Message] = deque()
        """Events a closed connection read but could not feed yet (the queue was full)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._originated: OrderedDict[str, None] = OrderedDict()
        self._errors = _ErrorLog()
        self._connections = 0
        self._worker: TrackerProcess | None = getattr(tracker, "worker", None)
        """The tracker runs in a process of its own (``ami_bridge.tracker_process``):
        the link sends it the bytes it reads and gets the facts back."""
        if self._worker is not None:
            self._worker.on_out = self._on_worker_out
            self._worker.on_facts = self._emit
            self._worker.on_died = self._on_worker_died

    def __repr__(self) -> str:
        s = self.settings
        return f"<AmiLink {s.username}@{s.host}:{s.port} {self._state}>"

    # -- status

    @property
    def status(self) -> LinkStatus:
        now = time.time()
        return LinkStatus(
            state=self._state,
            since=self._since,
            endpoint=f"{self.settings.host}:{self.settings.port}",
            last_event_at=self._last_event_at,
            events_total=self._events_total,
            events_per_s=self._rate.per_second(now),
            last_error=self._last_error,
            reconnects=self._reconnects,
            pbx_too_old=self._too_old,
            backlog=self._facts.qsize(),
            backlog_max=self.settings.queue_max,
            full_since=self._full_since,
            pauses=self._pauses,
            overloaded=any(
                since is not None and now - since >= self.settings.backlog_alarm
                for since in (self._behind_since, self._full_since)
            ),
            behind_since=self._behind_since,
            merged=self._merged,
            tracker_restarts=max(0, self._worker.starts - 1) if self._worker else 0,
        )

    @property
    def backlog(self) -> int:
        """Facts waiting for the sink now."""
        return self._facts.qsize()

    def _set_state(self, state: LinkState, error: str | None = None) -> None:
        if error is not None:
            self._last_error = error
        if state == self._state and error is None:
            return
        self._state = state
        self._since = time.time()
        self._changed.set()
        self._changed = asyncio.Event()
        if self._on_status is not None:
            self._call_sink(self._on_status, self.status, "status sink")

    async def wait_state(self, *states: LinkState, timeout: float = 5.0) -> LinkStatus:
        """Until the link is in one of ``states`` (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            while self._state not in states:
                await self._changed.wait()
        return self.status

    # -- lifecycle

    async def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._supervise(), name="ami-link-supervisor"),
            asyncio.create_task(self._ticker(), name="ami-link-ticker"),
            asyncio.create_task(self._deliver(), name="ami-link-sink"),
        ]

    async def stop(self, *, flush: bool = False, drain_timeout: float = 5.0) -> None:
        """Log off, stop reconnecting, deliver what is queued; ``flush`` also ends open calls."""
        if not self._tasks:
            return
        supervisor, ticker, sink = self._tasks
        if self._proto is not None and self._state == "connected":
            with contextlib.suppress(Exception):
                await self._request({"Action": "Logoff"}, timeout=0.5)
        for task in (supervisor, ticker):
            task.cancel()
        # bounded: a close must end even if a task were slow to unwind
        await asyncio.wait({supervisor, ticker}, timeout=drain_timeout)
        self._teardown()
        self._feed_orphans(bounded=False)  # closing: the drain below delivers what it can
        if self._worker is not None:
            # what the process was sent is answered first, then (flush) the open calls
            with contextlib.suppress(Exception):
                async with asyncio.timeout(drain_timeout):
                    if flush:
                        self._emit(await self._worker.flush())
                    else:
                        await self._worker.settle()
        elif flush:
            self._emit(guarded(self._tracker.flush, "flush"))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_timeout):
                await self._facts.join()
        sink.cancel()
        await asyncio.wait({sink}, timeout=drain_timeout)
        self._tasks = []
        if self._worker is not None:
            await self._worker.stop()
        self._set_state("disconnected")

    async def __aenter__(self) -> AmiLink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- connection

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(self.settings, attempt, random.uniform(-1.0, 1.0))

    async def _supervise(self) -> None:
        attempt = 0
        first_attempt = True
        while True:
            if not first_attempt:
                self._reconnects += 1
            first_attempt = False
            self._set_state("connecting")
            refused = False
            up_for = 0.0
            try:
                up_for = await self._connect_and_serve()
            except LoginFailed as exc:
                refused = True
                self._set_state("login_failed", f"login refused by the PBX: {exc}")
                log.error("AMI login as %r refused: %s", self.settings.username, exc)
            except (OSError, TimeoutError, LinkDown) as exc:
                self._last_error = _describe(exc)
                log.warning("AMI link to %s: %s", self.status.endpoint, self._last_error)
            except Exception as exc:
                self._last_error = _describe(exc)
                log.exception("AMI link failed unexpectedly")
            finally:
                self._teardown()
            if up_for >= self.settings.stable_after:
                attempt = 0
            delay = self._backoff(attempt)
            attempt += 1
            if refused:
                delay = max(delay, self.settings.login_retry_delay)
            else:
                self._set_state("disconnected")
            await asyncio.sleep(delay)

    async def _connect_and_serve(self) -> float:
        """One connection's life; how long it was connected."""
        s = self.settings
        loop = asyncio.get_running_loop()
        # The last connection's backlog first: a new one must have room for its Login
        # and resync answers, or it would stop reading before it is even up.
        while self._orphans or self._facts.qsize() > s.queue_max // 2:
            self._feed_orphans()
            if self._orphans or self._facts.qsize() > s.queue_max // 2:
                await asyncio.sleep(0.05)
        if self._worker is not None and not self._worker.alive:
            await self._worker.start()  # the last one died: a new tracker, resynced below
        self._lost = loop.create_future()
        heard_before = self._heard_at
        async with asyncio.timeout(s.connect_timeout):
            await loop.create_connection(lambda: _FastProtocol(self), s.host, s.port, ssl=s.ssl)
        await self._login()
        await self._resync(heard_before)
        self._set_state("connected")
        log.info("AMI link to %s up", self.status.endpoint)
        up_since = time.monotonic()
        await self._watchdog()
        return time.monotonic() - up_since

    def _wire(self, proto: _FastProtocol) -> None:
        """What Manager.connection_made does, minus its Login and pinger."""
        m = self.manager
        m.protocol = proto
        proto.factory = m
        proto.log = log
        proto.config = m.config
        proto.encoding = m.encoding = "utf8"
        m.responses = proto.responses
        self._proto = proto

    async def _login(self) -> None:
        s = self.settings
        action = _LoginAction({
            "Action": "Login",
            "Username": s.username,
            "Secret": s.secret,
            "Events": s.events,
        })
        try:
            resp = await self._request(action, timeout=s.login_timeout)
        except LinkDown:
            raise LinkDown("the PBX closed the connection during login") from None
        except TimeoutError:
            raise TimeoutError(f"no Login response within {s.login_timeout:g} s") from None
        if not resp.success:
            raise LoginFailed(resp.get("Message") or "no reason given")
        self.manager.authenticated = True

    async def _resync(self, heard_before: float | None = None) -> None:
        """Tell the tracker what is alive now, so calls that ended while down get closed
        (at ``heard_before``, the last time the previous connection heard the PBX)."""
        alive = heard_before if heard_before is not None else time.time()
        guarded(lambda: self._tracker.begin_resync(alive) or [], "begin_resync")
        try:
            resp = await self._request(
                {"Action": "CoreShowChannels"}, timeout=self.settings.resync_timeout
            )
        except TimeoutError:
            raise TimeoutError("no answer to CoreShowChannels (resync)") from None
        if not isinstance(resp, list) and not resp.success:
            self._last_error = f"resync refused: {resp.get('Message')}"
            log.warning("AMI CoreShowChannels refused: %s", resp.get("Message"))
        # The presence tracker's listings (queues, devices, hints, registrations): a PBX
        # without one of them (no chan_pjsip, no queues) answers Error; that is no failure.
        for name in getattr(self._tracker, "resync_actions", ()):
            try:
                await self._request({"Action": name}, timeout=self.settings.resync_timeout)
            except TimeoutError:
                log.warning("AMI %s (resync) unanswered within %g s", name,
                            self.settings.resync_timeout)  # fmt: skip

    async def _watchdog(self) -> None:
        """Ping; a missing Pong with no other traffic means the link is half-open."""
        s = self.settings
        lost = self._lost
        proto = self._proto
        assert lost is not None and proto is not None
        while not lost.done():
            await asyncio.wait({lost}, timeout=s.ping_interval)
            if lost.done():
                break
            seen = proto.rx_chunks, self._pauses
            try:
                await self._request({"Action": "Ping"}, timeout=s.ping_timeout)
            except LinkDown:
                break
            except TimeoutError:
                if (proto.rx_chunks, self._pauses) != seen or proto.paused:
                    continue  # busy, not dead: bytes still arrive, or we stopped reading
                msg = f"no reply to Ping within {s.ping_timeout:g} s: the link is half-open"
                log.warning("AMI link to %s: %s; reconnecting", self.status.endpoint, msg)
                proto.close(abort=True)
                self._last_error = msg
                return
        exc = lost.result() if lost.done() else None
        self._last_error = f"connection lost: {_describe(exc) if exc else 'closed by the PBX'}"
        log.warning("AMI link to %s: %s", self.status.endpoint, self._last_error)

    def _on_lost(self, proto: _FastProtocol, exc: Exception | None) -> None:
        if proto is self._proto and self._lost is not None and not self._lost.done():
            self._lost.set_result(exc)

    def _teardown(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None:
            proto.close(abort=True)
            if proto.held:  # read before the link went: the tracker still gets them, as
                # the backlog makes room (before anything a new connection reads)
                self._orphans.extend(proto.held)
                proto.held = deque()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        # Defence in depth: nothing queued by panoramisk may be re-sent after a reconnect.
        while self.manager.awaiting_actions:
            action = self.manager.awaiting_actions.popleft()
            if not action.future.done():
                action.future.cancel()
        self.manager.authenticated = False

    # -- actions

    async def _request(self, action: Mapping[str, Any] | Action, timeout: float) -> Any:
        """Send one action and await its complete answer, or LinkDown / TimeoutError."""
        proto = self._proto
        if proto is None or proto.closed or self._lost is None:
            raise LinkDown(LINK_DOWN)
        if not isinstance(action, Action):
            action = Action(dict(action))
        future = self.manager.send_action(action, as_list=action.as_list)
        lost = self._lost
        await asyncio.wait({future, lost}, timeout=timeout, return_when="FIRST_COMPLETED")
        if future.done():
            if future.cancelled():
                raise LinkDown(LINK_DOWN)
            return future.result()
        if lost.done():
            raise LinkDown(LINK_DOWN)
        proto.responses.pop(action.id, None)
        raise TimeoutError(f"no answer to {action.get('Action')} within {timeout:g} s")

    async def send_action(self, fields: Mapping[str, Any], timeout: float = 10.0) -> Any:
        """Any other AMI action (a panoramisk Message, or a list for list actions)."""
        name = str(fields.get("Action", "")).strip().lower()
        if name == "originate":
            raise ValueError("use originate(), which guarantees a single send")
        if name in _ONE_ANSWER:
            # panoramisk takes "Added interface to queue" for the start of a list and waits
            # for a "...Complete" event that never comes (seen on a real Asterisk 22)
            return await self._request(Action(dict(fields), as_list=False), timeout)
        return await self._request(fields, timeout)

    async def originate(
        self, req: OriginateRequest, timeout: float | None = None
    ) -> OriginateResult:
        """Send a click-to-call Originate at most once and return what became of it.

        A "PBX link down" failure is also put on the fact stream, because no event will
        ever tell the tracker about it; a queued Originate whose link drops before its
        OriginateResponse is reported the same way, even though the PBX may still place it.
        """
        if req.action_id in self._originated:
            raise ValueError(f"originate {req.action_id!r} was already sent")
        self._originated[req.action_id] = None
        while len(self._originated) > 10000:
            self._originated.popitem(last=False)
        if self._state != "connected" or self._proto is None:
            return self._link_down(req.action_id)
        wait = timeout
        if wait is None:
            wait = req.timeout_ms / 1000 + self.settings.originate_grace
        try:
            resp = await self._request(req.to_fields(), timeout=wait)
        except LinkDown:
            return self._link_down(req.action_id)
        except TimeoutError:
            return failure(req.action_id, "no OriginateResponse from the PBX in time", time.time())
        return _originate_result(req.action_id, resp)

    def _link_down(self, action_id: str) -> OriginateResult:
        result = failure(action_id, LINK_DOWN, time.time())
        log.warning("originate %s failed: %s", action_id, LINK_DOWN)
        self._emit([result])
        return result

    # -- receive path

    def _on_data(self, proto: _FastProtocol, data: bytes) -> None:
        if self._worker is not None:
            self._heard_at = time.time()
            worker = self._worker
            try:
                worker.send_data(proto.number, data, self._heard_at)
            except ConnectionError:
                return  # the process died: ``_on_worker_died`` reconnects
            if worker.inflight > worker.inflight_max:
                self._pause(proto, f"{worker.inflight} bytes wait for the tracker process")
            return
        reader = proto.reader
        before = reader.frames
        msgs = reader.feed(data)
        now = time.time()
        self._heard_at = now
        received = reader.frames - before
        if received:
            self._events_total += received
            self._rate.add(now, received)
        if not msgs:
            return
        if proto.held:  # a chunk that arrived while pausing: behind the held ones, in order
            proto.held.extend(msgs)
            return
        self._feed(proto, msgs, now)

    def _feed(
        self, proto: _FastProtocol, msgs: list[Message], now: float, *, bounded: bool = True
    ) -> None:
        """Feed messages to the tracker until the fact queue is full; hold the rest and
        stop reading the socket (see the module docstring).  ``bounded=False``: feed
        them all (a closing connection's last held messages, at most one read's worth)."""
        feed = self._tracker.feed
        responses = proto.responses
        facts_queue = self._facts
        limit = self.settings.queue_max if bounded else math.inf
        for i, msg in enumerate(msgs):
            if facts_queue.qsize() >= limit:
                proto.held.extend(msgs[i:])
                self._pause(proto)
                return
            try:
                if "Event" not in msg:
                    if "Response" in msg:
                        self._resolve(proto, msg)
                    elif "Banner" in msg:  # the AMI version: the tracker refuses AMI 1.x
                        greeting = getattr(self._tracker, "greeting", None)
                        if greeting is not None:
                            self._emit(greeting(first(msg["Banner"]), now))
                    continue
                self._last_event_at = now
                if responses and "ActionID" in msg and first(msg["ActionID"]) in responses:
                    self._resolve(proto, msg)
                facts = feed_event(feed, msg, now)
                if facts:
                    self._emit(facts)
                if msg["Event"] == "Shutdown":
                    log.warning("the PBX is shutting down (%s)", first(msg.get("Shutdown")))
                    proto.close()
            except Exception:
                self._errors.report(first(msg.get("Event")) or "response", msg)

    def _feed_orphans(self, *, bounded: bool = True) -> None:
        """Feed a closed connection's held events while the queue has room (their
        answers to our actions no longer matter: those failed with the connection)."""
        limit = self.settings.queue_max if bounded else math.inf
        feed = self._tracker.feed
        while self._orphans and self._facts.qsize() < limit:
            msg = self._orphans.popleft()
            if "Event" not in msg:
                continue
            now = time.time()
            try:
                facts = feed_event(feed, msg, now)
                if facts:
                    self._emit(facts)
            except Exception:
                self._errors.report(first(msg.get("Event")) or "event", msg)

    def _pause(self, proto: _FastProtocol, behind: str | None = None) -> None:
        if proto.paused:
            return
        proto.paused = True
        self._pauses += 1
        if self._full_since is None:
            self._full_since = time.time()
            behind = behind or f"{self._facts.qsize()} facts wait for the sink"
            log.warning("AMI link to %s: %s; not reading the socket until it catches up",
                        self.status.endpoint, behind)  # fmt: skip
        with contextlib.suppress(Exception):
            proto.transport.pause_reading()

    def _maybe_resume(self) -> None:
        """The sink took a fact: once the backlog is down to half the bound, feed what
        was held and read the socket again; once it is down to a quarter, the link has
        caught up (``full_since`` clears: a sink that only just keeps up, refilling the
        queue again and again, stays reported)."""
        proto = self._proto
        if self._orphans and self._facts.qsize() <= self.settings.queue_max // 2:
            self._feed_orphans()
        backlog = self._facts.qsize()
        if self._behind_since is not None and backlog <= self._merge_at() // 4:
            self._behind_since = None
            log.info("AMI link to %s: the sink caught up", self.status.endpoint)
        caught_up = backlog <= self.settings.queue_max // 4 and not self._orphans
        if self._full_since is not None and caught_up and (proto is None or not proto.paused):
            self._full_since = None
        if proto is None or not proto.paused or backlog > self.settings.queue_max // 2:
            return
        worker = self._worker
        if worker is not None and worker.inflight > worker.inflight_max // 2:
            return  # the tracker process is still behind: its next answer looks again
        proto.paused = False
        if proto.held:
            held, proto.held = proto.held, deque()
            self._feed(proto, list(held), time.time())
            if proto.paused:
                return  # full again before the held messages were all fed
        if not proto.closed:
            with contextlib.suppress(Exception):
                proto.transport.resume_reading()

    def _on_worker_out(self, conn: int, frames: int, had_event: bool, items: list[Any]) -> None:
        """The tracker process's answer to one read: its facts and the frames the link
        handles itself (responses, our actions' list events, Shutdown), in order."""
        now = time.time()
        if frames:
            self._events_total += frames
            self._rate.add(now, frames)
        if had_event:
            self._last_event_at = now
        proto = self._proto
        if proto is not None and proto.number != conn:
            proto = None  # a closed connection's answers: their actions failed with it
        facts: list[Fact] = []
        observe = getattr(self._tracker, "observe", None)
        for item in items:
            if not isinstance(item, dict):
                facts.append(item)
                continue
            if facts:
                self._emit(facts)
                facts = []
            try:
                if observe is not None and "Event" in item:
                    observe(item)
                if proto is None:
                    continue
                if "Event" not in item or first(item.get("ActionID")) in proto.responses:
                    self._resolve(proto, item)
                if item.get("Event") == "Shutdown":
                    log.warning("the PBX is shutting down (%s)", first(item.get("Shutdown")))
                    proto.close()
            except Exception:
                self._errors.report(first(item.get("Event")) or "response", item)
        if facts:
            self._emit(facts)
        if proto is not None and self._facts.qsize() >= self.settings.queue_max:
            self._pause(proto)
        else:
            self._maybe_resume()

    def _on_worker_died(self, why: str) -> None:
        """Reconnect: ``_connect_and_serve`` starts a new process, whose tracker learns
        the calls still up from the resync."""
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(LinkDown(why))  # the reason the watchdog reports
        proto = self._proto
        if proto is not None:
            proto.close(abort=True)

    def _resolve(self, proto: _FastProtocol, msg: Message) -> None:
        """Hand a response (or one of our actions' list events) to panoramisk's futures."""
        try:
            proto.handle_message(PanoramiskMessage(msg))
        except Exception:
            log.exception("could not match AMI response %r", msg)

    # -- facts

    def _merge_at(self) -> int:
        return min(self.settings.merge_after, self.settings.queue_max // 10)

    def _emit(self, facts: list[Fact]) -> None:
        queue = self._facts
        merge_at = self._merge_at()
        for fact in facts:
            kind = type(fact)
            if kind is CallProgress:
                if queue.qsize() >= merge_at:
                    if self._behind_since is None:
                        self._behind_since = time.time()
                        log.warning("AMI link to %s: %d facts wait for the sink; a call's "
                                    "live updates merge until it catches up",
                                    self.status.endpoint, queue.qsize())  # fmt: skip
                    self._merge(fact)  # type: ignore[arg-type]
                    continue
            elif kind is CallRecord:
                # the call's last update stays before its record: nothing merges into it
                self._latest.pop(fact.linkedid, None)  # type: ignore[attr-defined]
            elif isinstance(fact, PbxIncompatible) and self._too_old != fact.message:
                self._too_old = fact.message
                self._set_state(self._state, error=fact.message)
            queue.put_nowait(fact)

    def _merge(self, fact: CallProgress) -> None:
        """Behind by ``merge_after``: this update replaces the call's update waiting (its
        place in the queue stays), unless that one rings a phone this one does not: a
        rep's screen pop is never merged away (a ring answered elsewhere, or a call that
        rang and ended, still pops).  Else it waits in a slot for the next."""
        slot = self._latest.get(fact.linkedid)
        if slot is not None and all(ext in fact.ringing for ext in slot.fact.ringing):
            slot.fact = fact
            self._merged += 1
            return
        slot = self._latest[fact.linkedid] = _Latest(fact)
        self._facts.put_nowait(slot)

    async def _ticker(self) -> None:
        """Let the tracker release finished calls even when the PBX is quiet (or down)."""
        while True:
            await asyncio.sleep(self.settings.tick_interval)
            if self._facts.qsize() >= self.settings.queue_max:
                continue  # the queue is full: release finished calls on a later tick
            now = time.time()
            self._emit(guarded(lambda now=now: self._tracker.tick(now), "tick"))

    async def _deliver(self) -> None:
        while True:
            item = await self._facts.get()
            if type(item) is _Latest:
                fact: Fact = item.fact
                if self._latest.get(item.fact.linkedid) is item:
                    del self._latest[item.fact.linkedid]  # handed over: nothing merges now
            else:
                fact = item
            try:
                if self._on_fact is not None:
                    result = self._on_fact(fact)
                    if inspect.isawaitable(result):
                        await result
            except Exception:
                log.exception("fact sink failed on %r; skipped", fact)
            finally:
                self._facts.task_done()
                self._maybe_resume()

    def _call_sink(self, sink: StatusSink, status: LinkStatus, what: str) -> None:
        try:
            result = sink(status)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(_log_task_error)
        except Exception:
            log.exception("%s failed", what)


@dataclass(slots=True)
class _Latest:
    """A call's live update in the queue, replaced by a newer one while it waits."""

    fact: CallProgress


class _ErrorLog:
    """Logs a failing handler with its event, but not 2000 times a second in a burst."""

    def __init__(self, every: float = 10.0) -> None:
        self._every = every
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def report(self, key: str, msg: Message) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self._every) < self._every:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        skipped = self._suppressed.pop(key, 0)
        more = f" ({skipped} more like it suppressed)" if skipped else ""
        log.exception("handling AMI %s failed; skipped%s: %r", key, more, msg)


def guarded(fn: Callable[[], Any], what: str) -> Any:
    """A call into the tracker that may fail: logged and skipped (its result, else [])."""
    try:
        return fn() or []
    except Exception:
        log.exception("tracker.%s failed; skipped", what)
        return []


def tracker_wants(wants: Callable[[str, str], bool], name: str, text: str) -> bool:
    """Whether the tracker wants an event parsed; one whose ``wants`` fails is kept."""
    try:
        return wants(name, text)
    except Exception:
        log.exception("tracker.wants failed on %s; keeping the event", name)
        return True


def feed_event(
    feed: Callable[[Message, float], list[Fact]], msg: Message, now: float
) -> list[Fact]:
    """An event to the tracker at its ``Timestamp`` (read at ``now``), its live updates
    stamped with ``now``."""
    ts = msg.get("Timestamp")
    facts = feed(msg, _timestamp(ts, now) if ts else now)
    return _stamped(facts, now) if facts else facts


def _stamped(facts: list[Fact], received_at: float) -> list[Fact]:
    """Mark live updates with when their event was read (for the pop latency figure)."""
    return [
        replace(f, received_at=received_at) if type(f) is CallProgress else f for f in facts
    ]


def _originate_result(action_id: str, resp: Any) -> OriginateResult:
    now = time.time()
    messages = resp if isinstance(resp, list) else [resp]
    for msg in messages:
        if msg.get("Event") == "OriginateResponse":
            return result_from_event(action_id, dict(msg.items()), now)
    head = dict(messages[0].items()) if messages else {}
    if first(head.get("Response")) in ("Error", "Failure", "Fail"):
        return result_from_error(action_id, head, now)
    return failure(action_id, "the PBX gave no OriginateResponse", now)


TIMESTAMP_TRUST = 3600.0
"""A ``Timestamp`` header further than this from the receive time is a wrong PBX clock
(or garbage): the receive time is used instead, so one bad clock cannot skew a call."""


def _timestamp(value: str | list[str], default: float) -> float:
    try:
        at = float(first(value))
    except ValueError:
        return default
    if not math.isfinite(at) or abs(at - default) > TIMESTAMP_TRUST:
        return default
    return at


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _log_task_error(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("status sink failed", exc_info=task.exception())


# -- configuration and the admin's "test connection" button


_CONFIG_FLOATS = (
    "ping_interval",
    "ping_timeout",
    "backoff_initial",
    "backoff_max",
    "connect_timeout",
    "login_timeout",
    "backlog_alarm",
)


def settings_from_config(ami: Mapping[str, Any]) -> LinkSettings:
    """``LinkSettings`` from the ``[ami]`` settings section (host, port, username, secret,
    tls, ping_interval, ping_timeout, backoff_initial, backoff_max, queue_max,
    merge_after, backlog_alarm, tracker_process; optionally tls_ca, a
    CA file for a self-signed PBX certificate, and tls_verify).  Missing keys keep their
    defaults; a wrong value is a ValueError naming the key, never showing the secret."""
    base = LinkSettings()
    host = str(ami.get("host", base.host)).strip()
    if not host:
        raise ValueError("ami.host must not be empty")
    port = ami.get("port", base.port)
    if isinstance(port, bool) or not isinstance(port, int | str):
        raise ValueError("ami.port must be a number from 1 to 65535")
    try:
        port = int(port)
    except ValueError:
        raise ValueError("ami.port must be a number from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise ValueError("ami.port must be a number from 1 to 65535")
    username = str(ami.get("username", base.username))
    secret = str(ami.get("secret", base.secret))
    if any(c in username + secret for c in "\r\n") or not username.strip():
        raise ValueError("ami.username and ami.secret must be one line each (username not empty)")
    floats: dict[str, float] = {}
    for key in _CONFIG_FLOATS:
        if key not in ami:
            continue
        value = ami[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"ami.{key} must be a positive number of seconds")
        floats[key] = float(value)
    queue_max = ami.get("queue_max", base.queue_max)
    if isinstance(queue_max, bool) or not isinstance(queue_max, int) or queue_max < 10:
        raise ValueError("ami.queue_max must be a whole number of at least 10")
    merge_after = ami.get("merge_after", base.merge_after)
    if isinstance(merge_after, bool) or not isinstance(merge_after, int) or merge_after < 1:
        raise ValueError("ami.merge_after must be a whole number of at least 1")
    tracker_process = ami.get("tracker_process", base.tracker_process)
    if not isinstance(tracker_process, bool):
        raise ValueError("ami.tracker_process must be true or false")
    settings = LinkSettings(host=host, port=port, username=username, secret=secret,
                            queue_max=queue_max, merge_after=merge_after,
                            tracker_process=tracker_process, **floats)  # fmt: skip
    if settings.backoff_max < settings.backoff_initial:
        raise ValueError("ami.backoff_max must not be less than ami.backoff_initial")
    tls = ami.get("tls", False)
    if not isinstance(tls, bool):
        raise ValueError("ami.tls must be true or false")
    if tls:
        settings.ssl = _tls_context(ami.get("tls_ca") or None, bool(ami.get("tls_verify", True)))
    return settings


def _tls_context(cafile: str | None, verify: bool) -> _ssl.SSLContext:
    try:
        ctx = _ssl.create_default_context(cafile=cafile)
    except (OSError, _ssl.SSLError) as exc:
        raise ValueError(f"ami.tls_ca: cannot read the CA file {cafile!r}: {exc}") from None
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = _ssl.CERT_NONE
    return ctx


async def probe_connection(settings: LinkSettings, timeout: float = 5.0) -> tuple[bool, str]:
    """Connect, log in, ping and log off once: the admin's "test connection" button.

    Returns whether it worked and one sentence for the admin.  It is a separate, short
    session (plain asyncio streams), so it works whether or not the live link is up and
    never disturbs it; the secret is in no message and no log line.
    """
    s = settings
    endpoint = f"{s.host}:{s.port}"
    stage = "connect"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(s.host, s.port, ssl=s.ssl)
            stage = "banner"
            banner = await reader.readline()
            if not banner:
                return False, f"{endpoint} closed the connection without a word"
            if not banner.startswith(b"Asterisk Call Manager/"):
                return False, f"{endpoint} answered, but it is not an Asterisk manager interface"
            frames = FrameReader()
            stage = "login"
            login = {"Action": "Login", "ActionID": "probe-1", "Username": s.username,
                     "Secret": s.secret, "Events": "off"}
            resp = await _probe_ask(reader, writer, frames, login)
            if resp is None:
                return False, f"{endpoint} closed the connection during login"
            if first(resp.get("Response")) != "Success":
                text = first(resp.get("Message"))
                if not text or "authentication failed" in text.lower():
                    return False, "Login refused: wrong user or secret"
                return False, f"Login refused: {text}"
            stage = "ping"
            pong = await _probe_ask(
                reader, writer, frames, {"Action": "Ping", "ActionID": "probe-2"}
            )
            if pong is None or first(pong.get("Response")) != "Success":
                why = first(pong.get("Message")) if pong else "connection closed"
                return False, f"Logged in to {endpoint} as {s.username}, but Ping failed: {why}"
            stage = "permissions"
            if not await _may_originate(reader, writer, frames):
                return False, (
                    f"Logged in to {endpoint} as {s.username}, but this AMI user may not "
                    "originate calls: click-to-call needs 'originate' in its write= "
                    "permissions (manager.conf)"
                )
            stage = "logoff"
            with contextlib.suppress(OSError):
                await _probe_ask(reader, writer, frames, {"Action": "Logoff", "ActionID": "p3"})
            return True, f"Connected to Asterisk at {endpoint} as {s.username}"
    except TimeoutError:
        if stage == "connect":
            return False, f"No answer from {endpoint} (timed out)"
        if stage == "banner":
            return False, (
                f"{endpoint} accepted the connection but sent no AMI greeting "
                "(is TLS on at one end only?)"
            )
        if stage == "logoff":
            return True, f"Connected to Asterisk at {endpoint} as {s.username}"
        return False, f"{endpoint} did not answer the {stage.capitalize()} in {timeout:g} s"
    except _ssl.SSLCertVerificationError as exc:
        return False, f"TLS error with {endpoint}: certificate not trusted ({exc.verify_message})"
    except _ssl.SSLError as exc:
        return False, f"TLS error with {endpoint}: {exc.reason or exc}"
    except ConnectionRefusedError:
        return False, f"No answer from {endpoint} (connection refused)"
    except OSError as exc:
        if stage == "connect":
            return False, f"No answer from {endpoint} ({exc.strerror or _describe(exc)})"
        return False, f"The connection to {endpoint} failed: {exc.strerror or _describe(exc)}"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _may_originate(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frames: FrameReader
) -> bool:
    """Whether the logged-in user may send ``Originate``: Asterisk lists in
    ``ListCommands`` only the actions the user's write permissions allow.  A PBX that
    does not answer it is given the benefit of the doubt."""
    listed = await _probe_ask(reader, writer, frames,
                              {"Action": "ListCommands", "ActionID": "probe-4"})  # fmt: skip
    if listed is None or first(listed.get("Response")) != "Success":
        return True
    return any(key.lower() == "originate" for key in listed)


async def _probe_ask(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    frames: FrameReader,
    action: Mapping[str, str],
) -> Message | None:
    """Send one action, return its response (events in between are skipped)."""
    writer.write(encode_action(action))
    await writer.drain()
    action_id = action["ActionID"]
    while True:
        data = await reader.read(65536)
        if not data:
            return None
        for msg in frames.feed(data):
            if "Response" in msg and first(msg.get("ActionID")) in (action_id, ""):
                return msg
