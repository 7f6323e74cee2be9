"""Filters the store runs itself: the leads list, the missed-calls audit's filters, the
calls in progress; on both engines, plus SQLite query plans that show each one walks an
index (no full scan of calls or contacts)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crm.errors import InvalidInput
from crm.ingest import Ingest
from crm.models import Contact, Lead, MissedCallRow, PhoneNumber, User
from crm.services import CrmService
from crm.store import Store, open_store
from crm.store.sqlite import SqliteStore, _q

from .factories import T0, inbound, outbound

# -- leads -----------------------------------------------------------------------------


@dataclass
class Office:
    alice: User
    bob: User
    carol: User
    dave: User


async def _office(store: Store) -> Office:
    return Office(
        await store.add_user(User(None, "alice", "Alice", "rep", ["101"]), T0),
        await store.add_user(User(None, "bob", "Bob", "rep", ["102"]), T0),
        await store.add_user(User(None, "carol", "Carol", "rep", ["103"]), T0),
        await store.add_user(User(None, "dave", "Dave", "rep", ["104"]), T0),
    )


async def _contact(
    store: Store,
    name: str,
    status: str | None = None,
    source: str = "manual",
    owner: User | None = None,
    company: str = "",
    phone: str | None = None,
) -> Contact:
    lead = Lead(status, source, T0) if status else None  # type: ignore[arg-type]
    phones = [PhoneNumber(phone, phone)] if phone else []
    contact = Contact(None, name, company=company, owner_id=owner.id if owner else None,
                      phones=phones, lead=lead, created_at=T0, updated_at=T0)  # fmt: skip
    return await store.add_contact(contact)


@pytest.fixture
async def leads(store: Store) -> tuple[Office, dict[str, Contact]]:
    o = await _office(store)
    made = {}
    for name, status, source, owner, company, phone in (
        ("n1", "new", "inbound_call", o.alice, "Acme", "+14155550101"),
        ("cust1", None, "manual", None, "", None),
        ("c1", "contacted", "missed_call", None, "", "+14155550102"),
        ("q1", "qualified", "manual", o.bob, "Acme Ltd", None),
        ("x1", "converted", "inbound_call", o.alice, "", None),
        ("j1", "junk", "missed_call", None, "", None),
        ("n2", "new", "missed_call", o.bob, "", "+14155550103"),
        ("cust2", None, "manual", o.alice, "Acme", None),
        ("c2", "contacted", "import", o.alice, "", None),
        ("n3", "new", "import", None, "Zeta", None),
    ):
        made[name] = await _contact(store, name, status, source, owner, company, phone)
    gone = await _contact(store, "erased", "new")
    await store.erase_contact(gone.id or 0, T0)
    return o, made


def _names(items: list[Contact]) -> list[str]:
    return [c.name for c in items]


async def test_leads_by_status_in_id_order(
    service: CrmService, leads: tuple[Office, dict[str, Contact]]
) -> None:
    page = await service.list_leads(None, ["new"])
    assert _names(page.items) == ["n1", "n2", "n3"] and page.next_cursor is None
    page = await service.list_leads(None, "open")
    assert _names(page.items) == ["n1", "c1", "q1", "n2", "c2", "n3"]
    page = await service.list_leads(None, ["converted", "junk"])
    assert _names(page.items) == ["x1", "j1"]
    everything = await service.list_leads(None)
    assert _names(everything.items) == ["n1", "c1", "q1", "x1", "j1", "n2", "c2", "n3"]


async def test_leads_by_source_owner_and_scope(
    service: CrmService, leads: tuple[Office, dict[str, Contact]]
) -> None:
    o, _ = leads
    page = await service.list_leads(None, "open", source="missed_call")
    assert _names(page.items) == ["c1", "n2"]
    page = await service.list_leads(None, None, owner_id=o.alice.id)
    assert _names(page.items) == ["n1", "x1", "c2"]
    alice = await service.scope_for(o.alice)  # hers and the shared ones
    page = await service.list_leads(alice, "open")
    assert _names(page.items) == ["n1", "c1", "c2", "n3"]
    page = await service.list_leads(alice, ["qualified"])
    assert page.items == []


async def test_leads_search_by_text_and_number(
    service: CrmService, leads: tuple[Office, dict[str, Contact]]
) -> None:
    page = await service.list_leads(None, None, query="acme")
    assert _names(page.items) == ["n1", "q1"]  # cust2 is a customer, not a lead
    page = await service.list_leads(None, "open", query="(415) 555-0103")
    assert _names(page.items) == ["n2"]
    page = await service.list_leads(None, "open", query="5550102")
    assert _names(page.items) == ["c1"]


async def test_leads_keyset_pages(
    service: CrmService, leads: tuple[Office, dict[str, Contact]]
) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await service.list_leads(None, None, limit=3, cursor=cursor)
        seen += _names(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["n1", "c1", "q1", "x1", "j1", "n2", "c2", "n3"]
    _, made = leads
    page = await service.list_leads(None, "open", limit=2, cursor=str(made["q1"].id))
    assert _names(page.items) == ["n2", "c2"] and page.next_cursor == str(made["c2"].id)


async def test_leads_refuse_bad_input(service: CrmService, store: Store) -> None:
    for kwargs in ({"statuses": ["hot"]}, {"statuses": []}, {"source": "fax"},
                   {"cursor": "x"}, {"cursor": "-4"}):  # fmt: skip
        with pytest.raises(InvalidInput):
            await service.list_leads(None, **kwargs)  # type: ignore[arg-type]


# -- the missed-calls audit's filters --------------------------------------------------


@dataclass
class Missed:
    office: Office
    m1: int  # rang alice; callback owned by dave, closed by bob
    m2: int  # rang bob; abandoned on another line; task open, nobody's
    m3: int  # rang carol, who is the call's rep (final agent); busy; task open, hers
    m4: int  # withheld, rang dave: no callback task at all


@pytest.fixture
async def missed(store: Store, ingest: Ingest) -> Missed:
    o = await _office(store)
    await _contact(store, "Dave's customer", owner=o.dave, phone="+14155550201")

    async def one(**kw: Any) -> int:
        result = await ingest.handle(inbound(answered_by=None, **kw))
        return result.call.id  # type: ignore[union-attr,return-value]

    m1 = await one(caller="+14155550201", rang=("101",), at=T0)
    m2 = await one(caller="+14155550202", rang=("102",), did="5552000", outcome="abandoned",
                   at=T0 + 10)  # fmt: skip
    m3 = await one(caller="+14155550203", rang=("103",), outcome="busy", final_agent="103",
                   at=T0 + 20)  # fmt: skip
    await ingest.handle(inbound("+14155550204", answered_by="101", at=T0 + 30))  # not missed
    m4 = await one(caller=None, rang=("104",), did="5553000", at=T0 + 40)
    await ingest.handle(outbound("4155550201", "+14155550201", caller="102", at=T0 + 100))
    return Missed(o, m1, m2, m3, m4)


def _old_filter(row: MissedCallRow, exts: dict[int, set[str]], **f: Any) -> bool:
    """What the page used to apply in Python (``web.pages.missed`` before the store took
    the filters over): the oracle the SQL must agree with."""
    call = row.call
    if f.get("outcome") and call.outcome != f["outcome"]:
        return False
    if f.get("line") and (call.did or "") != f["line"]:
        return False
    if f.get("callback") and (row.task_status or "none") != f["callback"]:
        return False
    rep = f.get("rep_id")
    if rep is not None:
        ids = (call.user_id, row.owner_id, row.closed_by_user_id)
        if rep not in ids and not exts.get(rep, set()).intersection(call.rang):
            return False
    return True


async def _ids(service: CrmService, **f: Any) -> list[int]:
    page = await service.missed_calls_audit(limit=500, **f)
    return [r.call.id or 0 for r in page.items]


async def test_missed_filter_by_rep(service: CrmService, missed: Missed) -> None:
    o, m = missed.office, missed
    rows = (await service.missed_calls_audit(limit=500)).items
    assert {r.call.id: r.task_status or "none" for r in rows} == {
        m.m1: "closed", m.m2: "open", m.m3: "open", m.m4: "none"
    }
    assert await _ids(service, rep_id=o.alice.id) == [m.m1]  # rang
    assert await _ids(service, rep_id=o.bob.id) == [m.m2, m.m1]  # rang; called back
    assert await _ids(service, rep_id=o.carol.id) == [m.m3]  # the call's rep, task's owner
    assert await _ids(service, rep_id=o.dave.id) == [m.m4, m.m1]  # rang; owns the callback
    assert await _ids(service, rep_id=9999) == []


async def test_missed_filter_by_line_outcome_and_callback(
    service: CrmService, missed: Missed
) -> None:
    m = missed
    assert await _ids(service, line="5551000") == [m.m3, m.m1]
    assert await _ids(service, line="5552000") == [m.m2]
    assert await _ids(service, line="nope") == []
    assert await _ids(service, outcome="abandoned") == [m.m2]
    assert await _ids(service, outcome="busy") == [m.m3]
    assert await _ids(service, callback="open") == [m.m3, m.m2]
    assert await _ids(service, callback="closed") == [m.m1]
    assert await _ids(service, callback="none") == [m.m4]
    with pytest.raises(InvalidInput):
        await service.missed_calls_audit(outcome="answered")
    with pytest.raises(InvalidInput):
        await service.missed_calls_audit(callback="maybe")


async def test_missed_filters_agree_with_the_old_python_filter(
    service: CrmService, store: Store, missed: Missed
) -> None:
    users = await store.list_users(include_inactive=True)
    exts = {u.id or 0: set(u.extensions) for u in users}
    everything = (await service.missed_calls_audit(limit=500)).items
    reps = [None, *(u.id for u in users)]
    lines = [None, "5551000", "5552000", "5553000"]
    outcomes = [None, "missed", "abandoned", "busy"]
    callbacks = [None, "open", "closed", "none"]
    for rep, line, outcome, cb in itertools.product(reps, lines, outcomes, callbacks):
        f = {"rep_id": rep, "line": line, "outcome": outcome, "callback": cb}
        expected = [r.call.id for r in everything if _old_filter(r, exts, **f)]
        assert await _ids(service, **f) == expected, f


async def test_missed_filters_keep_keyset_pages(
    service: CrmService, missed: Missed
) -> None:
    m = missed
    for f, expected in (
        ({"rep_id": m.office.bob.id}, [m.m2, m.m1]),
        ({"callback": "open"}, [m.m3, m.m2]),
        ({}, [m.m4, m.m3, m.m2, m.m1]),
    ):
        seen: list[int] = []
        cursor = None
        while True:
            page = await service.missed_calls_audit(limit=1, cursor=cursor, **f)
            seen += [r.call.id or 0 for r in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected, f


async def test_missed_filters_within_a_scope_and_period(
    service: CrmService, missed: Missed
) -> None:
    o, m = missed.office, missed
    bob = await service.scope_for(o.bob)  # bob's and nobody's callbacks
    assert await _ids(service, scope=bob) == [m.m2]
    assert await _ids(service, scope=bob, rep_id=o.bob.id) == [m.m2]
    assert await _ids(service, scope=bob, callback="closed") == []
    assert await _ids(service, since=T0 + 5, until=T0 + 25, callback="open") == [m.m3, m.m2]


# -- calls in progress -----------------------------------------------------------------


async def test_live_calls_newest_first_since(store: Store) -> None:
    link = await store.ensure_pbx_link("office")
    for i, linkedid in enumerate(("a.1", "b.2", "c.3")):
        snapshot = {"progress": {"linkedid": linkedid}, "rung": []}
        assert await store.save_live_call(linkedid, link.id if i else None, snapshot, T0 + i)
    rows = await store.list_live_calls()
    assert [r.linkedid for r in rows] == ["c.3", "b.2", "a.1"]
    assert rows[0].snapshot["progress"] == {"linkedid": "c.3"}
    assert [r.linkedid for r in await store.list_live_calls(since=T0 + 1)] == ["c.3", "b.2"]
    assert [r.linkedid for r in await store.list_live_calls(limit=1)] == ["c.3"]
    await store.delete_live_call("c.3")
    assert [r.linkedid for r in await store.list_live_calls(since=T0 + 1)] == ["b.2"]


# -- query plans (SQLite) --------------------------------------------------------------


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = await open_store(f"sqlite:///{tmp_path / 'plan.db'}")
    assert isinstance(s, SqliteStore)
    try:
        yield s  # type: ignore[misc]
    finally:
        await s.close()


async def _plans(store: SqliteStore, monkeypatch: pytest.MonkeyPatch, run: Any) -> list[str]:
    """The query plan of every SELECT ``run`` sends, one line per plan step."""
    seen: list[tuple[str, tuple[Any, ...]]] = []
    conn = store._root_conn
    original = conn.fetch

    async def spy(sql: str, *args: Any) -> Any:
        seen.append((sql, args))
        return await original(sql, *args)

    monkeypatch.setattr(conn, "fetch", spy)
    # the managers' reads (the audit's rows) too, which otherwise go to the report readers
    monkeypatch.setattr(store, "_report", store._acquire)
    await run()
    monkeypatch.setattr(conn, "fetch", original)
    steps: list[str] = []
    for sql, args in seen:
        if "FROM calls" not in sql and "FROM contacts" not in sql and "live_calls" not in sql:
            continue  # phones, recordings, extensions: looked up by key
        async with store._db.execute("EXPLAIN QUERY PLAN " + _q(sql), args) as cur:
            steps += [row[3] for row in await cur.fetchall()]
    assert steps, "no query ran"
    return steps


def _no_full_scan(steps: list[str]) -> None:
    """Neither calls nor contacts (alias ``c``) read whole, nor walked by rowid range.
    (A number search by a run of digits scans the index of contact_phones, as the
    contacts search always has: a substring has no index.)"""
    for step in steps:
        words = step.split()
        if len(words) > 1 and words[1] in ("calls", "contacts", "c"):
            assert words[0] != "SCAN", steps
            assert "INTEGER PRIMARY KEY" not in step, steps


async def test_leads_query_walks_the_lead_index(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = CrmService(sqlite_store, _policy())
    alice = await sqlite_store.add_user(User(None, "alice", "Alice", "rep", ["101"]), T0)
    scope = await service.scope_for(alice)
    for kwargs in (
        {"statuses": ["new"]},
        {"statuses": "open", "source": "missed_call", "cursor": "7"},
        {"statuses": None, "query": "acme", "owner_id": alice.id},
        {"statuses": "open", "query": "+1 415 555 0101"},
    ):
        steps = await _plans(
            sqlite_store, monkeypatch, lambda kw=kwargs: service.list_leads(scope, **kw)
        )
        _no_full_scan(steps)
        assert any("USING" in s and "INDEX contacts_lead (lead_status=? AND id>?)" in s
                   for s in steps), steps  # fmt: skip


async def test_missed_query_walks_a_calls_index(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = CrmService(sqlite_store, _policy())
    alice = await sqlite_store.add_user(User(None, "alice", "Alice", "rep", ["101"]), T0)
    scope = await service.scope_for(alice)
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "calls_missed"),
        ({"rep_id": alice.id}, "calls_missed"),
        ({"callback": "closed", "scope": scope}, "calls_missed"),
        ({"callback": "none", "cursor": f"{T0!r}~5"}, "calls_missed"),
        ({"line": "5551000", "rep_id": alice.id}, "calls_missed_did"),
        ({"outcome": "busy", "callback": "open"}, "calls_outcome"),
    ]
    for kwargs, index in cases:
        steps = await _plans(
            sqlite_store,
            monkeypatch,
            lambda kw=kwargs: service.missed_calls_audit(T0 - 86400, T0 + 86400, **kw),
        )
        _no_full_scan(steps)
        assert steps[0].startswith(f"SEARCH calls USING INDEX {index} ("), (kwargs, steps)
        assert "started_at>? AND started_at<?" in steps[0], steps
        # newest first straight off the index: no sorting of the whole period
        assert not any("TEMP B-TREE" in s for s in steps), (kwargs, steps)


async def test_live_calls_query_uses_its_index(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = await _plans(sqlite_store, monkeypatch, lambda: sqlite_store.list_live_calls(T0))
    assert any("INDEX live_calls_updated (updated_at>?)" in s for s in steps), steps


def _policy() -> Any:
    from crm.policy import LeadPolicy

    return LeadPolicy(own_numbers=("5551000",))
