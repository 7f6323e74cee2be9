"""Call facts from the bridge into the CRM: one finished call -> one call row, matched to
a contact, possibly a new lead, possibly a callback task opened or closed; live updates
-> the event bus for screen pops.

Everything for one finished call happens in one transaction keyed by its link and
linkedid, so a replay or a resync after a reconnect updates the same row and never
double-counts, and two PBXes reporting the same linkedid keep a row each.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ami_bridge.facts import CallProgress, CallRecord, Fact, OriginateResult, PbxIncompatible

from . import leads
from .callbacks import CallbackChange, apply_call
from .eventjson import jsonable
from .events import Event, EventBus
from .models import Call, Contact, User
from .phones import normalize
from .policy import LeadPolicy
from .store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one CallRecord did; also the payload of the ``call_recorded`` event."""

    call: Call
    created: bool
    lead_created: Contact | None = None
    lead_reopened: bool = False
    callback: CallbackChange | None = None


@dataclass(frozen=True, slots=True)
class LiveCall:
    """A CallProgress with the contact the screen pop should name."""

    progress: CallProgress
    contact_id: int | None
    contact_name: str | None
    match_reason: str


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """What is kept of a call in progress (a ``live_calls`` row), for a deferred write."""

    linkedid: str
    pbx_link_id: int | None
    snapshot: dict[str, Any]
    at: float
    progress: CallProgress | None = None
    """Given, the snapshot's ``progress`` is made from it when it is written: most
    snapshots are replaced by a newer one, or dropped with their finished call, before
    their batch goes, and turning each into JSON was a quarter of the link's time."""

    def full(self) -> dict[str, Any]:
        """The snapshot as stored."""
        if self.progress is None:
            return self.snapshot
        return {"progress": jsonable(self.progress), **self.snapshot}


@dataclass(slots=True)
class _Pending:
    """A finished call worked out and not written yet (``Ingest._prepare``)."""

    rec: CallRecord
    call: Call
    existing: Call | None
    contact: Contact | None
    lead: Contact | None
    reopened: bool
    now: float


@dataclass(slots=True)
class LiveTrace:
    """What the ingest remembers of a call in progress beyond its latest progress."""

    started_at: float
    rung: set[str] = field(default_factory=set)
    answered_at: float | None = None


def _extensions(*values: str | Iterable[str] | None) -> frozenset[str]:
    out: set[str] = set()
    for value in values:
        if value is None:
            continue
        if isinstance(value, str):
            out.add(value)
        else:
            out.update(value)
    return frozenset(out)


