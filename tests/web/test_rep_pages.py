"""The rep-facing pages as a browser without JavaScript meets them: home, calls (filters,
keyset pages, a call's timeline, notes, relinking), contacts and leads (search, card,
create, edit, merge, convert), and who may see what."""

from __future__ import annotations

import re
import sys
import time
import types
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from ami_bridge.facts import CallProgress
from crm.eventjson import jsonable
from crm.events import Event
from crm.models import Call, Contact
from tests.clock import MIDDAY
from tests.crm.factories import inbound, outbound
from web.pages import calls as calls_page
from web.runtime import Runtime

from .conftest import People, login

NOW = MIDDAY
"""The runtime's clock in these tests: noon, so "a few minutes ago" is always today."""


@dataclass
class World:
    """Alice (101) and Bob (102) in teams East (manager Maria) and West (manager Otto)."""

    people: People
    grace: Contact  # alice's customer
    ada: Contact  # bob's customer
    shared: Contact  # nobody's
    alice_call: Call
    bob_call: Call
    missed: Call  # a missed call from alice's customer: alice's callback


async def _world(rt: Runtime, people: People) -> World:
    rt.clock.set(NOW)
    s = rt.service
    east = await s.create_team("East", "test")
    west = await s.create_team("West", "test")
    for user, team in (
        (people.manager, east),
        (people.alice, east),
        (people.other_manager, west),
        (people.bob, west),
    ):
        assert user.id is not None and team.id is not None
        await s.set_team(user.id, team.id, "test")
    grace = await s.create_contact(
        "Grace Hopper",
        "Navy Computing",
        "grace@example.com",
        ["+1 415 555 0199"],
        owner_id=people.alice.id,
    )
    ada = await s.create_contact(
        "Ada Lovelace", "Analytical Engines", "", ["+14155550204"], owner_id=people.bob.id
    )
    shared = await s.create_contact("Front Desk", "Globex", "", ["+14155550300"])
    alice_call = (await rt.ingest.record(inbound("+14155550199", at=NOW - 300))).call
    bob_call = (
        await rt.ingest.record(inbound("+14155550204", answered_by="102", at=NOW - 200))
    ).call
    missed = (await rt.ingest.record(inbound("+14155550199", answered_by=None, at=NOW - 100))).call
    return World(people, grace, ada, shared, alice_call, bob_call, missed)


@pytest.fixture
async def world(rt: Runtime, people: People) -> World:
    return await _world(rt, people)


def rows(html: str, attr: str) -> list[str]:
    return re.findall(rf'{attr}="([^"]+)"', html)


# -- home ------------------------------------------------------------------------------
async def test_home_shows_my_callbacks_oldest_first_overdue_and_todays_calls(
    client: TestClient, rt: Runtime, world: World
) -> None:
    # a second, older and overdue callback for alice
    old = await rt.service.create_contact(
        "Old Caller", "", "", ["+14155550111"], owner_id=world.people.alice.id
    )
    await rt.ingest.record(inbound("+14155550111", answered_by=None, at=NOW - 5 * 3600))
    await login(client, "alice")
    html = await (await client.get("/")).text()
    tasks = rows(html, "data-task")
    assert len(tasks) == 2
    first = html.index(f'data-task="{tasks[0]}"')
    assert "overdue" in html[html.rfind("<tr", 0, first) : first]
    assert html.index("Old Caller") < html.index("Grace Hopper", html.index('id="callbacks"'))
    assert 'id="overdue-count">1<' in html
    today = html[html.index('id="today-calls"') :]
    assert f'data-call="{world.alice_call.id}"' in today
    assert f'data-call="{world.missed.id}"' in today
    assert f'data-call="{world.bob_call.id}"' not in html
    assert "Ada Lovelace" not in html
    assert old.id is not None


async def test_home_for_manager_shows_the_team_only(client: TestClient, world: World) -> None:
    await login(client, "maria")
    html = await (await client.get("/")).text()
    assert f'data-call="{world.alice_call.id}"' in html
    assert f'data-call="{world.bob_call.id}"' not in html
    await login(client, "admin")
    html = await (await client.get("/")).text()
    assert f'data-call="{world.bob_call.id}"' in html


