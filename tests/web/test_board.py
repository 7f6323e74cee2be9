"""The supervisor board over HTTP: who sees which reps, the live stream, the actions.

The presence changes come from a real capture (tests/fixtures/asterisk-22/presence/32-*)
replayed through the presence tracker and the presence service, as the link would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ami_bridge.presence import AgentChange, PresenceChange, PresenceTracker
from ami_bridge.presence.facts import RepView
from crm.models import AuditEntry
from tests.presence.replaying import replay
from web.runtime import Runtime

from .conftest import People, login


class FakeLink:
    """The AMI link as the board's actions use it: records what was sent."""

    def __init__(self, answer: dict[str, str] | None = None, delay: float = 0.0) -> None:
        self.sent: list[dict[str, Any]] = []
        self.answer = answer or {"Response": "Success", "Message": "Interface paused successfully"}
        self.delay = delay

    async def stop(self, **kw: Any) -> None:
        return None

    async def send_action(self, fields: dict[str, Any], timeout: float = 10.0) -> Any:
        self.sent.append(dict(fields))
        await asyncio.sleep(self.delay)
        return self.answer


@pytest.fixture
async def world(rt: Runtime, people: People) -> People:
    s = rt.service
    east = await s.create_team("East", "test")
    west = await s.create_team("West", "test")
    for user, team in (
        (people.manager, east),
        (people.alice, east),
        (people.bob, west),
        (people.other_manager, west),
    ):
        assert user.id is not None and team.id is not None
        await s.set_team(user.id, team.id, "test")
    return people


async def feed(rt: Runtime, facts: list[PresenceChange | AgentChange]) -> None:
    await rt.presence.handle("default", None, facts)
    await asyncio.sleep(0.05)  # the hub follows the bus in its own task


async def replayed(rt: Runtime, scenario: str, upto: str | None = None) -> PresenceTracker:
    r = replay(scenario)
    await feed(rt, [*r.agent, *r.changes])
    return r.tracker


def rep_change(ext: str, state: str, at: float = 1.0, **kw: Any) -> PresenceChange:
    view = RepView(ext, state, at, True, queues=("support",), **kw)  # type: ignore[arg-type]
    return PresenceChange(at=at, rep=view)


async def test_managers_see_their_team_admins_everyone(
    client: TestClient, rt: Runtime, world: People
) -> None:
    await feed(
        rt, [rep_change("101", "available"), rep_change("102", "paused", paused_reason="lunch")]
    )
    await login(client, "maria")
    page = await (await client.get("/board")).text()
    assert 'id="rep-101"' in page and "Alice Rep" in page
    assert 'id="rep-102"' not in page  # bob is on the other team
    await client.post("/logout", data={"_csrf": await _csrf(client)})
    await login(client, "admin")
    page = await (await client.get("/board")).text()
    assert 'id="rep-101"' in page and 'id="rep-102"' in page and "lunch" in page
    wall = await (await client.get("/board/wall")).text()
    assert "Bob Rep" in wall and "state-paused" in wall


async def _csrf(client: TestClient) -> str:
    import re

    page = await (await client.get("/")).text()
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found
    return found.group(1)


async def test_the_board_shows_callers_waiting_from_a_real_capture(
    client: TestClient, rt: Runtime, world: People
) -> None:
    r = replay("32-queue-waiting-answered")
    # up to the moment both callers wait: the changes before the "talking" resync
    first_answer = next(
        i
        for i, c in enumerate(r.changes)
        if c.rep and c.rep.extension == "102" and c.rep.state == "on_call"
    )
    await feed(rt, r.changes[:first_answer])
    await login(client, "maria")
    page = await (await client.get("/board")).text()
    assert 'id="queue-support"' in page
    assert "+14155550101" in page and "+14155550102" in page  # both callers, in order
    assert page.index("+14155550101") < page.index("+14155550102")
    await feed(rt, r.changes[first_answer:])
    page = await (await client.get("/board")).text()
    assert "Wendy Wait" not in page and "+14155550102" not in page  # nobody waits now


async def _events(client: TestClient, resp: Any, n: int, timeout: float = 3.0) -> list[dict]:
    out: list[dict] = []
    buf = b""
    async with asyncio.timeout(timeout):
        while len(out) < n:
            buf += await resp.content.readany()
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                for line in block.split(b"\n"):
                    if line.startswith(b"data: "):
                        out.append(json.loads(line[6:]))
    return out


async def test_the_stream_carries_only_the_team_s_changes(
    client: TestClient, rt: Runtime, world: People
) -> None:
    await login(client, "maria")
    resp = await client.get("/board/events")
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    first = await _events(client, resp, 1)
    assert first[0]["kind"] == "board"
    await feed(
        rt,
        [rep_change("102", "ringing"), rep_change("101", "paused", 2.0, paused_reason="coaching")],
    )
    got = await _events(client, resp, 1)
    assert got[0]["kind"] == "rep" and got[0]["data"]["extension"] == "101"
    assert got[0]["data"]["state"] == "paused" and got[0]["data"]["paused_reason"] == "coaching"
    resp.close()


