"""Three ``run.py serve`` processes on one PostgreSQL, two PBXes (offices ``east`` and
``west``, each its own team, extensions and callers), SSE clients on every process for the
reps of both offices.  Mid-burst the process consuming ``east`` is SIGKILLed; another
takes the link over.  Then:

* every call of both PBXes is in the store exactly once (the same linkedids the tracker
  makes of the uninterrupted timelines), on its own link;
* every surviving SSE client got a screen pop for each call that rang its extension
  while some process was consuming that PBX (calls rung entirely in the few tenths of a
  second between the kill and the takeover reach nobody live: no process was listening);
* no client ever got a call that did not concern its own extension.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import asyncpg

from ami_bridge.replay_pbx import ReplayPbx
from crm.policy import LeadPolicy
from crm.services import CrmService
from crm.store import open_store
from crm.store.postgres import split_url
from tests.waiting import until

from .cluster import (
    EAST,
    PASSWORD,
    REPS,
    WEST,
    Cluster,
    SseClient,
    expected_calls,
    link_holder,
    office_timeline,
    shared_allocator,
)

_until = partial(until, step=0.01)  # this test polls finely


COPIES = 3
SPEED = 5.0
MARGIN = 1.0
"""PBX seconds around the outage in which a pop may legitimately be missed."""


async def _seed(pg_url: str) -> dict[str, int]:
    store = await open_store(pg_url, migrate=False)
    try:
        service = CrmService(store, LeadPolicy())
        link_ids = {}
        for office in (EAST, WEST):
            link = await store.ensure_pbx_link(office.link, office.team)
            link_ids[office.link] = link.id
            for username, ext in REPS[office.link]:
                await service.create_user(username, username.title(), PASSWORD, "rep", [ext],
                                          team_id=link.team_id)  # fmt: skip
        return link_ids
    finally:
        await store.close()


async def _stored_calls(pg_url: str) -> list[asyncpg.Record]:
    dsn, schema = split_url(pg_url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or "public"})
    try:
        return list(await conn.fetch("SELECT linkedid, pbx_link_id, complete FROM calls"))
    finally:
        await conn.close()


async def test_three_processes_two_pbxes_holder_killed_mid_burst(
    pg_url: str, tmp_path: Path
) -> None:
    alloc = shared_allocator()
    timelines = {o.link: office_timeline(o, COPIES, alloc) for o in (EAST, WEST)}
    expected = {link: expected_calls(tl) for link, tl in timelines.items()}
    assert all(len(calls) == 20 * COPIES for calls in expected.values())
    pbxes = {
        link: ReplayPbx(tl, speed=SPEED, loops=1, paused=True) for link, tl in timelines.items()
    }
    for pbx in pbxes.values():
        await pbx.start()
    cluster = Cluster(tmp_path, pg_url, [(EAST, pbxes["east"].port), (WEST, pbxes["west"].port)])
    clients: list[SseClient] = []
    try:
        cluster.migrate()
        link_ids = await _seed(pg_url)
        procs = [cluster.spawn() for _ in range(3)]
        for proc in procs:
            await cluster.wait_healthy(proc)
        await _until(lambda: all(p.clients == 1 for p in pbxes.values()), 30, "both links up")
        for proc in procs:
            for office in (EAST, WEST):
                for username, ext in REPS[office.link]:
                    clients.append(SseClient(username, ext, proc))
        await asyncio.gather(*(c.start() for c in clients))

        for pbx in pbxes.values():
            pbx.resume()
        east = pbxes["east"]
        await _until(lambda: east.played >= 0.4 * len(timelines["east"]), 60, "mid-burst")
        holders = {link: await link_holder(pg_url, link) for link in pbxes}
        victim = next(p for p in procs if p.pid == holders["east"])
        moved = [link for link, pid in holders.items() if pid == victim.pid]
        killed_at = {link: pbxes[link].now for link in moved}
        logins_before = {link: pbxes[link].logins_ok for link in moved}
        cluster.kill(victim)

        back_at: dict[str, float] = {}

        async def takeover(link: str) -> None:
            pbx = pbxes[link]
            # a new login, and only one client: the dead connection is gone and another
            # process holds the link (polling for "0 clients" can miss a fast takeover)
            await _until(
                lambda: pbx.logins_ok > logins_before[link] and pbx.clients == 1,
                40,
                f"{link}: taken over",
            )
            back_at[link] = pbx.now

        await asyncio.gather(*(takeover(link) for link in moved))
        for link in moved:
            new_holder = await link_holder(pg_url, link)
            assert new_holder is not None and new_holder != victim.pid
        for pbx in pbxes.values():
            await pbx.wait_done(timeout=120)

        want = {c.linkedid: link for link, calls in expected.items() for c in calls}

        async def all_stored() -> bool:
            return len(await _stored_calls(pg_url)) >= len(want)

        await _until(all_stored, 60, "every call stored", step=0.25)
        await asyncio.sleep(1.0)  # anything doubled or stray would show up by now
        rows = await _stored_calls(pg_url)
        stored = [r["linkedid"] for r in rows]
        assert len(stored) == len(set(stored))
        assert set(stored) == set(want), (
            f"missing {sorted(set(want) - set(stored))}, extra {sorted(set(stored) - set(want))}"
        )
        for r in rows:
            assert r["pbx_link_id"] == link_ids[want[r["linkedid"]]]

        # Pops: every surviving client, every call that rang it while its PBX was consumed.
        def live_window(link: str, call) -> bool:  # type: ignore[no-untyped-def]
            if link not in killed_at:
                return True
            return (call.ended_at < killed_at[link] - MARGIN
                    or call.started_at > back_at[link] + MARGIN)  # fmt: skip

        await asyncio.sleep(1.0)
        checked = 0
        for client in clients:
            link = "east" if client.extension in ("101", "102") else "west"
            for data in client.of_kind("call_progress"):
                concerned = {*data["rung"], *data["ringing"], data["answered_by"], data["caller"]}
                assert client.extension in concerned, (client.username, data)
            if client.proc is victim:
                continue
            assert not client.closed, f"{client.username}@{client.proc.port} lost its stream"
            owed = {
                c.linkedid for c in expected[link]
                if client.extension in c.rang and live_window(link, c)
            }  # fmt: skip
            missing = owed - client.popped()
            assert not missing, f"{client.username}@{client.proc.port} missed pops {missing}"
            checked += len(owed)
        assert checked > 0
    finally:
        for client in clients:
            await client.close()
        cluster.stop_all()
        for pbx in pbxes.values():
            await pbx.close()