async def _keep_live(rt: Runtime, linkedid: str, **fields: Any) -> None:
    """A call in progress as an ingest with ``keep_live`` (this process or another one)
    leaves it in the store's ``live_calls``."""
    progress = CallProgress(linkedid=linkedid, at=time.time() - 20, **{
        "state": "ringing", "direction": "inbound", "caller": "+14155550199",
        "caller_name": None, "callee": "5551000", "did": "5551000", "ringing": ("101",),
        "answered_by": None, **fields,
    })  # fmt: skip
    snapshot = {
        "progress": jsonable(progress),
        "started_at": progress.at - 10,
        "rung": sorted({*progress.ringing, *filter(None, [progress.answered_by])}),
        "answered_at": progress.at if progress.answered_by else None,
    }
    assert await rt.store.save_live_call(linkedid, None, snapshot, progress.at)


async def test_home_lists_calls_in_progress_from_the_store(
    client: TestClient, rt: Runtime, world: World
) -> None:
    """A page loaded mid-call shows it although this process never saw its events."""
    await _keep_live(rt, "mid.1")  # ringing alice's phone, from alice's customer
    await _keep_live(rt, "mid.2", caller="+14155550204", ringing=(), answered_by="102",
                     state="answered")  # fmt: skip
    await login(client, "alice")
    html = await (await client.get("/")).text()
    assert rows(html, "data-linkedid") == ["mid.1"]  # rung her phone; not bob's call
    live = html[html.index('id="live-calls"') :]
    assert "Grace Hopper" in live.split("</table>", 1)[0]  # the caller, named from the store
    await login(client, "bob")
    assert rows(await (await client.get("/")).text(), "data-linkedid") == ["mid.2"]
    await login(client, "maria")  # alice's team, not bob's
    assert rows(await (await client.get("/")).text(), "data-linkedid") == ["mid.1"]
    await login(client, "admin")
    assert sorted(rows(await (await client.get("/")).text(), "data-linkedid")) == [
        "mid.1",
        "mid.2",
    ]
    # the call ended while this process heard nothing: gone from the store, gone here
    await rt.store.delete_live_call("mid.1")
    assert rows(await (await client.get("/")).text(), "data-linkedid") == ["mid.2"]
    await rt.store.delete_live_call("mid.2")
    await login(client, "alice")
    assert rows(await (await client.get("/")).text(), "data-linkedid") == []


async def test_hub_started_mid_call_seeds_from_the_store(rt: Runtime, world: World) -> None:
    from web.live import LiveHub

    await _keep_live(rt, "up.1")
    await _keep_live(rt, "over.1", state="ended", ringing=())  # ended: never listed
    hub = LiveHub(rt)
    await hub.start()
    try:
        assert list(hub.calls) == ["up.1"]
        viewer = await hub.viewer_for(world.people.alice)
        [item] = hub.live_calls_for(viewer)
        assert item["linkedid"] == "up.1" and item["me"] == "ringing"
        assert item["contact"]["id"] == world.grace.id
        assert hub.live_calls_for(await hub.viewer_for(world.people.bob)) == []
        # its end arrives on the bus as usual; a stale store row cannot bring it back
        ended = CallProgress("up.1", "ended", "inbound", "+14155550199", None, "5551000",
                             "5551000", (), None, time.time())  # fmt: skip
        await hub.handle(Event("call_progress", ended))
        assert "up.1" not in hub.calls
        await hub.seed_from_store()
        assert "up.1" not in hub.calls
    finally:
        await hub.close()


# -- calls -----------------------------------------------------------------------------
async def test_calls_list_is_scoped_by_role(client: TestClient, world: World) -> None:
    expect = {
        "alice": ({world.alice_call.id, world.missed.id}, {world.bob_call.id}),
        "bob": ({world.bob_call.id}, {world.alice_call.id, world.missed.id}),
        "maria": ({world.alice_call.id, world.missed.id}, {world.bob_call.id}),
        "otto": ({world.bob_call.id}, {world.alice_call.id}),
        "admin": ({world.alice_call.id, world.bob_call.id, world.missed.id}, set()),
    }
    for username, (seen, unseen) in expect.items():
        await login(client, username)
        ids = {int(i) for i in rows(await (await client.get("/calls")).text(), "data-call")}
        assert seen <= ids, username
        assert not (unseen & ids), username


