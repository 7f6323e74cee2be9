"""The supervisor board's live state and its SSE fan-out (``GET /board/events``).

One ``BoardHub`` per web process follows the bus's ``presence`` events (from this
process's links, or from another process through ``crm.fanout``: the payloads are plain
JSON either way) and keeps the latest view of every rep and every queue.  A board that
opens is sent the whole state at once, then every change it may see:

* a manager sees their team's reps (by extension) and, in each queue, their team's
  members; an admin sees everyone;
* callers waiting are shown to every supervisor (they are the queue's, not a rep's);
* the other party of a rep's call is named (the contact) only when the viewer may see
  that contact (``crm.access``); the lookup is cached and never delays the state change:
  the name follows in a second message when it was not cached.

Each connection has a small bounded queue (oldest dropped): a slow browser never holds
the hub up.  ``received_at`` (when the link read the AMI event) rides along so the
benchmark and ``/metrics`` can tell how late a change reached the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crm.access import Scope, can_see_contact
from crm.events import Subscription
from crm.phones import normalize
from crm.presence import PRESENCE_EVENT

if TYPE_CHECKING:
    from crm.models import User

    from .runtime import Runtime

log = logging.getLogger(__name__)

CLIENT_QUEUE = 500
CONTACT_TTL = 30.0
USERS_TTL = 30.0


@dataclass(frozen=True)
class BoardViewer:
    user_id: int
    role: str
    scope: Scope
    extensions: frozenset[str] | None
    """The reps this viewer sees (None: everyone)."""

    def sees(self, extension: str | None) -> bool:
        return self.extensions is None or (extension is not None and extension in self.extensions)


@dataclass(eq=False)
class BoardClient:
    viewer: BoardViewer
    maxsize: int = CLIENT_QUEUE
    dropped: int = 0
    closed: bool = False
    _queue: deque[str] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, kind: str, data: Any) -> None:
        if self.closed:
            return
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(json.dumps({"kind": kind, "data": data}, separators=(",", ":")))
        self._wake.set()

    async def wait(self, timeout: float) -> list[str]:
        if not self._queue and not self.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
        self._wake.clear()
        out = list(self._queue)
        self._queue.clear()
        return out


class BoardHub:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.reps: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.wrapups: dict[str, float] = {}
        self.clients: set[BoardClient] = set()
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._contacts: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._names: dict[str, str] = {}
        self._users_at = -1e9
        self._users_lock = asyncio.Lock()
        self._by_id: dict[int, User] = {}
        self.delivered = 0

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._sub = self.rt.bus.subscribe(maxsize=10_000)
            # what the links reported before this hub listened (a link starts first)
            for payload in self.rt.presence.snapshot():
                self.apply(payload)
            self._task = asyncio.create_task(self._follow(), name="board-hub")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        for client in list(self.clients):
            client.closed = True
            client._wake.set()

    async def _follow(self) -> None:
        assert self._sub is not None
        while True:
            event = await self._sub.get()
            if event.kind != PRESENCE_EVENT or not isinstance(event.payload, dict):
                continue
            try:
                self.apply(event.payload)
            except Exception:
                log.exception("board: could not apply %r", event.payload)

    # -- viewers -------------------------------------------------------------------------
    async def viewer_for(self, user: User) -> BoardViewer:
        assert user.id is not None
        scope = await self.rt.service.scope_for(user)
        await self._refresh_users()
        if scope.unrestricted:
            exts: frozenset[str] | None = None
        else:
            ids = scope.user_ids or frozenset()
            exts = frozenset(
                e for uid in ids if (u := self._by_id.get(uid)) is not None for e in u.extensions
            )
        return BoardViewer(user.id, user.role, scope, exts)

    def connect(self, viewer: BoardViewer) -> BoardClient:
        client = BoardClient(viewer)
        self.clients.add(client)
        client.put("board", self.state_for(viewer))
        return client

    def disconnect(self, client: BoardClient) -> None:
        client.closed = True
        self.clients.discard(client)

    async def _refresh_users(self) -> None:
        async with self._users_lock:  # two boards opening at once wait for one read
            now = time.monotonic()
            if now - self._users_at < USERS_TTL:
                return
            users = await self.rt.store.list_users(include_inactive=True)
            self._by_id = {u.id: u for u in users if u.id is not None}
            self._names = {e: u.display_name for u in users if u.active for e in u.extensions}
            self._users_at = now

    def users_changed(self) -> None:
        """Re-read users (names, extensions, teams) before the next board opens."""
        self._users_at = -1e9

    # -- state ---------------------------------------------------------------------------
    def state_for(self, viewer: BoardViewer) -> dict[str, Any]:
        """Everything this viewer may see now (the first message and the page)."""
        reps = [self._rep_json(r, viewer) for e, r in sorted(self.reps.items()) if viewer.sees(e)]
        queues = [self._queue_json(q, viewer) for _, q in sorted(self.queues.items())]
        return {"now": self.rt.clock(), "reps": reps, "queues": queues}

    def apply(self, payload: dict[str, Any]) -> None:
        """One ``presence`` bus payload into the state and out to the boards."""
        if "rep" in payload:
            rep = dict(payload["rep"])
            rep["link"] = payload.get("link")
            rep["received_at"] = payload.get("received_at")
            ext = str(rep["extension"])
            self.reps[ext] = rep
            self._send_rep(ext)
            self._maybe_lookup(ext, rep)
        elif "queue" in payload:
            queue = dict(payload["queue"])
            queue["link"] = payload.get("link")
            queue["received_at"] = payload.get("received_at")
            name = str(queue["queue"])
            if not queue.get("exists", True):
                self.queues.pop(name, None)
            else:
                self.queues[name] = queue
            for client in list(self.clients):
                client.put("queue", self._queue_json(queue, client.viewer))
            self.delivered += len(self.clients)
        elif "wrapup" in payload:
            w = payload["wrapup"]
            ext = str(w.get("extension"))
            if w.get("until") is None:
                self.wrapups.pop(ext, None)
            else:
                self.wrapups[ext] = float(w["until"])
            if ext in self.reps:
                self._send_rep(ext)

    def _send_rep(self, ext: str) -> None:
        rep = self.reps[ext]
        for client in list(self.clients):
            if client.viewer.sees(ext):
                client.put("rep", self._rep_json(rep, client.viewer))
                self.delivered += 1

    def _rep_json(self, rep: dict[str, Any], viewer: BoardViewer) -> dict[str, Any]:
        out = dict(rep)
        ext = str(rep["extension"])
        out["user_name"] = self._names.get(ext)
        until = self.wrapups.get(ext)
        if until is not None and out.get("state") == "available" and until > self.rt.clock():
            out["state"] = "wrapup"
            out["wrapup_until"] = until
        call = out.get("call")
        if call:
            call = dict(call)
            call["contact"] = None
            number = call.get("other_number")
            cached = self._contacts.get(number) if number else None
            contact = cached[1] if cached else None
            if contact is not None and can_see_contact(viewer.scope, contact):
                call["contact"] = {
                    "id": contact.id,
                    "name": contact.name,
                    "url": f"/contacts/{contact.id}",
                }
            if call.get("direction") == "internal" and number in self._names:
                call["other_user"] = self._names[number]
            out["call"] = call
        return out

    def _queue_json(self, queue: dict[str, Any], viewer: BoardViewer) -> dict[str, Any]:
        out = dict(queue)
        members = [m for m in queue.get("members", []) if viewer.sees(m.get("extension"))]
        for m in members:
            m["user_name"] = self._names.get(str(m.get("extension")))
        out["members"] = members
        out["hidden_members"] = len(queue.get("members", [])) - len(members)
        return out

    # -- contact names -------------------------------------------------------------------
    def _maybe_lookup(self, ext: str, rep: dict[str, Any]) -> None:
        call = rep.get("call") or {}
        number = call.get("other_number")
        if not number or call.get("direction") == "internal":
            return
        cached = self._contacts.get(number)
        if cached is not None and cached[0] > time.monotonic():
            return
        self._contacts[number] = (time.monotonic() + CONTACT_TTL, cached[1] if cached else None)
        task = asyncio.ensure_future(self._lookup(ext, number))
        task.add_done_callback(_log_failure)

    async def _lookup(self, ext: str, number: str) -> None:
        region = self.rt.service.policy.default_region
        e164 = normalize(number, region)
        contact = None
        if e164 is not None and not self.rt.service.policy.is_own_number(e164):
            ids = await self.rt.store.contact_ids_by_e164(e164)
            contact = await self.rt.store.get_contact(ids[0]) if ids else None
        self._contacts[number] = (time.monotonic() + CONTACT_TTL, contact)
        while len(self._contacts) > 5000:
            self._contacts.popitem(last=False)
        rep = self.reps.get(ext)
        if contact is not None and rep and (rep.get("call") or {}).get("other_number") == number:
            self._send_rep(ext)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("board: contact lookup failed: %s", task.exception())
