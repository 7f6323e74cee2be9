"""The bulk loader of generated history (``crm.store.bulk``, behind ``bench_pages``) on
both engines: what it writes around the calls must be what the ingest would have kept,
or the pages measured on it would read tables the product never has."""

from __future__ import annotations

import asyncio

from crm.services import CrmService
from crm.store import Store, open_store
from crm.store.bulk import BulkSpec, Rep, load_postgres, load_sqlite


async def test_a_loaded_history_keeps_who_each_task_rang_as_the_ingest_does(
    store: Store, store_url: str, service: CrmService
) -> None:
    team = await service.create_team("Floor", "admin")
    mk = service.create_user
    reps = [await mk(f"rep{n}", f"Rep {n}", "password1", "rep", [str(201 + n)], team.id)
            for n in range(4)]  # fmt: skip
    spec = BulkSpec(300, 3000, [Rep(u.id or 0, u.extensions[0]) for u in reps], days=5)
    await store.close()
    if store_url.startswith("sqlite"):
        counts = await asyncio.to_thread(load_sqlite, store_url.removeprefix("sqlite:///"), spec)
    else:
        counts = await load_postgres(store_url, spec)
    assert counts["calls"] == 3000 and counts["tasks"] > 0
    loaded = await open_store(store_url)
    try:
        async with loaded._use() as c:  # type: ignore[attr-defined]
            joined = await c.fetch(
                "SELECT DISTINCT rc.task_id, cr.extension FROM callback_calls rc "
                "JOIN call_rang cr ON cr.call_id = rc.call_id ORDER BY rc.task_id, cr.extension"
            )
            kept = await c.fetch(
                "SELECT task_id, extension FROM callback_rang ORDER BY task_id, extension"
            )
        assert joined and [tuple(r) for r in kept] == [tuple(r) for r in joined]
        [task, *_] = [t for t in await loaded.list_callbacks(status=None) if t.owner_id is None]
        got = await loaded.get_callback(task.id or 0)
        rang = {r[1] for r in joined if r[0] == task.id}
        assert got is not None and got.rung_user_ids == tuple(
            sorted(u.id or 0 for u in reps if u.extensions[0] in rang)
        )
    finally:
        await loaded.close()