class Ingest:
    def __init__(
        self,
        store: Store,
        policy: LeadPolicy,
        bus: EventBus | None = None,
        clock: Callable[[], float] = time.time,
        *,
        pbx_link_id: int | None = None,
        keep_live: bool = False,
    ) -> None:
        self.store = store
        self.policy = policy
        self.bus = bus or EventBus()
        self.clock = clock
        self.pbx_link_id = pbx_link_id
        """The link whose facts this ingest takes: stamped on every call it writes."""
        self.keep_live = keep_live
        """Persist the state of calls in progress (``live_calls``) so that the process
        taking the link over after this one dies can finish them (``crm.recovery``)."""
        self.defer_live: Callable[[LiveSnapshot], None] | None = None
        """Given (the link manager gives its holding sink's), the snapshots of calls in
        progress go out with the next batch of finished calls (``record_many``) instead
        of a transaction each: a busy PBX sends several per call, and the link must not
        wait on the database between two screen pops."""
        self._pops: OrderedDict[str, tuple[int | None, str | None, str]] = OrderedDict()
        self._seen: OrderedDict[str, LiveTrace] = OrderedDict()

    async def handle(self, fact: Fact) -> Ingested | LiveCall | None:
        if isinstance(fact, CallRecord):
            return await self.record(fact)
        if isinstance(fact, CallProgress):
            return await self.progress(fact)
        if isinstance(fact, OriginateResult):
            self.bus.publish(Event("originate_result", fact))
            return None
        if isinstance(fact, PbxIncompatible):
            # Nothing to store: the link's status carries it to the admin page and
            # /healthz; listeners hear it once.
            self.bus.publish(Event("pbx_incompatible", fact))
            return None
        raise TypeError(f"not a call fact: {type(fact).__name__}")

    # -- finished calls --------------------------------------------------------------
    async def record(self, rec: CallRecord) -> Ingested:
        """One finished call in its own transaction; its events once it is committed."""
        return await self._record(self.store, rec, self._publish_record)

    async def record_many(
        self, recs: Sequence[CallRecord], live: Sequence[LiveSnapshot] = ()
    ) -> list[Ingested]:
        """Several finished calls (and snapshots of calls in progress) in one transaction:
        all commit or none does, and the events go out after the commit.

        Each call is written by the same code as ``record`` (``_record``), joined to the
        batch's transaction, so a batch means exactly what the calls one by one would.  A
        busy link writes a few hundred calls per commit instead of one (``crm.batching``).
        The phone numbers are locked up front in sorted order, so two processes writing
        batches never each hold a number the other waits for.  What ``_record`` would ask
        the store call by call (is the call known, whose extension, which contacts have
        the number) is asked once for the batch (``_BatchLookups``), and the small writes
        it would make per call (last contact, ``live_calls``) are made once at its end.

        The batch is the store's ``in_transaction`` work: it must await nothing but the
        store (on SQLite it runs whole in the database's thread); what it publishes
        waits in ``done`` until it is back on the event loop."""
        done: list[Ingested] = []

        async def write(tx: Store) -> list[Ingested]:
            done.clear()  # a batch retried after a refusal publishes once
            numbers = {leads.remote_party(rec, self.policy)[0] for rec in recs}
            await tx.lock_numbers(n for n in numbers if n)
            finishing = {rec.linkedid for rec in recs}
            # A snapshot of a call this batch finishes would be deleted with its record.
            kept = [
                (s.linkedid, s.pbx_link_id, s.full(), s.at)
                for s in live
                if s.linkedid not in finishing or s.pbx_link_id != self.pbx_link_id
            ]
            if kept:
                await tx.save_live_calls(kept)
            batch = await _BatchLookups.load(
                tx,
                self.pbx_link_id,
                [rec.linkedid for rec in recs],
                [ext for rec in recs for ext in self._rep_extensions(rec)],
                [n for n in numbers if n],
            )
            if not batch.calls and len(finishing) == len(recs):
                results = await self._record_new(tx, recs, batch)
                done.extend(results)
            else:
                results = [await self._record(tx, rec, done.append, batch) for rec in recs]
            await batch.finish()
            return results

        results = await self.store.in_transaction(write)
        for result in done:
            self._publish_record(result)
        return results

    async def _record(
        self,
        store: Store,
        rec: CallRecord,
        publish: Callable[[Ingested], None],
        batch: _BatchLookups | None = None,
    ) -> Ingested:
        """The write of one finished call, in a transaction of ``store`` (its own on the
        root store, the batch's on a bound one); ``publish`` gets what it did unless it
        changed nothing.  ``batch``: the batch's lookups, in place of the store's."""
        async with store.transaction() as tx:
            look = batch if batch is not None else _Lookups(tx, self.pbx_link_id)
            remote = leads.remote_party(rec, self.policy)[0]
            if remote and batch is None:
                await tx.lock_number(remote)
            pending = await self._prepare(tx, rec, look, self.clock())
            if isinstance(pending, Ingested):
                return pending
            new = batch is not None and pending.existing is None
            pending.call = await tx.upsert_call(pending.call, pending.now, new=new)
            result = await self._finish(tx, pending, look)
        publish(result)
        return result

    async def _record_new(
        self, tx: Store, recs: Sequence[CallRecord], batch: _BatchLookups
    ) -> list[Ingested]:
        """A batch of calls none of which is stored yet: each worked out in order as
        ``_record`` would, their rows written together (``Store.insert_calls``), then
        each call's callback in order.  A call's callback sees the calls before it in
        the batch and not those after it (``later``), as one by one."""
        now = self.clock()
        pending: list[_Pending] = []
        for rec in recs:
            p = await self._prepare(tx, rec, batch, now)
            assert isinstance(p, _Pending), "a call not stored yet is always written"
            pending.append(p)
        calls = await tx.insert_calls([p.call for p in pending], now)
        for p, call in zip(pending, calls, strict=True):
            p.call = call  # with its ids
        ids = [c.id for c in calls if c.id is not None]
        return [await self._finish(tx, p, batch, later=ids[n + 1 :]) for n, p in enumerate(pending)]

    async def _prepare(
        self, tx: Store, rec: CallRecord, look: _Lookups, now: float
    ) -> _Pending | Ingested:
        """Everything about one finished call before its row is written: the rep, the
        contact (matched, reopened or made a lead), the row to write; an ``Ingested``
        when the call must not be written (erased, or the CDR's record stands)."""
        remote, reason = leads.remote_party(rec, self.policy)
        lead: Contact | None = None
        reopened = False
        existing = await look.call(rec.linkedid)
        if existing is not None and existing.match_reason == "erased":
            return Ingested(existing, created=False)  # never bring erased data back
        if existing is not None and (
            rec.source == "cdr" or (existing.source == "cdr" and not rec.complete)
        ):
            # A call backfilled from the PBX's CDR (crm.backfill) is written once:
            # what a link saw stands, and a partial view (a resync's) never replaces
            # the PBX's own record.
            return Ingested(existing, created=False)
        user = None
        for ext in self._rep_extensions(rec):
            user = await look.user(ext)
            if user is not None:
                break
        user_id = user.id if user is not None and user.active else None
        contact: Contact | None = None
        if existing is not None and existing.contact_id is not None:
            contact = await look.contact(existing.contact_id)
            if contact is not None and not contact.erased:
                reason = existing.match_reason
            else:
                contact = None
        if contact is None and remote:
            ids = await look.contact_ids(remote)
            if ids:
                contact = await look.contact(ids[0])
                reason = "unique" if len(ids) == 1 else f"most_recent_of_{len(ids)}"
        if contact is not None and leads.should_reopen(contact, rec, self.policy):
            assert contact.lead is not None
            contact.lead.status = "new"
            contact.lead.source = leads.lead_source(rec)
            contact.lead.created_at = rec.started_at
            contact.updated_at = now
            await tx.update_contact(contact)
            reopened = True
        if contact is None and remote and leads.wants_lead(rec, self.policy):
            owner = user_id if user_id is not None else self.policy.default_owner_id
            contact = await tx.add_contact(leads.new_lead(remote, rec, self.policy, owner, now))
            lead, reason = contact, "new_lead"
        call = Call.from_record(
            rec,
            remote_e164=remote,
            contact_id=contact.id if contact else None,
            user_id=user_id,
            match_reason=reason,
            pbx_link_id=self.pbx_link_id,
        )
        if contact is not None and contact.id is not None:
            await look.touch(contact.id, rec.started_at)
            if contact.last_contact_at is None or contact.last_contact_at < rec.started_at:
                contact.last_contact_at = rec.started_at
            look.remember(contact)
        return _Pending(rec, call, existing, contact, lead, reopened, now)

    async def _finish(
        self, tx: Store, p: _Pending, look: _Lookups, later: Sequence[int] = ()
    ) -> Ingested:
        """After the call's row is written: its ``live_calls`` row goes, its callback
        task opens, joins or closes (not seeing the calls ``later`` in its batch)."""
        look.written(p.call)
        if self.keep_live:
            await look.ended(p.rec.linkedid)
        owner = p.contact.owner_id if p.contact else None
        number = p.call.remote_e164
        change = await apply_call(
            tx,
            p.call,
            self.policy,
            owner,
            new=p.existing is None,
            later=later,
            none_open=not look.may_have_open_task(number),
        )
        if change is not None and change.kind != "closed" and number:
            look.task_opened(number)
        return Ingested(p.call, p.existing is None, p.lead, p.reopened, change)

    @staticmethod
    def _rep_extensions(rec: CallRecord) -> list[str]:
        """Who the call belongs to, best first: who ended up with an inbound call (or who
        answered it, when a transfer sent it out to an outside number), who dialled an
        outbound or internal one."""
        if rec.direction == "inbound":
            return [e for e in dict.fromkeys((rec.final_agent, rec.answered_by)) if e]
        return [rec.caller] if rec.caller else []

    def _publish_record(self, result: Ingested) -> None:
        call = result.call
        users = {call.user_id}
        if result.callback is not None:
            users.add(result.callback.task.owner_id)
        targets_ext = _extensions(call.rang, call.answered_by, call.final_agent)
        if call.direction != "inbound":
            targets_ext |= _extensions(call.caller)
        self.bus.publish(
            Event(
                "call_recorded",
                result,
                extensions=targets_ext,
                user_ids=frozenset(u for u in users if u is not None),
            )
        )
        if result.callback is not None:
            task = result.callback.task
            self.bus.publish(
                Event(
                    f"callback_{result.callback.kind}",
                    task,
                    user_ids=frozenset({task.owner_id} if task.owner_id is not None else ()),
                )
            )

    # -- live calls ------------------------------------------------------------------
    def needs_lookup(self, fact: CallProgress) -> bool:
        """Whether ``progress(fact)`` reads the store (the call's first fact): the link
        runs those side by side (``crm.lanes``)."""
        return fact.linkedid not in self._pops and self._pop_number(fact) is not None

    async def progress(self, fact: CallProgress) -> LiveCall:
        """Name the caller for the screen pop (one lookup per call, then cached)."""
        pop = self._pops.get(fact.linkedid)
        if pop is None:
            pop = await self._lookup(fact)
            self._pops[fact.linkedid] = pop
            while len(self._pops) > 1000:
                self._pops.popitem(last=False)
        if fact.state == "ended":
            self._pops.pop(fact.linkedid, None)
        live = LiveCall(fact, *pop)
        targets = _extensions(fact.ringing, fact.answered_by)
        if fact.direction != "inbound":
            targets |= _extensions(fact.caller)
        if fact.direction == "internal":
            targets |= _extensions(fact.callee)
        self.bus.publish(Event("call_progress", live, extensions=targets))
        if self.keep_live:
            await self._keep(fact)
        return live

    async def _keep(self, fact: CallProgress) -> None:
        """Persist what is known of the call so far (after the pop went out: a slow
        database must not delay the screen pop)."""
        trace = self._seen.get(fact.linkedid)
        if trace is None:
            trace = self._seen[fact.linkedid] = LiveTrace(started_at=fact.at)
            while len(self._seen) > 5000:
                self._seen.popitem(last=False)
        trace.rung.update(fact.ringing)
        if fact.answered_by and trace.answered_at is None:
            trace.answered_at = fact.at
        snapshot = {
            "started_at": trace.started_at,
            "rung": sorted(trace.rung),
            "answered_at": trace.answered_at,
        }
        if self.defer_live is not None:
            self.defer_live(
                LiveSnapshot(fact.linkedid, self.pbx_link_id, snapshot, fact.at, progress=fact)
            )
            if fact.state == "ended":
                self._seen.pop(fact.linkedid, None)
            return
        snapshot = {"progress": jsonable(fact), **snapshot}
        try:
            await self.store.save_live_call(fact.linkedid, self.pbx_link_id, snapshot, fact.at)
        except Exception:
            log.exception("could not keep the state of call %s", fact.linkedid)
        if fact.state == "ended":
            self._seen.pop(fact.linkedid, None)

    def _pop_number(self, fact: CallProgress) -> str | None:
        """The number the pop looks up (E.164), None when it reads nothing: an internal
        call, an unknown or own number is named without the store, so its facts need
        no lane of their own."""
        if fact.direction == "internal":
            return None
        number = fact.caller if fact.direction == "inbound" else fact.callee
        e164 = normalize(number, self.policy.default_region)
        if e164 is None or self.policy.is_own_number(e164):
            return None
        return e164

    async def _lookup(self, fact: CallProgress) -> tuple[int | None, str | None, str]:
        e164 = self._pop_number(fact)
        if e164 is None:
            return None, None, "internal" if fact.direction == "internal" else "none"

        # One statement: on a busy machine each trip to the database, not the lookup,
        # is what delays the pop.
        found = await self.store.contact_names_by_e164(e164)
        if not found:
            return None, None, "none"
        reason = "unique" if len(found) == 1 else f"most_recent_of_{len(found)}"
        return found[0][0], found[0][1], reason


