"""The caller's details a screen pop shows (``web.live``): the contact, its last call
and open callback, looked up once per call and cached, with the users (names,
extensions) and contacts the hub names; kept apart from the hub that delivers them."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ami_bridge.facts import iso_utc
from crm.models import Call, CallbackTask, CallFilter, Contact, User
from crm.phones import normalize

from .live_json import remote_number, task_json
from .live_state import LiveState

if TYPE_CHECKING:
    from crm.store import Store

    from .runtime import Runtime

log = logging.getLogger(__name__)

INFO_TTL = 20.0
USERS_TTL = 30.0


async def _caller_reads(
    store: Store, *, contact_id: int | None, e164: str | None
) -> tuple[Contact | None, list[Call], CallbackTask | None]:
    """What a pop's details read (the contact, its or the number's last call, the
    number's open callback), as one piece of work on the store's pop reader
    (``Store.pop_read``): one hop to its thread, not one a statement."""
    contact = await store.get_contact(contact_id) if contact_id is not None else None
    if contact is not None and not contact.erased:
        calls = await store.list_calls(CallFilter(contact_id=contact.id), 1)
    elif e164:
        calls = await store.list_calls(CallFilter(number_e164=e164), 1)
    else:
        calls = []
    task = await store.open_callback_for_number(e164) if e164 else None
    return contact, calls, task


class CallerDetails:
    """The caller lookups of one hub, and the users and contacts they name (cached)."""

    def __init__(self, rt: Runtime, region: str, late: set[asyncio.Task[None]]) -> None:
        self.rt = rt
        self.region = region
        self._late = late
        """The hub's background tasks (it cancels them when it closes)."""
        self._users_at = -1e9
        self._users_stale = True
        """The next read of the users is waited for (first use, ``users_changed``)."""
        self._users_task: asyncio.Task[None] | None = None
        self.by_id: dict[int, User] = {}
        self.by_ext: dict[str, User] = {}
        self._info_cache: OrderedDict[tuple[int | None, str | None], tuple[float, dict[str, Any]]]
        self._info_cache = OrderedDict()
        self.contacts: OrderedDict[int, tuple[float, Contact | None]] = OrderedDict()
        self._fetching: dict[tuple[int | None, str | None], asyncio.Future[dict[str, Any]]] = {}
        """Caller lookups under way, by (contact, number): one fetch for calls alike."""
        self._info_epoch = 0
        self._contact_batch: dict[int, asyncio.Future[Contact | None]] | None = None
        """Contacts asked for in this turn of the loop, read at its end (``_read_contact``)."""

    def _number_e164(self, st: LiveState) -> str | None:
        p = st.progress
        if p.direction == "internal":
            return None
        return normalize(remote_number(p.direction, p.caller, p.callee), self.region)

    async def lookup(self, st: LiveState) -> dict[str, Any]:
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
        if self._info_epoch == epoch:  # nothing changed meanwhile (``drop_info``)
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
        contact, calls, task = await self.rt.store.pop_read(
            functools.partial(_caller_reads, contact_id=contact_id, e164=e164)
        )
        if contact is not None and contact.erased:
            contact = None
        if contact_id is not None:
            self._keep_contact(contact_id, contact)
        info: dict[str, Any] = {}
        if contact is not None:
            owner = self.by_id.get(contact.owner_id) if contact.owner_id else None
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
        if calls:
            last = calls[0]
            rep = self.by_id.get(last.user_id) if last.user_id else None
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
        if task is not None:
            owner = self.by_id.get(task.owner_id) if task.owner_id else None
            info["open_callback"] = {
                **task_json(task, self.rt.clock()),
                "owner": owner.display_name if owner else None,
            }
        return info

    def drop_info(self, contact_id: int | None, e164: str | None) -> None:
        for key in [k for k in self._info_cache if k[0] == contact_id or k[1] == e164]:
            if key[0] is not None or key[1] is not None:
                self._info_cache.pop(key, None)
        self._info_epoch += 1  # a lookup under way now is not cached
        for key in [k for k in self._fetching if k[0] == contact_id or k[1] == e164]:
            if key[0] is not None or key[1] is not None:
                del self._fetching[key]  # the next call looks again
        if contact_id is not None:
            self.contacts.pop(contact_id, None)

    async def contact(self, contact_id: int | None, fresh: bool = False) -> Contact | None:
        if contact_id is None:
            return None
        now = time.monotonic()
        cached = self.contacts.get(contact_id)
        if cached is not None and cached[0] > now and not fresh:
            return cached[1]
        if fresh:  # the pop's details: on the store's reader, now (not behind a batch)
            contact = await self.rt.store.get_contact(contact_id)
        else:
            contact = await asyncio.shield(self._read_contact(contact_id))
        if contact is not None and contact.erased:
            contact = None
        self._keep_contact(contact_id, contact, now)
        return contact

    def _keep_contact(
        self, contact_id: int, contact: Contact | None, now: float | None = None
    ) -> None:
        self.contacts[contact_id] = ((now or time.monotonic()) + INFO_TTL, contact)
        while len(self.contacts) > 2000:
            self.contacts.popitem(last=False)

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

    async def refresh_users(self, force: bool = False) -> None:
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
        self.by_id = {u.id: u for u in users if u.id is not None}
        self.by_ext = {ext: u for u in users for ext in u.extensions}

    def users_changed(self) -> None:
        """Re-read users (names, extensions) before the next event."""
        self._users_at = -1e9
        self._users_stale = True