async def test_rep_cannot_open_another_reps_call_or_contact(
    client: TestClient, world: World
) -> None:
    await login(client, "alice")
    for path in (
        f"/calls/{world.bob_call.id}",
        f"/contacts/{world.ada.id}",
        f"/contacts/{world.ada.id}/edit",
        f"/contacts/{world.ada.id}/merge",
        "/calls/999999",
        "/contacts/999999",
    ):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert "Ada" not in await resp.text()
    assert (await client.get(f"/calls/{world.alice_call.id}")).status == 200
    assert (await client.get(f"/contacts/{world.grace.id}")).status == 200
    assert (await client.get(f"/contacts/{world.shared.id}")).status == 200
    await login(client, "maria")
    assert (await client.get(f"/calls/{world.bob_call.id}")).status == 404
    assert (await client.get(f"/contacts/{world.ada.id}")).status == 404
    assert (await client.get(f"/calls/{world.alice_call.id}")).status == 200
    await login(client, "admin")
    assert (await client.get(f"/calls/{world.bob_call.id}")).status == 200
    assert (await client.get(f"/contacts/{world.ada.id}")).status == 200


async def test_calls_filters_and_keyset_pages_keep_the_filters(
    client: TestClient, rt: Runtime, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calls_page, "PAGE_SIZE", 3)
    for i in range(6):
        await rt.ingest.record(outbound("4155550300", "+14155550300", at=NOW - 1000 - i * 10))
    await login(client, "alice")
    first = await client.get("/calls", params={"direction": "outbound", "number": "(415) 555-0300"})
    html = await first.text()
    page1 = rows(html, "data-call")
    assert len(page1) == 3
    nxt = re.search(r'href="([^"]+)" rel="next"', html)
    assert nxt
    url = URL(nxt.group(1).replace("&amp;", "&"))
    assert url.query["direction"] == "outbound" and url.query["number"] == "(415) 555-0300"
    html2 = await (await client.get(str(url))).text()
    page2 = rows(html2, "data-call")
    assert len(page2) == 3 and not set(page1) & set(page2)
    newer = re.search(r'href="([^"]+)" rel="prev"', html2)
    assert newer
    back = await (await client.get(newer.group(1).replace("&amp;", "&"))).text()
    assert rows(back, "data-call") == page1
    # contact filter and outcome filter
    html = await (await client.get("/calls", params={"contact": str(world.grace.id)})).text()
    assert set(rows(html, "data-call")) == {str(world.alice_call.id), str(world.missed.id)}
    assert "Calls with" in html
    html = await (await client.get("/calls", params={"outcome": "missed"})).text()
    assert rows(html, "data-call") == [str(world.missed.id)]
    # a date range in the display time zone
    day = time.strftime("%Y-%m-%d", time.gmtime(NOW - 300))
    html = await (await client.get("/calls", params={"since": day, "until": day})).text()
    assert str(world.alice_call.id) in rows(html, "data-call")
    html = await (await client.get("/calls", params={"until": "2001-01-01"})).text()
    assert rows(html, "data-call") == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"number": "not a number"}, "at least 4 of its digits"),
        ({"since": "22/11/2026"}, "use a date like"),
        ({"direction": "sideways"}, "direction"),
        ({"outcome": "exploded"}, "outcome"),
        ({"cursor": "garbage"}, "bad page cursor"),
        ({"rep": "abc"}, "not a number"),
    ],
)
async def test_bad_filters_say_what_is_wrong(
    client: TestClient, world: World, params: dict[str, str], message: str
) -> None:
    await login(client, "alice")
    resp = await client.get("/calls", params=params)
    assert resp.status == 400
    assert message in await resp.text()


async def test_a_rep_cannot_filter_by_another_rep(client: TestClient, world: World) -> None:
    await login(client, "alice")
    resp = await client.get("/calls", params={"rep": str(world.people.bob.id)})
    assert resp.status == 400
    assert f'data-call="{world.bob_call.id}"' not in await resp.text()
    await login(client, "admin")
    html = await (await client.get("/calls", params={"rep": str(world.people.bob.id)})).text()
    assert rows(html, "data-call") == [str(world.bob_call.id)]


async def test_call_page_timeline(client: TestClient, world: World) -> None:
    await login(client, "alice")
    html = await (await client.get(f"/calls/{world.alice_call.id}")).text()
    timeline = html[html.index('class="timeline') :]
    steps = [
        "Call from",
        "Rang ext 101 (Alice Rep)",
        "Rang ext 102 (Bob Rep)",
        "Answered by ext 101 (Alice Rep)",
        "Ended",
        "the caller hung up",
    ]
    positions = [timeline.index(s) for s in steps]
    assert positions == sorted(positions)
    assert "Grace Hopper" in html and 'data-dial="+14155550199"' in html
    # the recordings player when installed, else the recording's name
    assert 'data-recording="' in html or "in_+14155550199" in html
    missed = await (await client.get(f"/calls/{world.missed.id}")).text()
    assert "Not answered (missed)" in missed and "Callback" in missed


