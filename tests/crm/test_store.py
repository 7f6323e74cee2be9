"""The Store interface itself, on both engines."""

from __future__ import annotations

import asyncio

import pytest

from crm.models import AuditEntry, CallFilter, Contact, Lead, PhoneNumber, User
from crm.store import Store, migrate, open_store
from crm.store.migrations import migrations_for

from .factories import T0, inbound


def _contact(name: str, *numbers: str, last: float | None = None) -> Contact:
    return Contact(
        None,
        name,
        phones=[PhoneNumber(n, n) for n in numbers],
        created_at=T0,
        updated_at=T0,
        last_contact_at=last,
    )


async def test_migrations_applied_once(store: Store, store_url: str) -> None:
    latest = max(m.version for m in migrations_for(store.dialect))
    assert await store.schema_version() == latest
    # migrate() on an up-to-date database is a no-op, and opening again too
    assert await migrate(store_url) == latest
    again = await open_store(store_url)
    assert await again.schema_version() == latest
    await again.close()


async def test_users_and_extensions(store: Store) -> None:
    alice = await store.add_user(User(None, "alice", "Alice", "rep", ["101", "201"]), T0)
    assert alice.id is not None
    found = await store.user_for_extension("201")
    assert found is not None and found.username == "alice"
    assert found.extensions == ["101", "201"]
    alice.extensions = ["105"]
    alice.active = False
    await store.update_user(alice)
    assert await store.user_for_extension("101") is None
    assert await store.list_users() == []
    assert [u.username for u in await store.list_users(include_inactive=True)] == ["alice"]


async def test_contact_roundtrip_and_e164_order(store: Store) -> None:
    old = await store.add_contact(_contact("Old", "+14155550100", last=T0 - 1000))
    new = await store.add_contact(_contact("New", "+14155550100", last=T0))
    never = await store.add_contact(_contact("Never", "+14155550100"))
    assert await store.contact_ids_by_e164("+14155550100") == [new.id, old.id, never.id]
    await store.touch_contact(never.id or 0, T0 + 5)
    await store.touch_contact(never.id or 0, T0 - 5)  # never moves backwards
    ids = await store.contact_ids_by_e164("+14155550100")
    assert ids[0] == never.id
    got = await store.get_contact(never.id or 0)
    assert got is not None and got.last_contact_at == T0 + 5


async def test_contact_fields_roundtrip(store: Store) -> None:
    c = _contact("Ann", "+14155550111")
    c.tags, c.custom, c.lead = ["vip", "x"], {"size": 5, "note": "ü"}, Lead("new", "import", T0)
    c = await store.add_contact(c)
    got = await store.get_contact(c.id or 0)
    assert got == c


async def test_search(store: Store) -> None:
    a = await store.add_contact(_contact("Maria Garcia", "+14155550102"))
    a.company = "ACME Corp"
    await store.update_contact(a)
    await store.add_contact(_contact("John Smith", "+442079460958"))
    assert [c.name for c in await store.search_contacts(text="garc")] == ["Maria Garcia"]
    assert [c.name for c in await store.search_contacts(text="acme")] == ["Maria Garcia"]
    assert [c.name for c in await store.search_contacts(e164="+442079460958")] == ["John Smith"]
    assert [c.name for c in await store.search_contacts(digits="79460")] == ["John Smith"]


async def test_calls_keyset_pagination(store: Store) -> None:
    from crm.models import Call

    for i in range(25):
        rec = inbound(f"+1415555{i:04d}", at=T0 + (i // 2))  # pairs share started_at
        await store.upsert_call(Call.from_record(rec, remote_e164=rec.caller), T0)
    seen: list[int] = []
    cursor = None
    while True:
        page = await store.list_calls(CallFilter(), limit=7, cursor=cursor)
        seen.extend(c.id or 0 for c in page)
        if len(page) < 7:
            break
        cursor = (page[-1].started_at, page[-1].id or 0)
    assert len(seen) == 25 and len(set(seen)) == 25
    keys = [(c.started_at, c.id) for c in await store.list_calls(CallFilter(), limit=100)]
    assert keys == sorted(keys, reverse=True)


async def test_transaction_rolls_back(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.add_contact(_contact("Ghost", "+14155550177"))
            raise RuntimeError("boom")
    assert await store.contact_ids_by_e164("+14155550177") == []


async def test_audit_log_is_append_only_in_the_database(store: Store) -> None:
    entry = await store.append_audit(AuditEntry(None, T0, "alice", "recording.played", "call:1"))
    assert entry.id is not None
    from crm.store.sql import SqlStore

    assert isinstance(store, SqlStore)
    for sql in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"):
            async with store._use() as conn:
                await conn.execute(sql)
    [got] = await store.list_audit()
    assert got.actor == "alice"


async def test_the_screen_pops_reads_do_not_wait_behind_a_write_transaction(
    store: Store,
) -> None:
    """While a write transaction is open (a batch of finished calls, say), the lookups
    a screen pop makes (who calls, the contact, the last call, the open callback, the
    users) answer from the last commit instead of waiting for it to end (SQLite: a
    second connection; PostgreSQL: the pool's)."""
    known = await store.add_contact(_contact("Known", "+14155550100", last=T0))
    assert known.id is not None
    async with store.transaction() as tx:
        await tx.add_contact(_contact("Uncommitted", "+14155550100", last=T0 + 10))
        reads = asyncio.gather(
            store.contact_ids_by_e164("+14155550100"),
            store.get_contact(known.id),
            store.list_calls(CallFilter(contact_id=known.id), 1),
            store.open_callback_for_number("+14155550100"),
            store.list_users(include_inactive=True),
        )
        ids, contact, calls, callback, users = await asyncio.wait_for(reads, 10)
        assert ids == [known.id], "the open transaction's contact is not seen yet"
        assert contact is not None and contact.name == "Known"
        assert calls == [] and callback is None and users == []
    assert len(await store.contact_ids_by_e164("+14155550100")) == 2
