"""The screen pop's details read together (``Store.pop_read``): the contact, its last
call and the number's open callback on one of the pop's readers, in one hop to its
thread on SQLite (stop 24: at 10x a pop's details were a pool use and a thread trip per
statement, and the three readers were held most of the run).  The answers must be what
each read gives alone, and the reads must not wait behind a write."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from crm.models import Contact, PhoneNumber
from crm.store import Store, open_store

from .factories import T0

ONE = "+14155550101"


async def _contact(store: Store) -> Contact:
    return await store.add_contact(
        Contact(None, "Acme", phones=[PhoneNumber(ONE, ONE)], created_at=T0, updated_at=T0,
                last_contact_at=T0)
    )  # fmt: skip


async def _reads(store: Store, contact_id: int) -> tuple[Any, ...]:
    return (
        await store.get_contact(contact_id),
        await store.contact_names_by_e164(ONE),
        await store.open_callback_for_number(ONE),
    )


async def test_the_pop_reads_together_answer_as_each_read_alone(store: Store) -> None:
    contact = await _contact(store)
    assert contact.id is not None
    together = await store.pop_read(lambda s: _reads(s, contact.id or 0))
    assert together == await _reads(store, contact.id)
    assert together[0].name == "Acme" and together[1] == [(contact.id, "Acme")]


async def test_work_that_waits_for_something_else_still_gets_its_answer(store: Store) -> None:
    contact = await _contact(store)

    async def work(s: Store) -> Contact | None:
        await asyncio.sleep(0)  # not the store: SQLite cannot run it in the reader's thread
        return await s.get_contact(contact.id or 0)

    got = await store.pop_read(work)
    assert got is not None and got.name == "Acme"


async def test_the_pop_reads_do_not_wait_behind_a_write(tmp_path: Path) -> None:
    """SQLite's writer is one connection behind a lock (a batch of finished calls holds it
    while it writes): the pop's reads go to a reader instead.  (PostgreSQL reads on any
    pooled connection: there is no such lock to test there.)"""
    store = await open_store(f"sqlite:///{tmp_path / 'crm.db'}")
    try:
        contact = await _contact(store)
        async with store._lock:  # type: ignore[attr-defined]  # a write under way
            async with asyncio.timeout(10):
                got = await store.pop_read(lambda s: _reads(s, contact.id or 0))
        assert got[0].name == "Acme"
    finally:
        await store.close()
