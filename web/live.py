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
  viewer who may see them (``CallDisplay.view_json``, ``web.live_display``): a rep whose
  phone rings for another rep's customer gets the number and a "known contact of another
  rep" marker, nothing more;
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

This module is the hub itself (events in, decisions, delivery); its parts live beside it:
``web.live_json`` (calls and callbacks as JSON), ``web.live_streams`` (one browser's
stream: ``Viewer``, ``Client``, ``Flusher``), ``web.live_state`` (a call in progress and
who may see it), ``web.live_details`` (the caller lookups, users and contacts) and
``web.live_display`` (what a pop or row says to each viewer).  Every name other modules
imported from here before the split still is (``__all__``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import web

from ami_bridge.facts import CallProgress
from crm.access import can_see_call, can_see_callback, can_see_contact
from crm.eventjson import from_jsonable
from crm.events import Event, Subscription
from crm.models import Call, CallbackTask, Contact, LiveCallRow, User
from crm.originate_relay import RELAY_KINDS
from crm.phones import normalize

from . import i18n
from .linkstate import link_down
from .live_details import INFO_TTL, USERS_TTL, CallerDetails
from .live_display import CallDisplay
from .live_json import call_json, jsonable, remote_number, task_json
from .live_state import LiveState, lane_of, shows_pop, view_of
from .live_streams import (
    CLIENT_QUEUE,
    FLUSH_WINDOW,
    Audience,
    Client,
    Flusher,
    Viewer,
    message_line,
    sse_frame,
)

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = [  # what other modules and tests import from here, as before the split
    "CLIENT_QUEUE",
    "ENDED_MEMORY",
    "FLUSH_WINDOW",
    "HEARTBEAT_SECONDS",
    "INFO_BUDGET",
    "INFO_TTL",
    "LIVE_HUB",
    "SEED_LIMIT",
    "STALE_CALL_SECONDS",
    "USERS_TTL",
    "Audience",
    "CallDisplay",
    "CallerDetails",
    "Client",
    "Flusher",
    "LiveHub",
    "LiveState",
    "Viewer",
    "call_json",
    "hub_of",
    "jsonable",
    "lane_of",
    "message_line",
    "remote_number",
    "sse_frame",
    "task_json",
    "view_of",
]

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
INFO_BUDGET = 0.12
"""Seconds the first event of a call may wait for the caller lookup; a slower lookup
sends the pop without the details and an update when they arrive."""
STALE_CALL_SECONDS = 6 * 3600.0
SEED_LIMIT = 500
"""Calls in progress read from the store per seeding (a PBX has far fewer up at once)."""
ENDED_MEMORY = 2000
"""Linkedids of calls that ended recently: a seed must not bring one back from a
``live_calls`` row that its ingest has not deleted yet."""


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
        self._audiences: dict[Viewer, Audience] = {}
        """The connections of each distinct viewer (a user's tabs): every message is
        decided, encoded and handed over once per audience, not per connection."""
        self._by_ext: dict[str, set[Audience]] = {}
        """Audiences by the extensions they may be concerned by (their own phones, and
        a manager's team's): a call is offered only to the audiences its extensions
        lead to, plus ``_everything`` and those told of it (``_told``)."""
        self._everything: set[Audience] = set()
        """Audiences that list every call (an admin's)."""
        self._managers: set[Audience] = set()
        """Managers' audiences: they also list a call that concerns no extension yet."""
        self._told: dict[str, set[Audience]] = {}
        """Audiences told of a call (``Audience.calls``) by linkedid: they hear how it ends."""
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._late: set[asyncio.Task[None]] = set()
        self.details = CallerDetails(rt, self.region, self._late)
        """The caller lookups, and the users and contacts they name."""
        self.display = CallDisplay(env, self.region, self.details)
        """What each viewer's pop or row of a call says."""
        self._lanes: dict[str, deque[Event]] = {}
        self.flusher = Flusher()
        """Writes the messages of connections whose handler waits (``Client.attach``)."""
        self.flusher.observe = self._observe
        """Events waiting for their turn, by the call they are about (``dispatch``)."""
        self._ended: OrderedDict[str, None] = OrderedDict()
        self.handled = 0

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
        self._by_ext.clear()
        self._everything.clear()
        self._managers.clear()
        self._audiences.clear()
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
        key = lane_of(event)
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
        await self.details.refresh_users()
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
        contact = await self.details.contact(ids[0])
        reason = "unique" if len(ids) == 1 else f"most_recent_of_{len(ids)}"
        return ids[0], contact.name if contact else None, reason

    # -- connections -------------------------------------------------------------------
    async def viewer_for(self, user: User) -> Viewer:
        assert user.id is not None
        scope = await self.rt.service.scope_for(user)
        if scope.unrestricted:
            watch: frozenset[str] | None = None
        else:
            await self.details.refresh_users()
            ids = scope.user_ids or frozenset()
            watch = frozenset(
                ext for uid in ids if (u := self.details.by_id.get(uid)) for ext in u.extensions
            ) | frozenset(user.extensions)
        locale = (i18n.CURRENT_LANGUAGE.get(), i18n.CURRENT_TIMEZONE.get(),
                  i18n.CURRENT_REGION.get())  # the /events request's (web.language)  # fmt: skip
        return Viewer(user.id, user.role, frozenset(user.extensions), scope, watch, locale)

    def connect(self, viewer: Viewer) -> Client:
        """A new SSE connection; it gets the calls in progress that concern it at once
        (so a pop survives moving to another page) and the PBX link state."""
        audience = self._audience(viewer)
        client = Client(audience.viewer)
        audience.add(client)
        self.clients.add(client)
        self._sweep()
        for st in list(self.calls.values()):
            self._offer(st, (audience,), only=client)
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
            audience = self._audiences.get(client.viewer)
            if audience is not None:
                audience.remove(client)
                if not len(audience):
                    self._unindex(audience)

    def _audience(self, viewer: Viewer) -> Audience:
        """The audience of equal viewers (the tabs of one user), indexed when new: the
        hub's per-viewer lookups then compare by identity."""
        audience = self._audiences.get(viewer)
        if audience is None:
            audience = self._audiences[viewer] = Audience(viewer, self.flusher)
            if viewer.watch is None:
                self._everything.add(audience)
            elif viewer.role == "manager":
                self._managers.add(audience)
            for ext in viewer.extensions | (viewer.watch or frozenset()):
                self._by_ext.setdefault(ext, set()).add(audience)
        return audience

    def _unindex(self, audience: Audience) -> None:
        """Its last connection left."""
        v = audience.viewer
        if self._audiences.get(v) is audience:
            del self._audiences[v]
        self._everything.discard(audience)
        self._managers.discard(audience)
        for ext in v.extensions | (v.watch or frozenset()):
            group = self._by_ext.get(ext)
            if group is not None:
                group.discard(audience)
                if not group:
                    del self._by_ext[ext]
        for linkedid in audience.calls:
            told = self._told.get(linkedid)
            if told is not None:
                told.discard(audience)
                if not told:
                    del self._told[linkedid]

    def _concerned(self, st: LiveState) -> set[Audience]:
        """The audiences a change of ``st`` may concern (``view_of`` decides): those
        whose own or watched extensions it involves, every admin, every manager while
        it involves no extension, and those already told of it."""
        out = set(self._everything)
        audience = st.audience
        if not audience:
            out |= self._managers
        by_ext = self._by_ext
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
                can_open = self.display.can_open(viewer, st)
                out.append({**self.display.view_json(viewer, st, can_open), "me": me, "pop": pop,
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
            for audience in list(self._audiences.values()):
                if audience.viewer.user_id in event.user_ids:
                    audience.put_line(line)
        elif kind == "link_status":
            banner = self._banner()  # once per event, not per connection
            by_role: dict[bool, str] = {}
            for audience in list(self._audiences.values()):
                admin = audience.viewer.role == "admin"
                if admin not in by_role:
                    by_role[admin] = message_line(
                        kind, self._link_json(event.payload, audience.viewer, banner)
                    )
                audience.put_line(by_role[admin])
        elif kind == "streams_close":
            self.close_streams(event.payload)
        elif kind == "originate_result":
            return  # the rep hears about their click through click_progress
        elif kind in RELAY_KINDS:
            return  # work between processes (originate_request...), never for a browser
        else:
            line = message_line(kind, jsonable(event.payload))
            for audience in list(self._audiences.values()):
                v = audience.viewer
                if event.targeted:
                    if v.extensions & event.extensions or v.user_id in event.user_ids:
                        audience.put_line(line)
                elif v.supervisor:
                    audience.put_line(line)

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
        owed = self._fold(st, payload)
        if owed is not None and not owed:
            return
        await self.details.refresh_users()
        if st.progress.state != "ended" and st.info is None:
            await self._await_info(st)
        if owed is None:
            self._broadcast(st)
            st.popped |= shows_pop(st)
            st.owed.clear()
        else:  # only the reps whose pop the next change would not show
            self._offer(st, self._own_phones(owed))
            st.popped |= owed
        if st.progress.state == "ended":
            self._forget(st.linkedid)

    def _fold(self, st: LiveState, payload: Any) -> frozenset[str] | None:
        """Whether a later change of the call already waits in its lane (``dispatch``):
        changes that arrived together (one read from the PBX, or while the hub was busy)
        then go out as one message, the last one, which says everything the browser
        shows (the state is kept from every change: who was rung, when it was
        answered).  The end of a call is never folded: it closes the pops and rows.

        None: this change goes to everyone it concerns.  Else it is folded, and the set
        names the extensions it still goes to: a rep's pop is never folded away.  Those
        this change shows the pop to that no message showed it to yet are owed it
        (``LiveState.owed``): the next change owes it to those it shows it to as well
        (checked again when it comes, against the change after it), this one is sent
        now to the others (the call rang and ended at once, somebody else answered)."""
        if st.progress.state == "ended":
            return None
        lane = self._lanes.get(st.linkedid)
        if not (
            lane is not None
            and len(lane) > 1
            and lane[0].payload is payload  # handled from its lane, not directly
            and lane[1].kind == "call_progress"
        ):
            return None
        later = getattr(lane[1].payload, "progress", lane[1].payload)
        if not isinstance(later, CallProgress):
            return None
        owed = (shows_pop(st) | st.owed) - st.popped
        if not owed:
            return frozenset()
        st.owed = owed & shows_pop(st, later)
        return frozenset(owed - st.owed)

    def _own_phones(self, extensions: frozenset[str]) -> set[Audience]:
        """The audiences of the reps whose own phones are ``extensions``."""
        out: set[Audience] = set()
        for ext in extensions:
            for audience in self._by_ext.get(ext, ()):
                if audience.viewer.extensions & extensions:
                    out.add(audience)
        return out

    def _broadcast(self, st: LiveState) -> None:
        """Offer a change of ``st`` to the connections it may concern."""
        self._offer(st, self._concerned(st))

    def _offer(
        self, st: LiveState, audiences: Iterable[Audience], only: Client | None = None
    ) -> None:
        """Give each of ``audiences`` the call as it now sees it, if it lists the call or
        was told of it (then it hears that it no longer lists it): one decision
        (``view_of``), one encoded line and one hand-over per audience, however many
        tabs it has (``Audience``).  ``only``: a new connection of the (one) audience
        gets the call alone (``connect``)."""
        linkedid = st.linkedid
        listing: list[Audience] = []
        unlisting: list[Audience] = []
        for audience in audiences:
            viewer = audience.viewer
            me, pop, listed = view_of(viewer, st)
            if listed:
                listing.append(audience)
            elif linkedid in audience.calls and only is None:
                unlisting.append(audience)
            else:
                continue
            line = self.display.line(viewer, st, me, pop, listed)
            if only is not None:
                only.put_line(line)
            elif pop == me == "ringing" and linkedid not in audience.popped:
                audience.popped.add(linkedid)  # the pop's latency is measured from its event
                audience.put_line(line, st.progress.received_at)
            else:
                audience.put_line(line)
        if listing:
            for audience in listing:
                audience.calls.add(linkedid)
            self._told.setdefault(linkedid, set()).update(listing)
        if unlisting:
            group = self._told.get(linkedid)
            for audience in unlisting:
                audience.calls.discard(linkedid)
                if group is not None:
                    group.discard(audience)
            if group is not None and not group:
                del self._told[linkedid]

    def _observe(self, stamps: list[float]) -> None:
        """The pops the hub wrote to browsers itself are delivered (``Flusher``, after
        the writes, so the figures never hold up a write)."""
        metrics = getattr(self.rt, "metrics", None)
        if metrics is not None:
            metrics.observe_pops(stamps)

    def _forget(self, linkedid: str) -> None:
        self._ended[linkedid] = None
        self._ended.move_to_end(linkedid)
        while len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)
        st = self.calls.pop(linkedid, None)
        if st is not None and st.info_task is not None and not st.info_task.done():
            st.info_task.cancel()
        self._told.pop(linkedid, None)
        for audience in self._audiences.values():
            audience.calls.discard(linkedid)
            audience.popped.discard(linkedid)

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
        self.details.drop_info(call.contact_id, call.remote_e164)
        await self.details.refresh_users()
        change = getattr(payload, "callback", None)
        task = change.task if change is not None and change.kind in ("opened", "joined") else None
        contact = await self.details.contact(call.contact_id)
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
        self._send_rows(
            "call_recorded",
            base,
            lambda scope: can_see_call(scope, call, task),
            contact,
            "_call_row.html",
            call=call,
            rep=self.details.by_id.get(call.user_id) if call.user_id else None,
        )

    async def _on_callback(self, kind: str, task: Any) -> None:
        if not isinstance(task, CallbackTask):
            return
        self.details.drop_info(task.contact_id, task.number_e164)
        await self.details.refresh_users()
        contact = await self.details.contact(task.contact_id)
        data = {"kind": kind.removeprefix("callback_"), "task": task_json(task, self.rt.clock())}
        self._send_rows(
            kind,
            data,
            lambda scope: can_see_callback(scope, task),
            contact,
            "_callback_row.html" if task.status == "open" else None,  # closed: no row
            task=task,
            owner=self.details.by_id.get(task.owner_id) if task.owner_id else None,
            now=self.rt.clock(),
        )

    def _send_rows(
        self,
        kind: str,
        data: dict[str, Any],
        sees: Callable[[Any], bool],
        contact: Contact | None,
        template: str | None,
        **values: Any,
    ) -> None:
        """Send ``data`` with a list row (a recorded call, a callback: ``template`` with
        ``values``; none without a template) to every viewer who ``sees`` it: one decision
        per viewer and one encoding per kind of row (may they open the contact, their
        locale), as for the pops."""
        lines: dict[tuple[bool, tuple[str, str, str]], str] = {}
        for audience in list(self._audiences.values()):
            viewer = audience.viewer
            scope = viewer.scope
            if not sees(scope):
                continue
            can_open = contact is not None and can_see_contact(scope, contact)
            row_key = (can_open, viewer.locale)
            line = lines.get(row_key)
            if line is None:
                row = None
                if template is not None:
                    row = self.display.render(
                        template,
                        viewer.locale,
                        contact=contact,
                        can_open_contact=can_open,
                        **values,
                    )
                line = lines[row_key] = message_line(kind, {**data, "row_html": row})
            audience.put_line(line)

    async def _await_info(self, st: LiveState) -> None:
        """Wait up to ``info_budget`` for the caller's details, once per call; a slower
        lookup finishes in the background and sends an update."""
        if st.info_task is not None:
            return
        st.info_task = asyncio.ensure_future(self.details.lookup(st))
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

    def users_changed(self) -> None:
        """Re-read users (names, extensions) before the next event."""
        self.details.users_changed()

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


LIVE_HUB: web.AppKey[LiveHub] = web.AppKey("live_hub", LiveHub)


def hub_of(app: web.Application) -> LiveHub | None:
    return app.get(LIVE_HUB)