async def test_call_page_uses_the_recordings_player_when_installed(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []

    async def player_items(request: Any, call: Call) -> list[Any]:
        seen.append(call.id or 0)
        return [
            types.SimpleNamespace(
                id=77,
                status="pending",
                duration=None,
                size_bytes=None,
                message="being prepared",
                playable=False,
            )
        ]

    fake = types.ModuleType("web.recordings_view")
    fake.player_items = player_items  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "web.recordings_view", fake)
    await login(client, "alice")
    resp = await client.get(f"/calls/{world.alice_call.id}")
    assert resp.status == 200 and seen == [world.alice_call.id]
    assert 'data-recording="77"' in await resp.text()


async def test_notes_are_validated_and_saved(client: TestClient, rt: Runtime, world: World) -> None:
    token = await login(client, "alice")
    url = f"/calls/{world.alice_call.id}/notes"
    empty = await client.post(url, data={"_csrf": token, "topic": " ", "comment": ""})
    assert empty.status == 400 and "the wrap-up is empty" in await empty.text()
    long = await client.post(url, data={"_csrf": token, "topic": "x" * 121, "comment": "kept"})
    text = await long.text()
    assert long.status == 400 and "under 120 characters" in text and ">kept</textarea>" in text
    bad = await client.post(url, data={"_csrf": token, "result": "Invented"})
    assert bad.status == 400 and "Choose a result" in await bad.text()
    ok = await client.post(
        url,
        data={
            "_csrf": token,
            "topic": "Quote",
            "result": "Interested",
            "comment": "Wants <b>50</b> seats",
        },
        allow_redirects=False,
    )
    assert ok.status == 303 and ok.headers["Location"].startswith(f"/calls/{world.alice_call.id}")
    html = await (await client.get(ok.headers["Location"])).text()
    assert "Wrap-up saved" in html and "Wants &lt;b&gt;50&lt;/b&gt; seats" in html
    notes = await rt.service.notes(world.alice_call.id or 0)
    assert [(n.topic, n.result, n.author_id) for n in notes] == [
        ("Quote", "Interested", world.people.alice.id)
    ]
    card = await (await client.get(f"/contacts/{world.grace.id}")).text()
    assert "Wants &lt;b&gt;50&lt;/b&gt; seats" in card
    # bob cannot write on alice's call
    token = await login(client, "bob")
    resp = await client.post(url, data={"_csrf": token, "topic": "x"})
    assert resp.status == 404


async def test_relink_a_call_to_another_contact_sharing_the_number(
    client: TestClient, rt: Runtime, world: World
) -> None:
    twin = await rt.service.create_contact(
        "Grace (home)", "", "", ["+14155550199"], owner_id=world.people.alice.id
    )
    token = await login(client, "alice")
    html = await (await client.get(f"/calls/{world.alice_call.id}")).text()
    assert "Other contacts share this number" in html and "Grace (home)" in html
    resp = await client.post(
        f"/calls/{world.alice_call.id}/contact",
        data={"_csrf": token, "contact_id": str(twin.id)},
        allow_redirects=False,
    )
    assert resp.status == 303
    call = await rt.service.get_call(world.alice_call.id or 0)
    assert call.contact_id == twin.id and call.match_reason == "manual"
    # only a contact with the number, and one alice may see
    resp = await client.post(
        f"/calls/{world.alice_call.id}/contact",
        data={"_csrf": token, "contact_id": str(world.ada.id)},
    )
    assert resp.status == 400 and "Choose one of the contacts" in await resp.text()


# -- contacts and leads ----------------------------------------------------------------
@pytest.mark.parametrize(
    "query", ["grace", "NAVY", "+1 415-555-0199", "(415) 555 0199", "0199", "0014155550199"]
)
async def test_contact_search_by_name_company_or_any_number_format(
    client: TestClient, world: World, query: str
) -> None:
    await login(client, "alice")
    html = await (await client.get("/contacts", params={"q": query})).text()
    assert f'data-contact="{world.grace.id}"' in html


