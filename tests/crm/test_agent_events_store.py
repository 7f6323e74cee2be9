"""The agent events the presence service stores (pauses, memberships, registrations),
on both engines."""

from __future__ import annotations

import pytest

from crm.models import AgentEvent
from crm.store import Store


async def test_agent_events_append_and_read_back_in_order(store: Store) -> None:
    link = await store.ensure_pbx_link("default", None)
    events = [
        AgentEvent(100.0, "paused", "102", "support", "lunch", link.id),
        AgentEvent(90.0, "unregistered", "103", None, None, link.id),
        AgentEvent(160.5, "unpaused", "102", "support", None, None),
        AgentEvent(200.0, "added", "101", "sales", None, link.id),
    ]
    await store.add_agent_events(events)
    await store.add_agent_events([])  # nothing to do, no error
    got = await store.list_agent_events(0.0, 1000.0)
    assert [(e.ts, e.kind, e.extension) for e in got] == [
        (90.0, "unregistered", "103"),
        (100.0, "paused", "102"),
        (160.5, "unpaused", "102"),
        (200.0, "added", "101"),
    ]
    assert got[1] == events[0]  # every field, the reason and the link included
    assert got[0].queue is None and got[2].pbx_link_id is None
    assert [e.kind for e in await store.list_agent_events(100.0, 200.0, "102")] == [
        "paused",
        "unpaused",
    ]


async def test_agent_events_refuse_an_unknown_kind(store: Store) -> None:
    with pytest.raises(Exception):  # noqa: B017 - sqlite3.IntegrityError / asyncpg CheckViolation
        await store.add_agent_events([AgentEvent(1.0, "lunch", "102", None, None, None)])
    assert await store.list_agent_events(0.0, 10.0) == []
