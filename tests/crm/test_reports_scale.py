"""The report figures read ``call_rang`` and covering indexes (migration 0005) instead of
``json_each`` over ``calls.rang`` and date formatting per row: on a realistic small data
set they must equal what the original queries (kept here as the reference) give, on both
engines, for an admin and for a scoped manager."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from crm.ingest import Ingest
from crm.models import User
from crm.services import CrmService
from crm.store import Store

from .factories import T0, inbound, internal, outbound

DAY = 86_400.0
MISSED = "IN ('missed', 'abandoned', 'busy', 'no_answer')"


async def _users(store: Store) -> list[User]:
    specs = [("alice", "Alice", ["101"]), ("bob", "Bob", ["102", "103"]), ("cara", "Cara", ["104"])]
    return [
        await store.add_user(User(None, name, display, "rep", exts), T0)
        for name, display, exts in specs
    ]


async def _traffic(ingest: Ingest) -> None:
    rng = random.Random(5)
    exts = ["101", "102", "103", "104", "199"]  # 199 belongs to nobody
    for i in range(160):
        at = T0 + i * 1700.0 + rng.random() * 600
        number = f"+1415555{rng.randrange(30):04d}"
        kind = rng.random()
        if kind < 0.65:
            rang = tuple(rng.choice(exts) for _ in range(rng.randrange(0, 4)))
            roll = rng.random()
            if roll < 0.5:
                rec = inbound(number, answered_by=rng.choice(["101", "102", "104"]), at=at,
                              rang=rang, did=rng.choice(["5551000", "5552000"]))  # fmt: skip
            else:
                outcome = rng.choice(["missed", "abandoned", "busy", "no_answer"])
                rec = inbound(number, answered_by=None, outcome=outcome, at=at, rang=rang,
                              did=rng.choice(["5551000", "5552000"]))  # fmt: skip
        elif kind < 0.93:
            rec = outbound(number[2:], number, caller=rng.choice(["101", "102", "104"]), at=at)
        else:
            rec = internal("101", "104", at=at)
        await ingest.handle(rec)


async def _reference(store: Store, since: float, until: float, uids: Any) -> dict[str, Any]:
    """The figures as the queries before migration 0005 computed them."""
    s: Any = store
    args: list[Any] = [since, until]
    vis = ""
    if uids is not None:
        args.append(s._ids_param(uids))
        vis = " AND " + s._visible_call("calls", 3)
    rng = "calls.started_at >= $1 AND calls.started_at < $2"
    async with s._use() as c:
        totals = await c.fetchrow(
            f"SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN calls.outcome {MISSED} "
            f"THEN 1 ELSE 0 END), 0) AS missed FROM calls "
            f"WHERE calls.direction = 'inbound' AND {rng}{vis}",
            *args,
        )
        rung_args: list[Any] = [since, until]
        mine = ""
        if uids is not None:
            rung_args.append(s._ids_param(uids))
            mine = f" AND ue.user_id {s._ids_in(3)}"
        rung = await c.fetch(
            "SELECT ue.user_id AS user_id, COUNT(DISTINCT calls.id) AS n FROM calls "
            f"{s._json_values_join('calls.rang', 'r')} "
            "JOIN user_extensions ue ON ue.extension = r.value "
            f"WHERE calls.direction = 'inbound' AND calls.outcome {MISSED} AND {rng}{mine} "
            "GROUP BY ue.user_id",
            *rung_args,
        )
        day_args = [0.0, *args]
        day_vis = vis.replace("$3", "$4")
        days = await c.fetch(
            f"SELECT {s._day('calls.started_at + $1')} AS day, calls.outcome AS outcome, "
            "COUNT(*) AS n FROM calls WHERE calls.started_at >= $2 AND calls.started_at < $3"
            f"{day_vis} GROUP BY 1, 2 ORDER BY 1, 2",
            *day_args,
        )
        hours = await c.fetch(
            f"SELECT {s._hour('calls.started_at + $1')} AS hour, COUNT(*) AS n FROM calls "
            f"WHERE calls.started_at >= $2 AND calls.started_at < $3{day_vis} "
            "GROUP BY 1 ORDER BY 1",
            *day_args,
        )
    return {
        "totals": (int(totals["total"]), int(totals["missed"])),
        "rung": {r["user_id"]: int(r["n"]) for r in rung},
        "days": [(r["day"], r["outcome"], int(r["n"])) for r in days],
        "hours": [(int(r["hour"]), int(r["n"])) for r in hours],
    }


async def _check(store: Store, since: float, until: float, uids: Any) -> None:
    ref = await _reference(store, since, until, uids)
    summary = await store.missed_summary(since, until, 1800.0, uids)
    assert (summary.total_inbound, summary.missed) == ref["totals"]
    assert sum(r.inbound for r in summary.by_line) == summary.total_inbound
    assert {r.user_id: r.rung_missed for r in summary.by_rep if r.rung_missed} == ref["rung"]
    per_rep = await store.per_rep(since, until, uids)
    assert {r.user_id: r.missed for r in per_rep if r.missed} == ref["rung"]
    assert await store.calls_per_day(since, until, uids) == ref["days"]
    assert await store.busiest_hours(since, until, uids) == ref["hours"]


async def test_reports_match_the_original_queries(
    store: Store, service: CrmService, ingest: Ingest
) -> None:
    users = await _users(store)
    await _traffic(ingest)
    ref = await _reference(store, T0 - DAY, T0 + 10 * DAY, None)
    assert ref["totals"][1] > 10 and len(ref["rung"]) == 3  # the data set is not trivial
    for since, until in ((T0 - DAY, T0 + 10 * DAY), (T0 + 0.3 * DAY, T0 + 1.7 * DAY)):
        await _check(store, since, until, None)
        await _check(store, since, until, [users[1].id])
        await _check(store, since, until, [users[0].id, users[2].id])


async def test_call_rang_follows_updates_and_filters_missed_by_rep(
    store: Store, ingest: Ingest
) -> None:
    alice, bob, cara = await _users(store)
    await ingest.handle(inbound("+14155550001", answered_by=None, at=T0, rang=("101", "101")))
    await ingest.handle(inbound("+14155550002", answered_by=None, at=T0 + 60, rang=("103",)))
    ref = await _reference(store, T0 - 60, T0 + DAY, None)
    assert ref["rung"] == {alice.id: 1, bob.id: 1}
    await _check(store, T0 - 60, T0 + DAY, None)
    # the first call is stored again, now ringing cara and answered by nobody else
    first = (await store.missed_calls(T0 - 60, T0 + DAY, rep_id=alice.id))[0].call
    assert first.rang == ("101", "101")
    first = dataclasses.replace(first, rang=("104",))
    await store.upsert_call(first, T0 + 120)
    await _check(store, T0 - 60, T0 + DAY, None)
    summary = await store.missed_summary(T0 - 60, T0 + DAY, 1800.0)
    assert {r.user_id: r.rung_missed for r in summary.by_rep} == {bob.id: 1, cara.id: 1}
    # it no longer rang alice; she keeps its callback (given to the rep it rang when it
    # opened), so she still finds it as hers to call back
    kept = await store.missed_calls(T0 - 60, T0 + DAY, rep_id=alice.id)
    assert [(r.call.id, r.owner_id) for r in kept] == [(first.id, alice.id)]
    by_cara = await store.missed_calls(T0 - 60, T0 + DAY, rep_id=cara.id)
    assert [r.call.id for r in by_cara] == [first.id]
    # answered now: no longer a missed call that rang anyone
    first = dataclasses.replace(first, outcome="answered", answered=True)
    await store.upsert_call(first, T0 + 180)
    await _check(store, T0 - 60, T0 + DAY, None)
    assert await store.missed_calls(T0 - 60, T0 + DAY, rep_id=cara.id) == []