async def test_pausing_a_team_member_sends_one_queuepause_and_audits_it(
    client: TestClient, rt: Runtime, world: People
) -> None:
    link = FakeLink()
    rt.link = link  # type: ignore[assignment]
    await feed(rt, [rep_change("101", "available"), rep_change("102", "available")])
    csrf = await login(client, "maria")
    headers = {"Accept": "application/json", "X-CSRF-Token": csrf}
    form = {"extension": "101", "paused": "1", "reason": "lunch", "queue": "support"}
    resp = await client.post("/board/pause", data=form, headers=headers)
    body = await resp.json()
    assert resp.status == 200 and body["ok"], body
    assert body["message"] == "Extension 101 paused in support."
    assert link.sent == [
        {
            "Action": "QueuePause",
            "Interface": "PJSIP/101",
            "Paused": "true",
            "Queue": "support",
            "Reason": "lunch",
        }
    ]
    audit = await rt.store.list_audit(action="queue.pause")
    assert [(a.actor, a.target) for a in audit] == [("maria", "support/101")]

    # another team's rep: refused, nothing sent
    resp = await client.post("/board/pause", data={**form, "extension": "102"}, headers=headers)
    assert resp.status == 403
    assert "not on your team" in (await resp.json())["message"]
    assert len(link.sent) == 1


async def test_a_pbx_refusal_is_explained_and_audited(
    client: TestClient, rt: Runtime, world: People
) -> None:
    rt.link = FakeLink({"Response": "Error", "Message": "Member not dynamic"})  # type: ignore[assignment]
    await feed(rt, [rep_change("101", "available")])
    csrf = await login(client, "admin")
    resp = await client.post(
        "/board/membership",
        headers={"X-CSRF-Token": csrf},
        data={"extension": "101", "queue": "support", "op": "remove"},
    )
    page = await resp.text()
    assert resp.status == 409
    assert "queues.conf" in page and "only the PBX admin" in page  # the page, without JS
    refused = await rt.store.list_audit(action="queue.refused")
    assert refused and refused[0].detail["op"] == "remove"


async def test_a_double_click_sends_once(client: TestClient, rt: Runtime, world: People) -> None:
    link = FakeLink(delay=0.3)
    rt.link = link  # type: ignore[assignment]
    await feed(rt, [rep_change("101", "available")])
    csrf = await login(client, "maria")
    headers = {"Accept": "application/json", "X-CSRF-Token": csrf}
    form = {"extension": "101", "paused": "0", "queue": "support"}
    a, b = await asyncio.gather(
        client.post("/board/pause", data=form, headers=headers),
        client.post("/board/pause", data=form, headers=headers),
    )
    assert sorted([a.status, b.status]) == [200, 409], [await a.text(), await b.text()]
    assert len(link.sent) == 1


async def test_with_the_link_down_nothing_is_sent(
    client: TestClient, rt: Runtime, world: People
) -> None:
    rt.link = None
    csrf = await login(client, "maria")
    resp = await client.post(
        "/board/pause",
        headers={"Accept": "application/json", "X-CSRF-Token": csrf},
        data={"extension": "101", "paused": "1"},
    )
    assert resp.status == 503 and "link is down" in (await resp.json())["message"]
    assert await rt.store.list_audit(action="queue.pause") == []


async def test_agent_changes_are_stored_with_the_link(rt: Runtime) -> None:
    link = await rt.store.ensure_pbx_link("default", None)
    r = replay("30-queue-pause")
    await rt.presence.handle("default", link.id, r.agent)
    await rt.presence.flush()
    stored = await rt.store.list_agent_events(0, 4e9)
    assert [(e.kind, e.extension, e.reason, e.pbx_link_id) for e in stored] == [
        ("paused", "103", "lunch", link.id),
        ("unpaused", "103", None, link.id),
        ("paused", "102", "training", link.id),
        ("unpaused", "102", None, link.id),
    ]
    assert isinstance(stored[0].ts, float) and AuditEntry  # the capture's own times


async def test_a_rep_is_in_wrap_up_after_a_call_until_it_is_saved(
    client: TestClient, rt: Runtime, world: People
) -> None:
    import time

    from tests.crm.factories import inbound

    await feed(rt, [rep_change("101", "available", time.time())])
    await login(client, "maria")
    row = (await (await client.get("/board")).text()).split('id="rep-101"')
    assert "state-available" in row[0][-80:] + row[1][:80]
    call = (await rt.ingest.record(inbound("+14155550199", at=time.time() - 30))).call
    await asyncio.sleep(0.1)  # the tap's event goes out on the next loop turn
    row = (await (await client.get("/board")).text()).split('id="rep-101"')
    assert "state-wrapup" in row[0][-80:] + row[1][:80]
    await client.post("/logout", data={"_csrf": await _csrf(client)})
    await login(client, "alice")
    saved = await client.post(
        f"/calls/{call.id}/notes",
        data={"result": "Sale"},
        headers={"Accept": "application/json", "X-CSRF-Token": await _csrf(client)},
    )
    assert saved.status == 200
    await asyncio.sleep(0.1)
    await client.post("/logout", data={"_csrf": await _csrf(client)})
    await login(client, "maria")
    row = (await (await client.get("/board")).text()).split('id="rep-101"')
    assert "state-wrapup" not in row[0][-80:] + row[1][:80]
    assert "state-available" in row[0][-80:] + row[1][:80]
