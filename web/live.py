"""Live updates for the browser: screen pops and live lists over SSE.

One subscription to the CRM's event bus per web process feeds a ``LiveHub``; the hub
keeps the board of calls in progress (who was rung, who answered), looks the caller up
once per call for the screen pop (company, owner, last call, open callback; cached), and
fans every event out to the SSE connections it concerns:

* a rep gets a call while their extension rings, after they answered it, or when they
  placed it; the pop closes when somebody else answers or the call ends (the bus itself
  targets only the extensions ringing *now*, so the hub remembers who was rung);
* a manager also sees the live calls of their team's extensions, an admin every call;
* finished calls and callbacks go to whoever may see them (``crm.access``);
* a pop or live row names the caller's contact, its last call and open callback only to a
  viewer who may see them (``view_json``): a rep whose phone rings for another rep's
  customer gets the number and a "known contact of another rep" marker, nothing more;
* click-to-call progress goes to the rep who clicked.

The ingest never waits for a browser: the hub's own queue is large and drops the oldest
event when full, and each connection has a small bounded queue of its own (oldest
dropped, counted) that the SSE handler drains.  Payloads are plain JSON: epoch seconds
plus ISO strings, never internal objects.

At call-centre scale (hundreds of browsers) a change of a call is offered only to the
connections it may concern, found by extension (plus admins, and those already told of
the call), and its message is encoded once for every connection that sees the same
thing.  Events are handled in lanes (``dispatch``): one per call, in order, so a call
waiting for its caller's details or for the store never holds up another call's pop;
every other event shares one lane.  A connection whose SSE handler waits with nothing
queued gets its messages from the hub itself (``Client.attach``, ``Flusher``): all the
messages of one turn of the event loop in one write, no task switch per connection; a
browser that does not read gets them queued instead, and its handler waits for it.

Plugging in (other modules' SSE messages): publish an ``Event`` on the bus with a kind
of your own; unless the hub knows the kind, it goes, encoded once (``message_line``),
to the connections whose extensions or user id it targets, or, untargeted, to every
manager and admin.  A module that decides per viewer itself keeps its own index and
calls ``Client.put(kind, data)`` / ``Client.put_line(message_line(kind, data))`` on the
hub's ``clients``; ``put`` never blocks and never raises for a gone browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import web

from ami_bridge.facts import CallProgress, iso_utc
from crm.access import Scope, can_see_call, can_see_callback, can_see_contact
from crm.eventjson import from_jsonable
from crm.events import Event, Subscription
from crm.models import Call, CallbackTask, CallFilter, Contact, LiveCallRow, User
from crm.originate_relay import RELAY_KINDS
from crm.phones import normalize

from . import i18n
from .linkstate import link_down
from .render import format_number

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
CLIENT_QUEUE = 200
INFO_BUDGET = 0.12
"""Seconds the first event of a call may wait for the caller lookup; a slower lookup
sends the pop without the details and an update when they arrive."""
INFO_TTL = 20.0
USERS_TTL = 30.0
STALE_CALL_SECONDS = 6 * 3600.0
SEED_LIMIT = 500
"""Calls in progress read from the store per seeding (a PBX has far fewer up at once)."""
FLUSH_WINDOW = 0.005
"""Seconds between two writes to the browsers in a burst of messages (``Flusher``)."""
ENDED_MEMORY = 2000
"""Linkedids of calls that ended recently: a seed must not bring one back from a
``live_calls`` row that its ingest has not deleted yet."""


# -- plain JSON ----------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """Dataclasses, tuples, sets and dicts as JSON-ready values (epoch floats stay
    numbers); anything else that JSON cannot hold becomes its ``str``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_json = getattr(value, "to_json", None)
        if callable(to_json):
            return jsonable(to_json())
        return {
            f.name.rstrip("_"): jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    return str(value)


def remote_number(direction: str, caller: str | None, callee: str | None) -> str | None:
    """The outside party of a call (inbound: who called; otherwise who was dialled)."""
    return caller if direction == "inbound" else callee


def call_json(call: Call) -> dict[str, Any]:
    """A finished call as the live lists need it."""
    number = call.remote_e164 or remote_number(call.direction, call.caller, call.callee)
    return {
        "id": call.id,
        "url": f"/calls/{call.id}",
        "linkedid": call.linkedid,
        "direction": call.direction,
        "number": number,
        "caller": call.caller,
        "callee": call.callee,
        "did": call.did,
        "outcome": call.outcome,
        "answered": call.answered,
        "answered_by": call.answered_by,
        "rang": list(call.rang),
        "user_id": call.user_id,
        "contact_id": call.contact_id,
        "started_at": call.started_at,
        "started_iso": iso_utc(call.started_at),
        "ended_at": call.ended_at,
        "talk_seconds": call.talk_seconds,
        "ring_seconds": call.ring_seconds,
    }


def task_json(task: CallbackTask, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {
        "id": task.id,
        "number": task.number_e164,
        "contact_id": task.contact_id,
        "owner_id": task.owner_id,
        "status": task.status,
        "opened_at": task.opened_at,
        "due_at": task.due_at,
        "due_iso": iso_utc(task.due_at),
        "overdue": task.status == "open" and task.due_at < now,
        "missed_count": task.missed_count,
        "closed_at": task.closed_at,
    }


def _hidden_contact(other_rep: bool) -> dict[str, Any]:
    """The contact as a viewer who may not see it gets it: no id, name or company.
    ``other_rep``: the number is a known contact someone else owns; False: not known yet
    (the details are still being looked up)."""
    return {"id": None, "name": "", "url": None, "company": "", "owner_id": None,
            "owner": None, "is_lead": False, "lead_status": None, "other_rep": other_rep,
            "pending": not other_rep}  # fmt: skip


def _bare_contact(contact_id: int | None, name: str | None) -> dict[str, Any] | None:
    """The contact as the ingest named it, before (or without) the details."""
    if contact_id is None:
        return None
    return {
        "id": contact_id,
        "name": name or "",
        "url": f"/contacts/{contact_id}",
        "company": "",
        "owner_id": None,
        "owner": None,
        "is_lead": False,
        "lead_status": None,
    }


# -- who is watching -----------------------------------------------------------------
@dataclass(frozen=True)
class Viewer:
    """One logged-in user as the hub sees them."""

    user_id: int
    role: str
    extensions: frozenset[str]
    scope: Scope
    watch: frozenset[str] | None
    """Extensions whose live calls are listed for this user; None: every call."""
    locale: tuple[str, str, str] = ("en", "UTC", "US")
    """Language, time zone and number region the user's rows are rendered in."""
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        # the hub looks viewers up per connection and per message: hash them once
        compared = (getattr(self, f.name) for f in dataclasses.fields(self) if f.compare)
        object.__setattr__(self, "_hash", hash(tuple(compared)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def supervisor(self) -> bool:
        return self.role in ("manager", "admin")


class Client:
    """One SSE connection: a bounded queue of ready-to-send JSON lines."""

    def __init__(self, viewer: Viewer, maxsize: int = CLIENT_QUEUE) -> None:
        self.viewer = viewer
        self.maxsize = maxsize
        self.dropped = 0
        self.written = 0
        """Messages the hub wrote to the browser itself (``attach``)."""
        self.closed = False
        self.calls: set[str] = set()
        """Linkedids this connection was told about (so it hears how they end)."""
        self.session: str | None = None
        """The store's id of the login session this stream rides on (``web.sessions``)."""
        self.popped: set[str] = set()
        """Linkedids this connection got a ringing pop for (its latency is measured once)."""
        self.in_flight: list[float] = []
        """Receive times of the pops in the messages ``wait`` last returned: the SSE
        handler reports them (``LiveHub.written``) once it has written them."""
        self._queue: deque[tuple[str, float | None]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._write_now: Callable[[bytes], bool] | None = None
        self._flusher: Flusher | None = None
        self._outbox: list[str] = []

    def attach(self, write_now: Callable[[bytes], bool], flusher: Flusher) -> None:
        """Let the hub write messages to the browser itself while the SSE handler waits
        with nothing queued: ``flusher`` writes them at the end of the event loop's
        turn, all of this turn's messages in one ``write_now`` (one SSE frame each, one
        write); ``write_now`` says whether they went out (False: the browser's buffer is
        full or it left; they are then queued for the handler, which waits for the
        browser).  At hundreds of connections a turn of the handler's task per message
        (wake, resume, write, wait again) cost the server more than the write itself."""
        self._write_now = write_now
        self._flusher = flusher

    def put(self, kind: str, data: Any, received_at: float | None = None) -> bool:
        """Queue a message; ``received_at``: it is a screen pop, and when its event was
        read from the PBX.  True: it was written to the browser at once (``attach``)."""
        if self.closed:
            return False
        return self.put_line(message_line(kind, data), received_at)

    def put_line(self, line: str, received_at: float | None = None) -> bool:
        """Queue a message already encoded (``message_line``): the hub encodes a message
        once for every connection that sees the same thing.  True: written at once."""
        if self.closed:
            return False
        if self._outbox:
            self._outbox.append(line)
            return True
        flusher = self._flusher
        if flusher is not None and self._waiter is not None and not self._queue:
            self._outbox.append(line)
            flusher.add(self)
            return True
        self._enqueue(line, received_at)
        return False

    def flush(self) -> None:
        """Write what the hub gave this connection this turn (``attach``), or, when the
        browser cannot take it now, queue it for the handler (in order: nothing was
        queued meanwhile, ``put_line`` adds to the outbox while it is not empty)."""
        lines, self._outbox = self._outbox, []
        if not lines or self.closed or self._write_now is None:
            return
        frame = sse_frame(lines[0]) if len(lines) == 1 else b"".join(map(sse_frame, lines))
        if self._write_now(frame):
            self.written += len(lines)
            return
        for line in lines:
            self._enqueue(line, None)  # its pop was counted as written already

    def _enqueue(self, line: str, received_at: float | None) -> None:
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((line, received_at))
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pending(self) -> int:
        return len(self._queue)

    async def wait(self, timeout: float) -> list[str]:
        """The queued messages (maybe none, after at most ``timeout`` seconds).

        A bare future that ``put`` resolves, and one timer per connection that outlives
        the waits: it is armed when none is pending and fires ``timeout`` later (a wait
        may then return empty before its own ``timeout``).  At hundreds of connections
        ``asyncio.wait_for`` (a task, a second future and a timer for every message) was
        a large share of the server's time per pop."""
        if not self._queue and not self.closed:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            if self._timer is None:
                self._timer = loop.call_later(timeout, self._on_timer)
            try:
                await waiter
            finally:
                self._waiter = None
        out = [line for line, _ in self._queue]
        self.in_flight = [at for _, at in self._queue if at is not None]
        self._queue.clear()
        return out

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake()


class Flusher:
    """Writes what the hub handed idle connections (``Client.attach``) at the end of the
    event loop's turn: every message a connection got in one turn (several calls' events
    read from one AMI packet, say) leaves in one write.

    In a burst (the last flush ended less than ``window`` seconds ago, or less than it
    took) the next one waits until then: twenty calls ringing at once are a few writes to
    each browser, not twenty.  Each write to a browser is a system call of its own, and
    at hundreds of browsers they, not the JSON, are most of a pop's cost; waiting as long
    as the last flush took keeps the writes to half the loop's time at most when it is
    busy, the other half left for the events behind them.  A pop outside a burst leaves
    at once."""

    def __init__(self, window: float = FLUSH_WINDOW) -> None:
        self.window = window
        self._dirty: list[Client] = []
        self._due = float("-inf")
        """When the next flush may start."""

    def add(self, client: Client) -> None:
        if not self._dirty:
            loop = asyncio.get_running_loop()
            wait = self._due - time.monotonic()  # not loop.time(): uvloop's is per turn
            if wait > 0:
                loop.call_later(wait, self.flush)
            else:
                loop.call_soon(self.flush)
        self._dirty.append(client)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        if not dirty:
            return
        start = time.monotonic()
        for client in dirty:
            try:
                client.flush()
            except Exception:
                log.exception("live: could not write to a browser")
        end = time.monotonic()
        self._due = end + max(self.window, end - start)


def message_line(kind: str, data: Any) -> str:
    """One SSE message's JSON, as ``Client.put`` encodes it."""
    return json.dumps({"kind": kind, "data": data}, separators=(",", ":"))


@functools.lru_cache(maxsize=64)
def sse_frame(line: str) -> bytes:
    """A message line as its SSE frame (one ``data:`` line): shared, like the line, by
    every connection it goes to at once."""
    return f"data: {line}\n\n".encode()


# -- the board of calls in progress --------------------------------------------------
@dataclass
class LiveState:
    linkedid: str
    progress: CallProgress
    contact_id: int | None
    contact_name: str | None
    match_reason: str
    started_at: float
    rung: set[str] = field(default_factory=set)
    answered_at: float | None = None
    seen: float = field(default_factory=time.monotonic)
    info: dict[str, Any] | None = None
    info_task: asyncio.Task[dict[str, Any]] | None = None
    version: int = 0
    cache: dict[Any, Any] = field(default_factory=dict)
    """Rendered JSON and rows of the current ``version`` (shared by every viewer)."""
    from_store: bool = False
    """Known only from the store's ``live_calls`` (no bus event seen yet): dropped when
    a later seed no longer finds it there."""

    def changed(self) -> None:
        self.version += 1
        self.cache.clear()

    @property
    def audience(self) -> frozenset[str]:
        """Every extension this call concerns: rung, ringing, answering, calling."""
        p = self.progress
        out = set(self.rung) | set(p.ringing)
        if p.answered_by:
            out.add(p.answered_by)
        if p.agent:
            out.add(p.agent)
        if p.direction != "inbound" and p.caller:
            out.add(p.caller)
        if p.direction == "internal" and p.callee:
            out.add(p.callee)
        return frozenset(out)


def _lane_of(event: Event) -> str:
    """The call an event is about (its linkedid), or "" for every other event."""
    if event.kind == "call_progress":
        progress = getattr(event.payload, "progress", event.payload)
        return str(getattr(progress, "linkedid", "") or "")
    if event.kind == "call_recorded":
        call = getattr(event.payload, "call", event.payload)
        return str(getattr(call, "linkedid", "") or "")
    return ""


def view_of(viewer: Viewer, st: LiveState) -> tuple[str | None, str | None, bool]:
    """(``me``, ``pop``, ``listed``) of a live call for one viewer.

    ``me``: how the call involves the viewer's own phone (``caller``, ``answered``,
    ``ringing``, ``rung``, ``transferred``: they answered it and handed it on); ``pop``:
    ``ringing`` or ``on_call`` while the screen pop should show; ``listed``: whether the
    call belongs in the viewer's live list.  A transfer offers an answered call on: its
    target rings (``ringing``) and then has it (``agent``)."""
    p = st.progress
    mine = viewer.extensions
    if p.state == "ended":
        return None, None, False
    me: str | None = None
    pop: str | None = None
    # who has the call now: the rep a transfer handed it to, else whoever answered it
    # (unless they handed it on)
    holder = p.agent or (None if p.answered_by in p.handed_on else p.answered_by)
    if p.direction != "inbound" and p.caller in mine:
        me = "caller"  # they placed it (or their click-to-call rings them first): no pop
    elif holder is not None and holder in mine:
        me, pop = "answered", "on_call"
    elif mine & set(p.ringing):
        me, pop = "ringing", "ringing"
    elif mine & set(p.handed_on):
        me = "transferred"  # theirs once, handed on since: listed, no pop
    elif p.answered_by:
        me = None  # answered elsewhere
    elif mine & st.rung:
        me, pop = "rung", "ringing"  # stopped ringing, nobody answered yet: keep the pop
    if me is not None:
        return me, pop, True
    audience = st.audience
    if viewer.watch is None:
        listed = True
    elif viewer.role == "manager":
        listed = bool(viewer.watch & audience) or not audience
    else:
        listed = False
    return None, None, listed


class LiveHub:
    def __init__(
        self,
        rt: Runtime,
        env: jinja2.Environment | None = None,
        *,
        info_budget: float = INFO_BUDGET,
        heartbeat: float | None = None,
    ) -> None:
        self.rt = rt
        self.env = env
        self.info_budget = info_budget
        server = rt.settings.get("server", {})
        self.heartbeat = float(
            heartbeat if heartbeat is not None else server.get("sse_heartbeat", HEARTBEAT_SECONDS)
        )
        self.region = str(rt.settings.get("numbers", {}).get("default_region", "US"))
        self.calls: OrderedDict[str, LiveState] = OrderedDict()
        self.clients: set[Client] = set()
        self._by_ext_clients: dict[str, set[Client]] = {}
        """Connections by the extensions they may be concerned by (their own phones, and
        a manager's team's): a call is offered only to the connections its extensions
        lead to, plus ``_everything`` and those told of it (``_told``)."""
        self._everything: set[Client] = set()
        self._viewers: dict[Viewer, list[Any]] = {}
        """Each distinct viewer once, with how many connections share it (``_intern``)."""
        """Connections that list every call (an admin's)."""
        self._managers: set[Client] = set()
        """Managers' connections: they also list a call that concerns no extension yet."""
        self._told: dict[str, set[Client]] = {}
        """Connections told of a call (``Client.calls``) by linkedid: they hear how it ends."""
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._users_at = -1e9
        self._users_stale = True
        """The next read of the users is waited for (first use, ``users_changed``)."""
        self._users_task: asyncio.Task[None] | None = None
        self._by_id: dict[int, User] = {}
        self._by_ext: dict[str, User] = {}
        self._info_cache: OrderedDict[tuple[int | None, str | None], tuple[float, dict[str, Any]]]
        self._info_cache = OrderedDict()
        self._contacts: OrderedDict[int, tuple[float, Contact | None]] = OrderedDict()
        self._fetching: dict[tuple[int | None, str | None], asyncio.Future[dict[str, Any]]] = {}
        """Caller lookups under way, by (contact, number): one fetch for calls alike."""
        self._info_epoch = 0
        self._late: set[asyncio.Task[None]] = set()
        self._lanes: dict[str, deque[Event]] = {}
        self._written_pops: list[float] = []
        self.flusher = Flusher()
        """Writes the messages of connections whose handler waits (``Client.attach``)."""
        """Events waiting for their turn, by the call they are about (``dispatch``)."""
        self._ended: OrderedDict[str, None] = OrderedDict()
        self.handled = 0
        self._templates: dict[str, tuple[float, jinja2.Template]] = {}
        self._contact_batch: dict[int, asyncio.Future[Contact | None]] | None = None
        """Contacts asked for in this turn of the loop, read at its end (``_read_contact``)."""

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        self._sub = self.rt.bus.subscribe(maxsize=10_000)
        self._seed_from_ingest()
        await self.seed_from_store()
        self._task = asyncio.create_task(self._run(), name="live-hub")

    async def close(self) -> None:
        for client in list(self.clients):
            client.close()
        self.clients.clear()
        self._by_ext_clients.clear()
        self._everything.clear()
        self._managers.clear()
        self._viewers.clear()
        self._told.clear()
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        self._lanes.clear()
        tasks = [t for t in (self._task, *self._late) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None

    async def _run(self) -> None:
        assert self._sub is not None
        sub = self._sub
        while True:
            self.dispatch(await sub.get())

    def dispatch(self, event: Event) -> None:
        """Hand ``event`` to its lane (``handle`` in order, in a task): the events of one
        call keep their order, but a call waiting for its caller's details, or for the
        store, never holds up the pops of the others.  Every event that is not about a
        call (callbacks, link state, click-to-call progress, what other modules publish)
        shares one lane of its own."""
        key = _lane_of(event)
        lane = self._lanes.get(key)
        if lane is not None:
            lane.append(event)
            return
        lane = self._lanes[key] = deque((event,))
        task = asyncio.create_task(self._drain(key, lane), name="live-lane")
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _drain(self, key: str, lane: deque[Event]) -> None:
        try:
            while lane:
                event = lane[0]
                try:
                    await self.handle(event)
                except Exception:
                    log.exception("live: could not handle %s", event.kind)
                lane.popleft()
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    def _seed_from_ingest(self) -> None:
        """Calls already in progress, if the ingest keeps them (``live_calls``)."""
        source = getattr(self.rt.ingest, "live_calls", None)
        if source is None:
            return
        try:
            items = source() if callable(source) else source
            if isinstance(items, dict):
                items = items.values()
            for item in list(items or ()):
                self._update_state(item)
        except Exception:
            log.exception("live: could not read the ingest's live calls")

    async def seed_from_store(self) -> None:
        """Calls in progress the store knows of (``live_calls``, written by every ingest
        that runs with ``keep_live``, in this process or another), so a hub started
        mid-call, or a page loaded mid-call, lists them; their later events arrive over
        the bus as usual.  Who sees which is decided per viewer (``view_of``), as for
        calls heard on the bus.  A call known only from an earlier seed that is gone from
        the store now has ended without this hub hearing of it, and is dropped."""
        store = self.rt.store
        try:
            rows = await store.list_live_calls(time.time() - STALE_CALL_SECONDS, SEED_LIMIT)
        except Exception:
            log.exception("live: could not read the calls in progress from the store")
            return
        present = {row.linkedid for row in rows}
        for linkedid in [k for k, st in self.calls.items() if st.from_store]:
            if linkedid not in present:
                self._forget(linkedid)
        fresh = [r for r in reversed(rows) if r.linkedid not in self.calls]
        fresh = [r for r in fresh if r.linkedid not in self._ended]
        if not fresh:
            return
        await self._refresh_users()
        for row in fresh:
            try:
                await self._seed_row(row)
            except Exception:
                log.exception("live: could not read the kept state of call %s", row.linkedid)
                self._ended[row.linkedid] = None  # not again on every page load

    async def _seed_row(self, row: LiveCallRow) -> None:
        snap = row.snapshot
        progress = from_jsonable(CallProgress, snap["progress"])
        if progress.state == "ended" or row.linkedid in self.calls:
            return
        contact_id, contact_name, reason = await self._match(progress)
        if row.linkedid in self.calls or row.linkedid in self._ended:
            return  # its bus event overtook the lookup
        st = LiveState(
            row.linkedid,
            progress,
            contact_id,
            contact_name,
            reason,
            started_at=float(snap.get("started_at") or progress.at),
            from_store=True,
        )
        st.rung.update(snap.get("rung") or ())
        st.rung.update(progress.ringing)
        answered_at = snap.get("answered_at")
        st.answered_at = float(answered_at) if answered_at is not None else None
        self.calls[row.linkedid] = st
        # oldest first, as the bus would have added them
        for linkedid in [k for k, o in self.calls.items() if o.started_at > st.started_at]:
            self.calls.move_to_end(linkedid)

    async def _match(self, progress: CallProgress) -> tuple[int | None, str | None, str]:
        """The contact a seeded call's pop names: the ingest's rule (``Ingest._lookup``)
        for a call whose first event this hub never saw."""
        if progress.direction == "internal":
            return None, None, "internal"
        e164 = normalize(remote_number(progress.direction, progress.caller, progress.callee),
                         self.region)  # fmt: skip
        if e164 is None or self.rt.service.policy.is_own_number(e164):
            return None, None, "none"
        ids = await self.rt.store.contact_ids_by_e164(e164)
        if not ids:
            return None, None, "none"
        contact = await self._contact(ids[0])
        reason = "unique" if len(ids) == 1 else f"most_recent_of_{len(ids)}"
        return ids[0], contact.name if contact else None, reason

    # -- connections -------------------------------------------------------------------
    async def viewer_for(self, user: User) -> Viewer:
        assert user.id is not None
        scope = await self.rt.service.scope_for(user)
        if scope.unrestricted:
            watch: frozenset[str] | None = None
        else:
            await self._refresh_users()
            ids = scope.user_ids or frozenset()
            watch = frozenset(
                ext for uid in ids if (u := self._by_id.get(uid)) for ext in u.extensions
            ) | frozenset(user.extensions)
        locale = (i18n.CURRENT_LANGUAGE.get(), i18n.CURRENT_TIMEZONE.get(),
                  i18n.CURRENT_REGION.get())  # the /events request's (web.language)  # fmt: skip
        return Viewer(user.id, user.role, frozenset(user.extensions), scope, watch, locale)

    def connect(self, viewer: Viewer) -> Client:
        """A new SSE connection; it gets the calls in progress that concern it at once
        (so a pop survives moving to another page) and the PBX link state."""
        client = Client(self._intern(viewer))
        self.clients.add(client)
        self._index(client)
        self._sweep()
        for st in list(self.calls.values()):
            self._send_call(client, st)
        status = self.rt.link_status
        if status is not None:
            client.put("link_status", self._link_json(status, viewer))
        elif hasattr(self.rt, "extras") and link_down(self.rt) is not None:
            # this process consumes no link; the board heard another process's
            client.put("link_status", self._link_json(None, viewer))
        return client

    def written(self, client: Client) -> None:
        """The SSE handler wrote what ``client.wait`` returned: the pops in it are
        delivered (``crm_screen_pop_latency_seconds``)."""
        stamps, client.in_flight = client.in_flight, []
        metrics = getattr(self.rt, "metrics", None)
        if stamps and metrics is not None:
            metrics.observe_pops(stamps)

    def close_streams(self, payload: Any) -> None:
        """A user's sessions ended (or their role changed): close their streams, all or
        one session's or all but one session's (``web.sessions.close_streams``)."""
        if not isinstance(payload, dict):
            return
        user_id, only, keep = payload.get("user_id"), payload.get("session"), payload.get("keep")
        for client in list(self.clients):
            if client.viewer.user_id != user_id:
                continue
            if (only is not None and client.session != only) or (
                keep is not None and client.session == keep
            ):
                continue
            self.disconnect(client)

    def disconnect(self, client: Client) -> None:
        client.close()
        if client in self.clients:
            self.clients.discard(client)
            self._unindex(client)

    def _intern(self, viewer: Viewer) -> Viewer:
        """One ``Viewer`` object for equal viewers (the tabs of one user): the hub's
        per-viewer lookups then compare by identity."""
        entry = self._viewers.get(viewer)
        if entry is None:
            entry = self._viewers[viewer] = [viewer, 0]
        entry[1] += 1
        return entry[0]

    def _index(self, client: Client) -> None:
        v = client.viewer
        if v.watch is None:
            self._everything.add(client)
        elif v.role == "manager":
            self._managers.add(client)
        for ext in v.extensions | (v.watch or frozenset()):
            self._by_ext_clients.setdefault(ext, set()).add(client)

    def _unindex(self, client: Client) -> None:
        v = client.viewer
        entry = self._viewers.get(v)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self._viewers[v]
        self._everything.discard(client)
        self._managers.discard(client)
        for ext in v.extensions | (v.watch or frozenset()):
            group = self._by_ext_clients.get(ext)
            if group is not None:
                group.discard(client)
                if not group:
                    del self._by_ext_clients[ext]
        for linkedid in client.calls:
            told = self._told.get(linkedid)
            if told is not None:
                told.discard(client)
                if not told:
                    del self._told[linkedid]

    def _concerned(self, st: LiveState) -> set[Client]:
        """The connections a change of ``st`` may concern (``view_of`` decides): those
        whose own or watched extensions it involves, every admin, every manager while
        it involves no extension, and those already told of it."""
        out = set(self._everything)
        audience = st.audience
        if not audience:
            out |= self._managers
        by_ext = self._by_ext_clients
        for ext in audience:
            group = by_ext.get(ext)
            if group:
                out |= group
        told = self._told.get(st.linkedid)
        if told:
            out |= told
        return out

    def live_calls_for(self, viewer: Viewer) -> list[dict[str, Any]]:
        """The live list a page renders on load (newest first)."""
        self._sweep()
        out = []
        for st in reversed(self.calls.values()):
            me, pop, listed = view_of(viewer, st)
            if listed:
                can_open = self._can_open(viewer, st)
                out.append({**self.view_json(viewer, st, can_open), "me": me, "pop": pop,
                            "can_open": can_open})  # fmt: skip
        return out

    # -- events ------------------------------------------------------------------------
    async def handle(self, event: Event) -> None:
        """Take one bus event and send it where it belongs (public for tests);
        ``handled`` counts the events done with."""
        try:
            await self._handle(event)
        finally:
            self.handled += 1

    async def _handle(self, event: Event) -> None:
        kind = event.kind
        if kind == "call_progress":
            await self._on_progress(event.payload)
        elif kind == "call_recorded":
            await self._on_recorded(event.payload)
        elif kind.startswith("callback_"):
            await self._on_callback(kind, event.payload)
        elif kind == "click_progress":
            line = message_line(kind, jsonable(event.payload))
            for client in list(self.clients):
                if client.viewer.user_id in event.user_ids:
                    client.put_line(line)
        elif kind == "link_status":
            banner = self._banner()  # once per event, not per connection
            by_role: dict[bool, str] = {}
            for client in list(self.clients):
                admin = client.viewer.role == "admin"
                if admin not in by_role:
                    by_role[admin] = message_line(
                        kind, self._link_json(event.payload, client.viewer, banner)
                    )
                client.put_line(by_role[admin])
        elif kind == "streams_close":
            self.close_streams(event.payload)
        elif kind == "originate_result":
            return  # the rep hears about their click through click_progress
        elif kind in RELAY_KINDS:
            return  # work between processes (originate_request...), never for a browser
        else:
            line = message_line(kind, jsonable(event.payload))
            for client in list(self.clients):
                v = client.viewer
                if event.targeted:
                    if v.extensions & event.extensions or v.user_id in event.user_ids:
                        client.put_line(line)
                elif v.supervisor:
                    client.put_line(line)

    def _update_state(self, payload: Any) -> LiveState | None:
        progress = getattr(payload, "progress", payload)
        if not isinstance(progress, CallProgress):
            return None
        st = self.calls.get(progress.linkedid)
        if st is None:
            st = LiveState(
                progress.linkedid,
                progress,
                getattr(payload, "contact_id", None),
                getattr(payload, "contact_name", None),
                getattr(payload, "match_reason", "none"),
                started_at=progress.at,
            )
            self.calls[progress.linkedid] = st
        else:
            st.progress = progress
            if getattr(payload, "contact_id", None) is not None:
                st.contact_id = payload.contact_id
                st.contact_name = payload.contact_name
                st.match_reason = payload.match_reason
            self.calls.move_to_end(progress.linkedid)
        st.rung.update(progress.ringing)
        if progress.state == "answered" and st.answered_at is None:
            st.answered_at = progress.at
        st.seen = time.monotonic()
        st.from_store = False
        st.changed()
        return st

    async def _on_progress(self, payload: Any) -> None:
        st = self._update_state(payload)
        if st is None:
            return
        if self._superseded(st, payload):
            return
        await self._refresh_users()
        if st.progress.state != "ended" and st.info is None:
            await self._await_info(st)
        self._broadcast(st)
        if st.progress.state == "ended":
            self._forget(st.linkedid)

    def _superseded(self, st: LiveState, payload: Any) -> bool:
        """Whether a later change of the call already waits in its lane (``dispatch``):
        changes that arrived together (one read from the PBX, or while the hub was busy)
        then go out as one message, the last one, which says everything the browser
        shows (the state is kept from every change: who was rung, when it was
        answered).  The end of a call is never folded: it closes the pops and rows."""
        if st.progress.state == "ended":
            return False
        lane = self._lanes.get(st.linkedid)
        return (
            lane is not None
            and len(lane) > 1
            and lane[0].payload is payload  # handled from its lane, not directly
            and lane[1].kind == "call_progress"
        )

    def _broadcast(self, st: LiveState) -> None:
        """Offer a change of ``st`` to the connections it may concern."""
        self._offer(st, self._concerned(st))

    def _send_call(self, client: Client, st: LiveState) -> None:
        self._offer(st, (client,))

    def _offer(self, st: LiveState, clients: Iterable[Client]) -> None:
        """Give each of ``clients`` the call as it now sees it, if it lists the call or
        was told of it (then it hears that it no longer lists it).  Tabs of one user
        (equal viewers) share one decision (``view_of``) and one encoded line, built only
        if a connection needs it.  This loop runs for every connection a change of every
        call concerns, hundreds at once: per connection it is a few set operations and
        ``put_line``; who was told of the call is recorded for all of them at the end."""
        linkedid = st.linkedid
        popped_at = st.progress.received_at
        written = self._written_pops
        views: dict[Viewer, list[Any]] = {}
        listing: list[Client] = []
        unlisting: list[Client] = []
        for client in clients:
            viewer = client.viewer
            view = views.get(viewer)
            if view is None:
                me, pop, listed = view_of(viewer, st)
                # listed, its line (built on first use), a pop whose latency counts, me, pop
                view = views[viewer] = [listed, None, pop == me == "ringing", me, pop]
            if view[0]:
                listing.append(client)
            elif linkedid in client.calls:
                unlisting.append(client)
            else:
                continue
            line = view[1]
            if line is None:
                line = view[1] = self._line(viewer, st, view[3], view[4], view[0])
            if view[2] and linkedid not in client.popped:
                client.popped.add(linkedid)  # the pop's latency is measured from its event
                if client.put_line(line, popped_at) and popped_at is not None:
                    written.append(popped_at)
            else:
                client.put_line(line)
        if listing:
            for client in listing:
                client.calls.add(linkedid)
            self._told.setdefault(linkedid, set()).update(listing)
        if unlisting:
            group = self._told.get(linkedid)
            for client in unlisting:
                client.calls.discard(linkedid)
                if group is not None:
                    group.discard(client)
            if group is not None and not group:
                del self._told[linkedid]
        if written:
            asyncio.get_running_loop().call_soon(self._observe_written)

    def _observe_written(self) -> None:
        """The pops the hub wrote to browsers itself are delivered (``written``); run
        after the ``Flusher`` wrote them, so the figures never hold up a write."""
        stamps, self._written_pops = self._written_pops, []
        metrics = getattr(self.rt, "metrics", None)
        if stamps and metrics is not None:
            metrics.observe_pops(stamps)

    def _line(
        self, viewer: Viewer, st: LiveState, me: str | None, pop: str | None, listed: bool
    ) -> str:
        can_open = self._can_open(viewer, st)
        view = self.view_json(viewer, st, can_open)
        shared = self._shared(st)
        contact = view["contact"]
        # Everything a viewer's message depends on: connections that agree on it get the
        # same line, encoded once per version of the call (the cache clears on a change).
        key = ("line", me, pop, listed, can_open, contact is shared["contact"],
               (contact or {}).get("other_rep"), view["last_call"] is None,
               view["open_callback"] is None, viewer.locale)  # fmt: skip
        line = st.cache.get(key)
        if line is None:
            data = {**view, "me": me, "pop": pop, "listed": listed}
            data["can_open"] = can_open
            # the live list shows a row only while the call is listed (it removes it else)
            data["row_html"] = self._live_row(st, can_open, data, viewer.locale) if listed else ""
            line = st.cache[key] = message_line("call_progress", data)
        return line

    def _forget(self, linkedid: str) -> None:
        self._ended[linkedid] = None
        self._ended.move_to_end(linkedid)
        while len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)
        st = self.calls.pop(linkedid, None)
        if st is not None and st.info_task is not None and not st.info_task.done():
            st.info_task.cancel()
        self._told.pop(linkedid, None)
        for client in self.clients:
            client.calls.discard(linkedid)
            client.popped.discard(linkedid)

    def _sweep(self) -> None:
        """Drop calls whose end we never heard of (a link outage without resync)."""
        limit = time.monotonic() - STALE_CALL_SECONDS
        for linkedid in [k for k, st in self.calls.items() if st.seen < limit]:
            self._forget(linkedid)

    async def _on_recorded(self, payload: Any) -> None:
        call = getattr(payload, "call", payload)
        if not isinstance(call, Call):
            return
        st = self.calls.get(call.linkedid)
        if st is not None:  # the end was not announced: close pops and rows now
            st.progress = dataclasses.replace(st.progress, state="ended", ringing=())
            st.changed()
            self._broadcast(st)
            self._forget(call.linkedid)
        self._drop_info(call.contact_id, call.remote_e164)
        await self._refresh_users()
        change = getattr(payload, "callback", None)
        task = change.task if change is not None and change.kind in ("opened", "joined") else None
        contact = await self._contact(call.contact_id)
        lead = getattr(payload, "lead_created", None)
        base = {
            "call": call_json(call),
            "created": bool(getattr(payload, "created", True)),
            "lead_created": (
                {"id": lead.id, "name": lead.name, "url": f"/contacts/{lead.id}"} if lead else None
            ),
            "callback": (
                {"kind": change.kind, "task": task_json(change.task, self.rt.clock())}
                if change is not None
                else None
            ),
        }
        # one decision per viewer and one encoding per kind of row, as for the pops
        lines: dict[tuple[bool, tuple[str, str, str]], str] = {}
        by_viewer: dict[Viewer, str | None] = {}
        for client in list(self.clients):
            viewer = client.viewer
            if viewer not in by_viewer:
                scope = viewer.scope
                line = None
                if can_see_call(scope, call, task):
                    can_open = contact is not None and can_see_contact(scope, contact)
                    row_key = (can_open, viewer.locale)
                    line = lines.get(row_key)
                    if line is None:
                        row = self._render(
                            "_call_row.html",
                            viewer.locale,
                            call=call,
                            contact=contact,
                            can_open_contact=can_open,
                            rep=self._by_id.get(call.user_id) if call.user_id else None,
                        )
                        line = lines[row_key] = message_line(
                            "call_recorded", {**base, "row_html": row}
                        )
                by_viewer[viewer] = line
            line = by_viewer[viewer]
            if line is not None:
                client.put_line(line)

    async def _on_callback(self, kind: str, task: Any) -> None:
        if not isinstance(task, CallbackTask):
            return
        self._drop_info(task.contact_id, task.number_e164)
        await self._refresh_users()
        contact = await self._contact(task.contact_id)
        data = {"kind": kind.removeprefix("callback_"), "task": task_json(task, self.rt.clock())}
        lines: dict[tuple[bool, tuple[str, str, str]], str] = {}
        by_viewer: dict[Viewer, str | None] = {}
        for client in list(self.clients):
            viewer = client.viewer
            if viewer not in by_viewer:
                scope = viewer.scope
                line = None
                if can_see_callback(scope, task):
                    can_open = contact is not None and can_see_contact(scope, contact)
                    row_key = (can_open, viewer.locale)
                    line = lines.get(row_key)
                    if line is None:
                        row = None
                        if task.status == "open":
                            row = self._render(
                                "_callback_row.html",
                                viewer.locale,
                                task=task,
                                contact=contact,
                                can_open_contact=can_open,
                                owner=self._by_id.get(task.owner_id) if task.owner_id else None,
                                now=self.rt.clock(),
                            )
                        line = lines[row_key] = message_line(kind, {**data, "row_html": row})
                by_viewer[viewer] = line
            line = by_viewer[viewer]
            if line is not None:
                client.put_line(line)

    # -- what a pop says ---------------------------------------------------------------
    def _shared(self, st: LiveState) -> dict[str, Any]:
        cached = st.cache.get("json")
        if cached is None:
            cached = st.cache["json"] = self._build_shared(st)
        return cached

    def view_json(self, viewer: Viewer, st: LiveState, can_open: bool) -> dict[str, Any]:
        """The call as ``viewer`` may see it: the contact only when they may open it (an
        admin, its owner's scope, or shared), the last call only when it was theirs to
        see, the open callback only when they may see it."""
        data = self._shared(st)
        if viewer.scope.unrestricted:
            return data
        contact = data["contact"]
        if contact is not None and not can_open:
            visible = self._visible_before_details(viewer, st)
            if visible is not True:
                contact = _hidden_contact(other_rep=st.info is not None or visible is False)
        last = data["last_call"]
        rep_id = last.get("rep_id") if last is not None else None
        if last is not None and not (
            viewer.scope.covers(rep_id) or (rep_id is None and (st.contact_id is None or can_open))
        ):
            last = None  # fmt: skip
        callback = data["open_callback"]
        if callback is not None and not (
            callback.get("owner_id") is None or viewer.scope.covers(callback.get("owner_id"))
        ):
            callback = None  # fmt: skip
        if (contact, last, callback) == (data["contact"], data["last_call"],
                                         data["open_callback"]):  # fmt: skip
            return data
        return {**data, "contact": contact, "last_call": last, "open_callback": callback}

    def _visible_before_details(self, viewer: Viewer, st: LiveState) -> bool | None:
        """Before the details arrive: whether the contact the ingest named is the
        viewer's to see, from the contact cache (None: not known yet)."""
        if st.info is not None or st.contact_id is None:
            return None
        cached = self._contacts.get(st.contact_id)
        if cached is None or cached[1] is None:
            return None
        owner = cached[1].owner_id
        return owner is None or viewer.scope.covers(owner)

    def _live_row(self, st: LiveState, can_open: bool, view: dict[str, Any],
                  locale: tuple[str, str, str]) -> str:  # fmt: skip
        hidden = bool((view.get("contact") or {}).get("id") is None and st.contact_id)
        key = ("row", can_open, hidden, locale)
        html = st.cache.get(key)
        if html is None:
            live = {**view, "can_open": can_open}
            html = st.cache[key] = self._render("_live_row.html", locale, live=live)
        return html

    def _build_shared(self, st: LiveState) -> dict[str, Any]:
        p = st.progress
        number = remote_number(p.direction, p.caller, p.callee)
        if p.direction == "internal":
            number = p.caller
        caller_user = self._by_ext.get(p.caller or "") if p.caller else None
        answered_user = self._by_ext.get(p.answered_by or "") if p.answered_by else None
        info = st.info or {}
        data: dict[str, Any] = {
            "linkedid": st.linkedid,
            "state": p.state,
            "direction": p.direction,
            "number": number,
            "number_display": format_number(number, self.region),
            "caller": p.caller,
            "caller_name": p.caller_name,
            "caller_user": caller_user.display_name if caller_user else None,
            "callee": p.callee,
            "did": p.did,
            "ringing": list(p.ringing),
            "rung": sorted(st.rung),
            "answered_by": p.answered_by,
            "answered_by_name": answered_user.display_name if answered_user else None,
            "at": p.at,
            "at_iso": iso_utc(p.at),
            "started_at": st.started_at,
            "started_iso": iso_utc(st.started_at),
            "answered_at": st.answered_at,
            "originate_id": p.originate_id,
            "match_reason": st.match_reason,
            "contact": info.get("contact") or _bare_contact(st.contact_id, st.contact_name),
            "last_call": info.get("last_call"),
            "open_callback": info.get("open_callback"),
            "details": st.info is not None,
        }
        return data

    @staticmethod
    def _can_open(viewer: Viewer, st: LiveState) -> bool:
        """Whether the viewer may open the caller's contact card (the pop and the row
        link to it only then)."""
        if st.contact_id is None:
            return False
        if viewer.scope.unrestricted:
            return True
        contact = (st.info or {}).get("contact")
        if not contact:
            return False
        owner = contact.get("owner_id")
        return owner is None or viewer.scope.covers(owner)

    async def _await_info(self, st: LiveState) -> None:
        """Wait up to ``info_budget`` for the caller's details, once per call; a slower
        lookup finishes in the background and sends an update."""
        if st.info_task is not None:
            return
        st.info_task = asyncio.ensure_future(self._lookup(st))
        done, _ = await asyncio.wait({st.info_task}, timeout=self.info_budget)
        if done:
            st.info = self._result(st.info_task)
            st.changed()
            return
        task = asyncio.ensure_future(self._late_info(st))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    @staticmethod
    def _result(task: asyncio.Task[dict[str, Any]]) -> dict[str, Any]:
        if task.cancelled() or task.exception() is not None:
            if not task.cancelled():
                log.warning("live: caller lookup failed: %s", task.exception())
            return {}
        return task.result()

    async def _late_info(self, st: LiveState) -> None:
        assert st.info_task is not None
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait({st.info_task})
        st.info = self._result(st.info_task)
        st.changed()
        if self.calls.get(st.linkedid) is st:
            self._broadcast(st)

    def _number_e164(self, st: LiveState) -> str | None:
        p = st.progress
        if p.direction == "internal":
            return None
        return normalize(remote_number(p.direction, p.caller, p.callee), self.region)

    async def _lookup(self, st: LiveState) -> dict[str, Any]:
        e164 = self._number_e164(st)
        key = (st.contact_id, e164)
        cached = self._info_cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        # Calls from one number at once (a burst, a flood) share one fetch.
        fetch = self._fetching.get(key)
        if fetch is None:
            fetch = self._fetching[key] = asyncio.ensure_future(self._fetch_info(*key))
            fetch.add_done_callback(functools.partial(self._fetched, key))
        epoch = self._info_epoch
        info = await asyncio.shield(fetch)
        if self._info_epoch == epoch:  # nothing changed meanwhile (``_drop_info``)
            self._info_cache[key] = (now + INFO_TTL, info)
            while len(self._info_cache) > 2000:
                self._info_cache.popitem(last=False)
        return info

    def _fetched(self, key: tuple[int | None, str | None], fetch: asyncio.Future[Any]) -> None:
        if self._fetching.get(key) is fetch:
            del self._fetching[key]
        if not fetch.cancelled():
            fetch.exception()  # retrieved: whoever awaited it logged it

    async def _fetch_info(self, contact_id: int | None, e164: str | None) -> dict[str, Any]:
        store = self.rt.store
        info: dict[str, Any] = {}
        contact = await self._contact(contact_id, fresh=True)
        if contact is not None:
            owner = self._by_id.get(contact.owner_id) if contact.owner_id else None
            info["contact"] = {
                "id": contact.id,
                "name": contact.name,
                "url": f"/contacts/{contact.id}",
                "company": contact.company,
                "owner_id": contact.owner_id,
                "owner": owner.display_name if owner else None,
                "is_lead": contact.lead is not None and contact.lead.status != "converted",
                "lead_status": contact.lead.status if contact.lead else None,
            }
            calls = await store.list_calls(CallFilter(contact_id=contact.id), 1)
        elif e164:
            calls = await store.list_calls(CallFilter(number_e164=e164), 1)
        else:
            calls = []
        if calls:
            last = calls[0]
            rep = self._by_id.get(last.user_id) if last.user_id else None
            info["last_call"] = {
                "id": last.id,
                "url": f"/calls/{last.id}",
                "at": last.started_at,
                "at_iso": iso_utc(last.started_at),
                "direction": last.direction,
                "outcome": last.outcome,
                "rep": rep.display_name if rep else None,
                "rep_id": last.user_id,
            }
        if e164:
            task = await store.open_callback_for_number(e164)
            if task is not None:
                owner = self._by_id.get(task.owner_id) if task.owner_id else None
                info["open_callback"] = {
                    **task_json(task, self.rt.clock()),
                    "owner": owner.display_name if owner else None,
                }
        return info

    def _drop_info(self, contact_id: int | None, e164: str | None) -> None:
        for key in [k for k in self._info_cache if k[0] == contact_id or k[1] == e164]:
            if key[0] is not None or key[1] is not None:
                self._info_cache.pop(key, None)
        self._info_epoch += 1  # a lookup under way now is not cached
        for key in [k for k in self._fetching if k[0] == contact_id or k[1] == e164]:
            if key[0] is not None or key[1] is not None:
                del self._fetching[key]  # the next call looks again
        if contact_id is not None:
            self._contacts.pop(contact_id, None)

    async def _contact(self, contact_id: int | None, fresh: bool = False) -> Contact | None:
        if contact_id is None:
            return None
        now = time.monotonic()
        cached = self._contacts.get(contact_id)
        if cached is not None and cached[0] > now and not fresh:
            return cached[1]
        if fresh:  # the pop's details: on the store's reader, now (not behind a batch)
            contact = await self.rt.store.get_contact(contact_id)
        else:
            contact = await asyncio.shield(self._read_contact(contact_id))
        if contact is not None and contact.erased:
            contact = None
        self._contacts[contact_id] = (now + INFO_TTL, contact)
        while len(self._contacts) > 2000:
            self._contacts.popitem(last=False)
        return contact

    def _read_contact(self, contact_id: int) -> asyncio.Future[Contact | None]:
        """The contact as the store has it now, read together with every other contact
        asked for in this turn of the event loop: the calls a batch of writes finished
        arrive together, and each wants its contact for its row (one query for them
        all, not one each, on the loop that also reads the PBX; and not on the store's
        reader, which the screen pops' lookups need)."""
        batch = self._contact_batch
        if batch is None:
            batch = self._contact_batch = {}
            asyncio.get_running_loop().call_soon(self._read_contacts)
        read = batch.get(contact_id)
        if read is None:
            read = batch[contact_id] = asyncio.get_running_loop().create_future()
        return read

    def _read_contacts(self) -> None:
        batch, self._contact_batch = self._contact_batch or {}, None
        task = asyncio.ensure_future(self._read_contacts_now(batch))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _read_contacts_now(self, batch: dict[int, asyncio.Future[Contact | None]]) -> None:
        found: dict[int, Contact] | None = None
        error: Exception | None = None
        try:
            found = await self.rt.store.contacts_by_ids(batch)
        except Exception as exc:
            error = exc
        finally:  # cancelled too (the hub closing): nobody waits for ever
            for contact_id, read in batch.items():
                if read.done():
                    continue
                if found is not None:
                    read.set_result(found.get(contact_id))
                elif error is not None:
                    read.set_exception(error)
                    read.exception()  # retrieved: each caller's own handler logs it
                else:
                    read.cancel()

    async def _refresh_users(self, force: bool = False) -> None:
        """Users (names, extensions) at most ``USERS_TTL`` old.  Only the first read, or
        one after ``users_changed``, is waited for; a merely old copy is re-read in the
        background, so a pop never waits behind the store for it."""
        now = time.monotonic()
        if not force and now - self._users_at < USERS_TTL:
            return
        self._users_at = now
        if force or self._users_stale:
            self._users_stale = False
            await self._read_users()
        elif self._users_task is None or self._users_task.done():
            task = self._users_task = asyncio.create_task(self._reread_users())
            self._late.add(task)
            task.add_done_callback(self._late.discard)

    async def _reread_users(self) -> None:
        try:
            await self._read_users()
        except Exception:
            log.exception("live: could not re-read the users")

    async def _read_users(self) -> None:
        users = await self.rt.store.list_users(include_inactive=True)
        self._by_id = {u.id: u for u in users if u.id is not None}
        self._by_ext = {ext: u for u in users for ext in u.extensions}

    def users_changed(self) -> None:
        """Re-read users (names, extensions) before the next event."""
        self._users_at = -1e9
        self._users_stale = True

    def _banner(self) -> dict[str, Any]:
        """Every user's banner: is any configured link down, and since when
        (``web.linkstate``)."""
        down = link_down(self.rt) if hasattr(self.rt, "extras") else None
        return {"down": down is not None, "down_since": down.since if down else None}

    def _link_json(
        self, status: Any, viewer: Viewer, banner: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        state = getattr(status, "state", None)
        banner = banner if banner is not None else self._banner()
        if viewer.role == "admin":
            return {**(jsonable(status) if status is not None else {}), "state": state, **banner}
        return {"state": state, **banner}

    def _render(self, name: str, locale: tuple[str, str, str] | None = None, **ctx: Any) -> str:
        """A row in one viewer's language, time zone and region (``Viewer.locale``)."""
        if self.env is None:
            return ""
        try:
            template = self._template(name)
            if locale is None:
                return template.render(ctx)
            with i18n.using(*locale):
                return template.render(ctx)
        except jinja2.TemplateError:
            log.exception("live: could not render %s", name)
            return ""

    def _template(self, name: str) -> jinja2.Template:
        """The template, asked of the environment at most once a second: asking checks
        the file's time on disk (so an edited template shows), once per row rendered."""
        assert self.env is not None
        now = time.monotonic()
        cached = self._templates.get(name)
        if cached is None or cached[0] < now:
            cached = self._templates[name] = (now + 1.0, self.env.get_template(name))
        return cached[1]


LIVE_HUB: web.AppKey[LiveHub] = web.AppKey("live_hub", LiveHub)


def hub_of(app: web.Application) -> LiveHub | None:
    return app.get(LIVE_HUB)