async def test_contact_lists_are_scoped(client: TestClient, world: World) -> None:
    await login(client, "alice")
    html = await (await client.get("/contacts")).text()
    ids = set(rows(html, "data-contact"))
    assert {str(world.grace.id), str(world.shared.id)} <= ids
    assert str(world.ada.id) not in ids
    html = await (await client.get("/contacts", params={"q": "Ada"})).text()
    assert str(world.ada.id) not in rows(html, "data-contact")
    await login(client, "otto")
    ids = set(rows(await (await client.get("/contacts")).text(), "data-contact"))
    assert str(world.ada.id) in ids and str(world.grace.id) not in ids


async def test_contact_card_timeline_has_calls_notes_and_callbacks(
    client: TestClient, rt: Runtime, world: World
) -> None:
    await rt.service.add_note(world.alice_call.id or 0, world.people.alice.id, "Quote", "", "")
    await login(client, "alice")
    html = await (await client.get(f"/contacts/{world.grace.id}")).text()
    history = html[html.index('id="history-h"') :]
    assert "tl-call" in history and "tl-note" in history and "tl-callback" in history
    assert f'href="/calls/{world.alice_call.id}"' in history
    assert f'href="/calls?contact={world.grace.id}"' in html
    assert 'data-dial="+14155550199"' in html


async def test_create_edit_and_validation(client: TestClient, rt: Runtime, world: World) -> None:
    token = await login(client, "alice")
    bad = await client.post(
        "/contacts/new", data={"_csrf": token, "name": "Zed", "phones": "not a phone"}
    )
    assert bad.status == 400 and "not a phone number" in await bad.text()
    other_owner = await client.post(
        "/contacts/new",
        data={"_csrf": token, "name": "Zed", "owner": str(world.people.bob.id)},
    )
    assert other_owner.status == 400 and "owner" in await other_owner.text()
    resp = await client.post(
        "/contacts/new",
        data={
            "_csrf": token,
            "name": "Zed Zero",
            "company": "Zeta",
            "email": "z@zeta.io",
            "phones": "mobile: (415) 555-0177\n+44 20 7946 0000",
            "owner": str(world.people.alice.id),
            "tags": "vip, west",
        },
        allow_redirects=False,
    )
    assert resp.status == 303
    cid = int(resp.headers["Location"].split("/")[2].split("?")[0])
    contact = await rt.service.get_contact(cid)
    assert [p.e164 for p in contact.phones] == ["+14155550177", "+442079460000"]
    assert contact.phones[0].label == "mobile" and contact.tags == ["vip", "west"]
    resp = await client.post(
        f"/contacts/{cid}/edit",
        data={
            "_csrf": token,
            "name": "Zed Zero",
            "company": "Zeta Ltd",
            "email": "",
            "phones": "+14155550177",
            "owner": "",
            "tags": "",
        },
        allow_redirects=False,
    )
    assert resp.status == 303
    contact = await rt.service.get_contact(cid)
    assert contact.company == "Zeta Ltd" and contact.owner_id is None and len(contact.phones) == 1
    html = await (await client.get(f"/contacts/{cid}")).text()
    assert "Changes saved" in html or "Zeta Ltd" in html


async def test_merge_two_contacts(client: TestClient, rt: Runtime, world: World) -> None:
    dup = await rt.service.create_contact(
        "G. Hopper", "", "", ["+14155550198"], owner_id=world.people.alice.id
    )
    await rt.ingest.record(inbound("+14155550198", at=NOW - 50))
    token = await login(client, "alice")
    search = await (
        await client.get(f"/contacts/{world.grace.id}/merge", params={"q": "Hopper"})
    ).text()
    assert f"other={dup.id}" in search
    confirm = await (
        await client.get(f"/contacts/{world.grace.id}/merge", params={"other": str(dup.id)})
    ).text()
    assert "Merge G. Hopper into Grace Hopper" in confirm
    # another rep's contact cannot be merged in
    resp = await client.post(
        f"/contacts/{world.grace.id}/merge", data={"_csrf": token, "other_id": str(world.ada.id)}
    )
    assert resp.status == 404
    resp = await client.post(
        f"/contacts/{world.grace.id}/merge",
        data={"_csrf": token, "other_id": str(dup.id)},
        allow_redirects=False,
    )
    assert resp.status == 303
    merged = await rt.service.get_contact(world.grace.id or 0)
    assert {p.e164 for p in merged.phones} == {"+14155550199", "+14155550198"}
    assert (await client.get(f"/contacts/{dup.id}")).status == 404
    html = await (await client.get(resp.headers["Location"])).text()
    assert "Contacts merged" in html and "G. Hopper" not in html


