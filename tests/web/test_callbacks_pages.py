"""The callbacks page, the wrap-up on the call page (with and without JavaScript), note
edits, Admin > Wrap-up, and the callback.overdue webhook, over HTTP."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp.test_utils import TestClient

from crm.events import Event
from tests.crm.factories import inbound
from web.runtime import Runtime, callback_work
from web.webhooks import EventMapper

from .conftest import People, login
from .test_live import NOW as LIVE_NOW
from .test_live import streams as streams  # the fixture
from .test_rep_pages import NOW, World
from .test_rep_pages import world as world  # the fixture


def local(epoch: float) -> str:
    """A ``datetime-local`` value for ``epoch`` (the demo settings display UTC)."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M")


async def _task_id(rt: Runtime, world: World) -> int:
    task = await rt.store.callback_for_call(world.missed.id or 0)
    assert task is not None and task.id is not None
    return task.id


async def test_callbacks_page_per_role(client: TestClient, rt: Runtime, world: World) -> None:
    task_id = await _task_id(rt, world)
    await login(client, "alice")
    html = await (await client.get("/callbacks")).text()
    assert f'data-task="{task_id}"' in html and "Grace Hopper" in html
    assert "Missed calls" in html and "Attempts" in html
    for who, sees in (("bob", False), ("maria", True), ("otto", False), ("admin", True)):
        await login(client, who)
        html = await (await client.get("/callbacks")).text()
        assert (f'data-task="{task_id}"' in html) is sees, who
        assert ("Grace Hopper" in html) is sees, who


async def test_attempt_snooze_close_from_the_page(
    client: TestClient, rt: Runtime, world: World
) -> None:
    task_id = await _task_id(rt, world)
    base = f"/callbacks/{task_id}"
    token = await login(client, "bob")
    refused = await client.post(f"{base}/attempt", data={"_csrf": token, "result": "no_answer"})
    assert refused.status == 404
    token = await login(client, "alice")
    bad = await client.post(f"{base}/attempt", data={"_csrf": token, "result": "maybe"})
    assert bad.status == 400 and "choose one from the list" in await bad.text()
    ok = await client.post(
        f"{base}/attempt",
        data={"_csrf": token, "result": "left_message", "comment": "voicemail"},
        allow_redirects=False,
    )
    assert ok.status == 303 and ok.headers["Location"] == "/callbacks?done=attempt"
    html = await (await client.get(ok.headers["Location"])).text()
    assert "Attempt logged." in html and "Left a message" in html and "voicemail" in html
    assert '<dd class="cb-attempts">1</dd>' in html and '<dd class="cb-missed">1</dd>' in html
    past = await client.post(f"{base}/snooze", data={"_csrf": token, "until": local(NOW - 60)})
    assert past.status == 400 and "in the future" in await past.text()
    snoozed = await client.post(
        f"{base}/snooze", data={"_csrf": token, "until": local(NOW + 7200)}, allow_redirects=False
    )
    assert snoozed.status == 303
    task = await rt.store.get_callback(task_id)
    assert task is not None and task.snoozed_until is not None
    assert abs(task.snoozed_until - (NOW + 7200)) < 60
    html = await (await client.get("/callbacks")).text()
    snoozed_section = html.split('id="cb-snoozed"', 1)[1]
    assert f'data-task="{task_id}"' in snoozed_section
    closed = await client.post(
        f"{base}/close", data={"_csrf": token, "reason": "not_needed"}, allow_redirects=False
    )
    assert closed.status == 303
    html = await (await client.get("/callbacks?status=closed")).text()
    assert f'data-task="{task_id}"' in html and "Not needed any more" in html
    actions = {e.action for e in await rt.service.list_audit()}
    assert {"callback.attempt", "callback.snoozed", "callback.closed"} <= actions


async def test_wrapup_on_the_call_page_and_as_json(
    client: TestClient, rt: Runtime, world: World
) -> None:
    call_id = world.alice_call.id
    token = await login(client, "alice")
    page = await (await client.get(f"/calls/{call_id}")).text()
    assert 'name="follow_up"' in page and "Save wrap-up" in page
    resp = await client.post(
        f"/calls/{call_id}/notes",
        data={"_csrf": token, "result": "Call back later", "comment": "quote on Monday",
              "follow_up": local(NOW + 86400)},
        allow_redirects=False,
    )  # fmt: skip
    assert resp.status == 303 and "followup=1" in resp.headers["Location"]
    # the number's open task (grace's missed call) takes the follow-up's time: one open
    # task per number
    [task] = await rt.store.list_callbacks()
    assert task.owner_id == world.people.alice.id and task.number_e164 == "+14155550199"
    assert abs(task.due_at - (NOW + 86400)) < 60
    # the pop's card: the same form, JSON back
    headers = {"Accept": "application/json", "X-CSRF-Token": token}
    bad = await client.post(f"/calls/{call_id}/notes", data={"result": "Nope"}, headers=headers)
    assert bad.status == 400 and (await bad.json())["errors"]["result"]
    past = await client.post(
        f"/calls/{call_id}/notes",
        data={"result": "Sale", "follow_up": local(NOW - 3600)},
        headers=headers,
    )
    assert past.status == 400 and "future" in (await past.json())["errors"]["follow_up"]
    ok = await client.post(f"/calls/{call_id}/notes", data={"result": "Sale"}, headers=headers)
    body = await ok.json()
    assert ok.status == 200 and body["ok"] and body["follow_up_task"] is None
    notes = await rt.service.notes(call_id or 0)
    assert [n.result for n in notes] == ["Call back later", "Sale"]
    options = await (await client.get("/wrapup/options")).json()
    assert {"value": "Sale", "label": "Sale"} in options["results"]
    assert options["required"] is False


