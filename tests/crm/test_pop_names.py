"""The screen pop's caller lookup (``Store.contact_names_by_e164``): lookups asked for
while the store's reader is busy are read together, in one statement, when it is free
(issue 17: at 10x each was a trip of its own and they queued for seconds); each still
gets what it would alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from crm.models import Contact, PhoneNumber
from crm.store import Store

from .factories import T0

ONE = "+14155550101"
TWO = "+14155550102"
NONE = "+14155550103"


async def _contact(store: Store, name: str, number: str, last: float | None) -> Contact:
    return await store.add_contact(
        Contact(None, name, phones=[PhoneNumber(number, number)], created_at=T0,
                updated_at=T0, last_contact_at=last)
    )  # fmt: skip


async def test_lookups_asked_while_the_reader_is_busy_share_one_statement(
    store: Store, monkeypatch: Any
) -> None:
    older = await _contact(store, "Older Co", ONE, T0 - 100)
    newer = await _contact(store, "Newer Co", ONE, T0)
    gone = await _contact(store, "Erased Co", ONE, T0 + 10)
    await store.erase_contact(gone.id or 0, T0 + 20)
    two = await _contact(store, "Two Co", TWO, None)

    real_use_read = store._use_read  # type: ignore[attr-defined]
    real_names_of = store._names_of  # type: ignore[attr-defined]
    free = asyncio.Event()
    statements: list[list[str]] = []

    @asynccontextmanager
    async def busy_reader() -> AsyncIterator[Any]:
        await free.wait()
        async with real_use_read() as conn:
            yield conn

    async def counted(conn: Any, numbers: list[str]) -> Any:
        statements.append(sorted(numbers))
        return await real_names_of(conn, numbers)

    monkeypatch.setattr(store, "_use_read", busy_reader)
    monkeypatch.setattr(store, "_names_of", counted)
    asks = [asyncio.ensure_future(store.contact_names_by_e164(n)) for n in (ONE, TWO, NONE, ONE)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert statements == [], "the reader is busy: nothing read yet"
    free.set()
    got = await asyncio.gather(*asks)
    assert statements == [[ONE, TWO, NONE]], "one statement for every number asked"
    assert got[0] == got[3] == [(newer.id, "Newer Co"), (older.id, "Older Co")]
    assert got[1] == [(two.id, "Two Co")] and got[2] == []
    # the same answers as one lookup alone (its own statement, the ids' order)
    alone = await store.contact_names_by_e164(ONE)
    assert alone == got[0] and [i for i, _ in alone] == await store.contact_ids_by_e164(ONE)
    assert statements[-1] == [ONE]


async def test_a_failed_batch_fails_each_lookup_in_it_and_the_next_one_reads_again(
    store: Store, monkeypatch: Any
) -> None:
    await _contact(store, "One Co", ONE, T0)
    real_names_of = store._names_of  # type: ignore[attr-defined]

    async def broken(conn: Any, numbers: list[str]) -> Any:
        raise RuntimeError("the disk is gone")

    monkeypatch.setattr(store, "_names_of", broken)
    asks = [asyncio.ensure_future(store.contact_names_by_e164(n)) for n in (ONE, TWO)]
    results = await asyncio.gather(*asks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    monkeypatch.setattr(store, "_names_of", real_names_of)
    assert [name for _, name in await store.contact_names_by_e164(ONE)] == ["One Co"]
