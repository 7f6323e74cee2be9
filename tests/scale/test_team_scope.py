"""Each PBX link serves one team: its calls carry the link, the work nobody answered is
owned inside the team, and a manager sees only their team's calls, leads and callbacks.
Also: calls a dead consumer left behind are written, incomplete, by the next one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ami_bridge.facts import CallProgress, CallRecord
from ami_bridge.replay import replay_facts
from crm.ingest import Ingest
from crm.policy import LeadPolicy
from crm.recovery import finish_orphans
from crm.services import CrmService
from crm.store import Store, open_store
from web.linkmanager import link_configs, link_policy, team_owner

from .cluster import EAST, WEST, expected_calls, office_timeline, shared_allocator

POLICY = LeadPolicy(own_numbers=("5551000", "5551002", "5552000"))
PW = "team-scope-pass-1"


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[Store]:
    s = await open_store(pg_url)
    try:
        yield s
    finally:
        await s.close()


async def test_a_manager_sees_only_their_teams_calls(store: Store) -> None:
    service = CrmService(store, POLICY)
    alloc = shared_allocator()
    links, managers = {}, {}
    for office in (EAST, WEST):
        row = await store.ensure_pbx_link(office.link, office.team)
        links[office.link] = row
        managers[office.link] = await service.create_user(
            f"mgr-{office.link}", "Manager", PW, "manager", team_id=row.team_id
        )
        for ext in office.extensions.values():
            await service.create_user(f"rep{ext}", f"Rep {ext}", PW, "rep", [ext],
                                      team_id=row.team_id)  # fmt: skip
    admin = await service.create_user("root", "Admin", PW, "admin")
    for office in (EAST, WEST):
        row = links[office.link]
        policy = link_policy(POLICY, await team_owner(store, row, None))
        ingest = Ingest(store, policy, pbx_link_id=row.id, keep_live=True)
        timeline = office_timeline(office, 1, alloc)
        for fact in replay_facts(timeline):
            await ingest.handle(fact)
        assert await store.live_calls_for_link(row.id) == []  # every kept call landed

    everything = await service.list_calls(limit=1000, scope=await service.scope_for(admin))
    assert len(everything.items) == 40
    for office in (EAST, WEST):
        mine = links[office.link].id
        scope = await service.scope_for(managers[office.link])
        calls = (await service.list_calls(limit=1000, scope=scope)).items
        assert len(calls) == 20, office.link  # answered ones by the reps, missed via callbacks
        assert {c.pbx_link_id for c in calls} == {mine}
        assert any(not c.answered for c in calls)
        tasks = await service.list_callbacks(status=None, scope=scope, limit=1000)
        assert tasks and all(t.owner_id is not None for t in tasks)
        for task in tasks:
            assert task.owner_id in scope.user_ids  # type: ignore[operator]
        contacts = await service.list_contacts(limit=1000, scope=scope)
        numbers = {p.e164 for c in contacts for p in c.phones}
        prefix = "+1" + office.caller_prefix
        assert numbers and all(n and n.startswith(prefix) for n in numbers), numbers


def test_pbx_links_settings() -> None:
    settings = {
        "ami": {"host": "pbx", "port": 5038, "username": "crm", "secret": "s", "ping_interval": 3},
        "pbx_links": [
            {"name": "east", "team": "East", "host": "10.0.0.1"},
            {"name": "west", "team": "West", "port": 5039, "default_owner": "walt"},
        ],
    }
    east, west = link_configs(settings)
    assert (east.name, east.team, east.ami["host"], east.ami["ping_interval"]) == (
        "east", "East", "10.0.0.1", 3)  # fmt: skip
    assert (west.ami["host"], west.ami["port"], west.default_owner) == ("pbx", 5039, "walt")
    assert "team" not in west.ami and "name" not in west.ami
    (default,) = link_configs({"ami": {"host": "pbx"}})
    assert (default.name, default.team, default.ami["host"]) == ("default", None, "pbx")
    with pytest.raises(ValueError, match="twice"):
        link_configs({"pbx_links": [{"name": "a"}, {"name": "a"}]})


async def test_calls_left_behind_are_written_incomplete_once(store: Store) -> None:
    row = await store.ensure_pbx_link("east", "East")
    ingest = Ingest(store, POLICY, pbx_link_id=row.id, keep_live=True)
    timeline = office_timeline(EAST, 1, shared_allocator())
    records = expected_calls(timeline)
    facts = replay_facts(timeline)
    # The consumer dies once it has reported every call as ringing, before any ended.
    for fact in facts:
        if isinstance(fact, CallProgress) and fact.state != "ended":
            await ingest.handle(fact)
    kept = await store.live_calls_for_link(row.id)
    assert len(kept) == 20
    still_up = records[0].linkedid
    successor = Ingest(store, POLICY, pbx_link_id=row.id, keep_live=True)
    written = await finish_orphans(successor, {still_up})
    assert len(written) == 19 and still_up not in written
    again = await finish_orphans(successor, {still_up})
    assert again == []
    for linkedid in written:
        call = await store.get_call_by_linkedid(linkedid)
        assert call is not None and not call.complete and call.pbx_link_id == row.id
    # The call still up lands whole when the new tracker finishes it, exactly once.
    last: CallRecord = next(r for r in records if r.linkedid == still_up)
    await successor.record(last)
    call = await store.get_call_by_linkedid(still_up)
    assert call is not None and call.complete
    assert await store.live_calls_for_link(row.id) == []
    assert len((await CrmService(store, POLICY).list_calls(limit=100)).items) == 20