async def test_notes_are_edited_by_author_or_manager(
    client: TestClient, rt: Runtime, world: World
) -> None:
    call_id = world.alice_call.id or 0
    note = await rt.service.add_note(call_id, world.people.alice.id, "", "Interested", "v1")
    url = f"/calls/{call_id}/notes/{note.id}"
    token = await login(client, "bob")
    assert (await client.post(url, data={"_csrf": token, "comment": "bob"})).status == 404
    token = await login(client, "alice")
    page = await (await client.get(f"/calls/{call_id}")).text()
    assert f'action="{url}"' in page  # her note: editable
    resp = await client.post(
        url, data={"_csrf": token, "result": "Sale", "comment": "v2"}, allow_redirects=False
    )
    assert resp.status == 303 and "edited=1" in resp.headers["Location"]
    token = await login(client, "maria")
    resp = await client.post(url, data={"_csrf": token, "comment": "v3"}, allow_redirects=False)
    assert resp.status == 303
    [stored] = await rt.service.notes(call_id)
    assert stored.comment == "v3" and stored.updated_by == world.people.manager.id
    edits = await rt.service.list_audit(action="note.edited")
    assert [e.detail["before"]["comment"] for e in edits] == ["v2", "v1"]
    assert [e.actor for e in edits] == ["maria", "alice"]


async def test_admin_sets_team_results_and_required(
    client: TestClient, rt: Runtime, world: World
) -> None:
    east = next(t for t in await rt.service.list_teams() if t.name == "East")
    token = await login(client, "admin")
    page = await (await client.get("/admin/wrapup")).text()
    assert "Voicemail / no answer" in page and f'name="team_{east.id}"' in page
    empty = await client.post("/admin/wrapup", data={"_csrf": token, "results": "  "})
    assert empty.status == 400
    form: dict[str, Any] = {
        "_csrf": token,
        "results": "Sold\nLost\nSold",
        f"team_{east.id}": "Demo booked\nNo budget",
        "required": "1",
    }
    resp = await client.post("/admin/wrapup", data=form, allow_redirects=False)
    assert resp.status == 303
    await login(client, "alice")  # team East
    options = await (await client.get("/wrapup/options")).json()
    assert [r["value"] for r in options["results"]] == ["Demo booked", "No budget"]
    assert options["required"] is True
    page = await (await client.get(f"/calls/{world.alice_call.id}")).text()
    assert 'value="Demo booked"' in page
    await login(client, "bob")  # team West: the general list, repeats dropped
    options = await (await client.get("/wrapup/options")).json()
    assert [r["value"] for r in options["results"]] == ["Sold", "Lost"]
    [entry] = await rt.service.list_audit(action="settings.changed")
    assert entry.target == "wrapup" and entry.actor == "admin"


async def test_overdue_callback_raises_the_webhook_once(rt: Runtime, world: World) -> None:
    task_id = await _task_id(rt, world)
    task = await rt.store.get_callback(task_id)
    assert task is not None
    sub = rt.bus.subscribe()
    rt.clock.set(task.due_at + 5)
    [late] = await callback_work(rt).signal_overdue()
    assert await callback_work(rt).signal_overdue() == []
    event = sub.get_nowait()
    assert event.kind == "callback_overdue"
    [(name, data)] = EventMapper().map(event)
    assert name == "callback.overdue" and data["callback"]["id"] == late.id
    assert data["callback"]["number_e164"] == "+14155550199"
    # a copy fanned out from another process is that process's to send
    copy = Event(event.kind, event.payload, origin="other-process")
    assert EventMapper().map(copy) == []


async def test_overdue_reaches_the_owner_and_the_team_manager_live(
    rt: Runtime, people: People, streams: Any
) -> None:
    team = await rt.service.create_team("East", "test")
    for user in (people.alice, people.manager):
        assert user.id is not None and team.id is not None
        await rt.service.set_team(user.id, team.id, "test")
    await rt.service.create_contact("Grace Hopper", "", "", ["+14155550199"],
                                    owner_id=people.alice.id)  # fmt: skip
    alice, maria, bob = await streams("alice"), await streams("maria"), await streams("bob")
    result = await rt.ingest.record(inbound("+14155550199", answered_by=None, at=LIVE_NOW - 60))
    task = await rt.store.callback_for_call(result.call.id or 0)
    assert task is not None
    rt.clock.set(task.due_at + 1)
    await callback_work(rt).signal_overdue()
    for stream in (alice, maria):
        got = await stream.next_of("callback_overdue")
        assert got["task"]["id"] == task.id and got["task"]["overdue"] is True
        assert 'class="callback-row overdue"' in got["row_html"]
    await bob.nothing("callback_overdue", 0.2)