async def test_leads_list_status_and_conversion(
    client: TestClient, rt: Runtime, world: World
) -> None:
    # an unknown caller answered by alice becomes her lead
    lead = (await rt.ingest.record(inbound("+14155550142", at=NOW - 30))).lead_created
    assert lead is not None and lead.owner_id == world.people.alice.id
    token = await login(client, "alice")
    html = await (await client.get("/leads")).text()
    assert rows(html, "data-contact") == [str(lead.id)]
    assert str(world.grace.id) not in rows(html, "data-contact")
    resp = await client.post(
        f"/contacts/{lead.id}/lead-status",
        data={"_csrf": token, "status": "qualified"},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert (await rt.service.get_contact(lead.id or 0)).lead.status == "qualified"  # type: ignore[union-attr]
    bad = await client.post(
        f"/contacts/{lead.id}/lead-status", data={"_csrf": token, "status": "hot"}
    )
    assert bad.status == 400 and "lead status must be one of" in await bad.text()
    html = await (await client.get(f"/contacts/{lead.id}")).text()
    assert "Convert to customer" in html
    resp = await client.post(
        f"/contacts/{lead.id}/convert", data={"_csrf": token}, allow_redirects=False
    )
    assert resp.status == 303
    assert (await rt.service.get_contact(lead.id or 0)).lead.status == "converted"  # type: ignore[union-attr]
    assert rows(await (await client.get("/leads")).text(), "data-contact") == []
    converted = await (await client.get("/leads", params={"status": "converted"})).text()
    assert rows(converted, "data-contact") == [str(lead.id)]
    not_a_lead = await client.post(f"/contacts/{world.grace.id}/convert", data={"_csrf": token})
    assert not_a_lead.status == 400 and "not a lead" in await not_a_lead.text()
    # the lead form
    resp = await client.post(
        "/contacts/new",
        data={"_csrf": token, "name": "New Prospect", "lead": "1"},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert "New Prospect" in await (await client.get("/leads")).text()


async def test_leads_page_walks_past_many_customers(
    client: TestClient, rt: Runtime, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    from web.pages import contacts as contacts_page

    monkeypatch.setattr(contacts_page, "PAGE_SIZE", 2)
    for i in range(10):
        await rt.service.create_contact(
            f"Lead {i}" if i % 3 == 0 else f"Customer {i}",
            lead_status="new" if i % 3 == 0 else None,
        )
    await login(client, "admin")
    html = await (await client.get("/leads")).text()
    names = re.findall(r"<strong>(Lead \d)</strong>", html)
    assert names == ["Lead 0", "Lead 3"]
    nxt = re.search(r'href="([^"]+)" rel="next"', html)
    assert nxt
    html = await (await client.get(nxt.group(1).replace("&amp;", "&"))).text()
    assert re.findall(r"<strong>(Lead \d)</strong>", html) == ["Lead 6", "Lead 9"]


# -- CSRF on every form ----------------------------------------------------------------
async def test_every_form_needs_the_csrf_token(
    client: TestClient, rt: Runtime, world: World
) -> None:
    await login(client, "alice")
    cid, call = world.grace.id, world.alice_call.id
    posts = {
        f"/calls/{call}/notes": {"topic": "x"},
        f"/calls/{call}/contact": {"contact_id": str(cid)},
        "/contacts/new": {"name": "Forged"},
        f"/contacts/{cid}/edit": {"name": "Forged"},
        f"/contacts/{cid}/merge": {"other_id": str(world.shared.id)},
        f"/contacts/{cid}/convert": {},
        f"/contacts/{cid}/lead-status": {"status": "junk"},
    }
    for path, data in posts.items():
        for token in (None, "forged"):
            body = dict(data) if token is None else {**data, "_csrf": token}
            resp = await client.post(path, data=body, allow_redirects=False)
            assert resp.status == 403, path
            assert "CSRF" in await resp.text()
    assert (await rt.service.get_contact(cid or 0)).name == "Grace Hopper"
    assert await rt.service.notes(call or 0) == []
    assert (await rt.service.get_contact(world.shared.id or 0)).name == "Front Desk"