def _copy(contact: Contact) -> Contact:
    """A contact whose changes do not reach the original (cheaper than ``deepcopy``)."""
    return dataclasses.replace(
        contact,
        tags=list(contact.tags),
        custom=copy.deepcopy(contact.custom) if contact.custom else {},
        phones=[dataclasses.replace(p) for p in contact.phones],
        lead=dataclasses.replace(contact.lead) if contact.lead is not None else None,
    )


class _Lookups:
    """What ``_record`` asks the store and the small writes it makes, one call at a
    time: a call written on its own (``Ingest.record``)."""

    def __init__(self, tx: Store, pbx_link_id: int | None) -> None:
        self.tx = tx
        self.pbx_link_id = pbx_link_id

    async def call(self, linkedid: str) -> Call | None:
        return await self.tx.get_call_by_linkedid(linkedid, self.pbx_link_id)

    async def user(self, extension: str) -> User | None:
        return await self.tx.user_for_extension(extension)

    async def contact(self, contact_id: int) -> Contact | None:
        return await self.tx.get_contact(contact_id)

    async def contact_ids(self, e164: str) -> list[int]:
        return await self.tx.contact_ids_by_e164(e164)

    def written(self, call: Call) -> None:
        """The call as now stored."""

    def may_have_open_task(self, e164: str | None) -> bool:
        """False only when the number surely has no open callback task."""
        return True

    def task_opened(self, e164: str) -> None:
        """A callback task of the number is open now."""

    def remember(self, contact: Contact) -> None:
        """The contact as now stored (made, reopened or touched)."""

    async def touch(self, contact_id: int, at: float) -> None:
        await self.tx.touch_contact(contact_id, at)

    async def ended(self, linkedid: str) -> None:
        await self.tx.delete_live_call(linkedid, self.pbx_link_id)


class _BatchLookups(_Lookups):
    """The same answers for a batch of calls, read once for the batch (``load``) and
    kept up to date with what its calls write, so each call sees what it would see
    after the earlier ones were written one by one; the small writes wait for
    ``finish``.  Contacts are handed out as copies: an event's contact does not change
    with a later call of the batch."""

    def __init__(
        self,
        tx: Store,
        pbx_link_id: int | None,
        calls: dict[str, Call],
        users: dict[str, User],
        contacts: dict[int, Contact],
        by_number: dict[str, list[int]],
        open_tasks: set[str],
    ) -> None:
        super().__init__(tx, pbx_link_id)
        self.open_tasks = open_tasks
        """The numbers that may have an open callback task: those that had one when the
        batch began, and those whose task a call of the batch opened or joined."""
        self.calls = calls
        self.users = users
        self.contacts = contacts
        self.by_number = by_number
        self.touched: dict[int, float] = {}
        self.finished: list[str] = []

    @classmethod
    async def load(
        cls,
        tx: Store,
        pbx_link_id: int | None,
        linkedids: Sequence[str],
        extensions: Iterable[str],
        numbers: Iterable[str],
    ) -> _BatchLookups:
        calls = await tx.calls_by_linkedids(linkedids, pbx_link_id)
        users = await tx.users_for_extensions(extensions)
        by_number = await tx.contact_ids_by_numbers(numbers)
        wanted = {i for ids in by_number.values() for i in ids}
        wanted.update(c.contact_id for c in calls.values() if c.contact_id is not None)
        contacts = await tx.contacts_by_ids(sorted(wanted))
        open_tasks = await tx.numbers_with_open_callbacks(by_number)
        return cls(tx, pbx_link_id, calls, users, contacts, by_number, open_tasks)

    async def call(self, linkedid: str) -> Call | None:
        return self.calls.get(linkedid)

    async def user(self, extension: str) -> User | None:
        return self.users.get(extension)

    async def contact(self, contact_id: int) -> Contact | None:
        found = self.contacts.get(contact_id)
        if found is None:
            found = await self.tx.get_contact(contact_id)
            if found is None:
                return None
            self.contacts[contact_id] = found
        return _copy(found)

    async def contact_ids(self, e164: str) -> list[int]:
        ids = self.by_number.get(e164)
        if ids is None:
            return await self.tx.contact_ids_by_e164(e164)

        def recent(i: int) -> tuple[bool, float, int]:  # as ``contact_ids_by_e164`` orders
            last = self.contacts[i].last_contact_at
            return last is None, -(last or 0.0), -i

        return sorted((i for i in ids if i in self.contacts), key=recent)

    def written(self, call: Call) -> None:
        self.calls[call.linkedid] = call

    def may_have_open_task(self, e164: str | None) -> bool:
        return e164 is not None and e164 in self.open_tasks

    def task_opened(self, e164: str) -> None:
        self.open_tasks.add(e164)

    def remember(self, contact: Contact) -> None:
        assert contact.id is not None
        self.contacts[contact.id] = _copy(contact)
        for phone in contact.phones:
            ids = self.by_number.get(phone.e164 or "")
            if ids is not None and contact.id not in ids and not contact.erased:
                ids.append(contact.id)

    async def touch(self, contact_id: int, at: float) -> None:
        self.touched[contact_id] = max(at, self.touched.get(contact_id, at))

    async def ended(self, linkedid: str) -> None:
        self.finished.append(linkedid)

    async def finish(self) -> None:
        """The small writes the batch's calls left for its end."""
        if self.touched:
            await self.tx.touch_contacts(self.touched)
        await self.tx.delete_live_calls(self.finished, self.pbx_link_id)
