"""Issue 15, part B over HTTP: converting a lead (name, company, owner; the timeline),
lead statistics (scoped, CSV), the header search and the partial-number rule on Calls,
handover (preview, confirm, audit, team scope), the PBX link-down banner and /healthz."""

from __future__ import annotations

import csv
import io
import re

import pytest
from aiohttp.test_utils import TestClient

from ami_bridge.link import LinkStatus
from tests.crm.factories import inbound
from web.linkstate import board
from web.runtime import Runtime

from .conftest import PASSWORD, People, login
from .test_rep_pages import NOW, World, _world, rows


@pytest.fixture
async def world(rt: Runtime, people: People) -> World:
    return await _world(rt, people)


def field_value(html: str, name: str) -> str:
    found = re.search(rf'<input name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field"
    return found.group(1)


# -- search ----------------------------------------------------------------------------
async def test_part_of_a_number_finds_calls_as_it_finds_contacts(
    client: TestClient, world: World
) -> None:
    await login(client, "alice")
    calls = await (await client.get("/calls", params={"number": "555 0199"})).text()
    assert sorted(rows(calls, "data-call")) == sorted(
        [str(world.alice_call.id), str(world.missed.id)]
    )
    # the national form with its trunk prefix, and the last digits alone
    for typed in ("0199", "(415) 555-01"):
        found = await (await client.get("/calls", params={"number": typed})).text()
        assert str(world.alice_call.id) in rows(found, "data-call"), typed
    contacts = await (await client.get("/contacts", params={"q": "555 0199"})).text()
    assert rows(contacts, "data-contact") == [str(world.grace.id)]
    # bob's call has the digits 0204: alice does not see it by searching for them
    assert rows(await (await client.get("/calls?number=0204")).text(), "data-call") == []
    api = await (await client.get("/api/v1/calls", params={"number": "555 0199"})).json()
    assert sorted(c["id"] for c in api["items"]) == sorted([world.alice_call.id, world.missed.id])
    nothing = await client.get("/calls", params={"number": "9999999"})
    assert nothing.status == 200 and rows(await nothing.text(), "data-call") == []


async def test_the_header_search_finds_contacts_and_calls_within_scope(
    client: TestClient, world: World
) -> None:
    await login(client, "alice")
    home = await (await client.get("/")).text()
    assert 'action="/search"' in home  # the box is in the header of every page
    html = await (await client.get("/search", params={"q": "0199"})).text()
    assert str(world.grace.id) in rows(html, "data-contact")
    assert str(world.alice_call.id) in rows(html, "data-call")
    by_name = await (await client.get("/search", params={"q": "navy"})).text()
    assert rows(by_name, "data-contact") == [str(world.grace.id)]
    assert "type a number or at least 4 of its digits" in by_name
    client.session.cookie_jar.clear()
    await login(client, "bob")
    theirs = await (await client.get("/search", params={"q": "0199"})).text()
    assert rows(theirs, "data-contact") == [] and rows(theirs, "data-call") == []
    assert "Grace Hopper" not in theirs


# -- converting a lead -----------------------------------------------------------------
async def test_converting_asks_for_name_company_owner_and_goes_on_the_timeline(
    client: TestClient, rt: Runtime, world: World
) -> None:
    lead = (await rt.ingest.record(inbound("+14155550142", at=NOW - 30))).lead_created
    assert lead is not None and "inbound call" in lead.name
    token = await login(client, "alice")
    resp = await client.post(
        f"/contacts/{lead.id}/lead-status",
        data={"_csrf": token, "status": "qualified"},
        allow_redirects=False,
    )
    assert resp.status == 303
    card = await (await client.get(f"/contacts/{lead.id}")).text()
    assert f'href="/contacts/{lead.id}/convert"' in card
    form = await (await client.get(f"/contacts/{lead.id}/convert")).text()
    assert field_value(form, "name") == ""  # not the machine-made name
    assert f'<option value="{world.people.alice.id}" selected>' in form
    empty = await client.post(
        f"/contacts/{lead.id}/convert",
        data={"_csrf": token, "name": " ", "company": "", "owner": ""},
    )
    assert empty.status == 400 and "Give the customer a name" in await empty.text()
    assert (await rt.service.get_contact(lead.id or 0)).lead.status == "qualified"  # type: ignore[union-attr]
    rt.clock.set(NOW + 3600)
    resp = await client.post(
        f"/contacts/{lead.id}/convert",
        data={
            "_csrf": token,
            "name": "Linus Pauling",
            "company": "Caltech",
            "owner": str(world.people.alice.id),
        },
        allow_redirects=False,
    )
    assert resp.status == 303
    done = await rt.service.get_contact(lead.id or 0)
    assert (done.name, done.company, done.owner_id) == (
        "Linus Pauling",
        "Caltech",
        world.people.alice.id,
    )
    assert done.lead is not None and done.lead.status == "converted"
    card = await (await client.get(f"/contacts/{lead.id}")).text()
    history = card[card.index('id="history-h"') :]
    assert "Converted to a customer" in history and "Lead status: new → qualified" in history
    assert history.count("by Alice Rep") == 2
    assert history.index("Converted to a customer") < history.index("new → qualified")
    # a rep cannot hand the customer to another team's rep while converting
    other = (await rt.ingest.record(inbound("+14155550143", at=NOW - 20))).lead_created
    assert other is not None
    refused = await client.post(
        f"/contacts/{other.id}/convert",
        data={"_csrf": token, "name": "X", "company": "", "owner": str(world.people.bob.id)},
    )
    assert refused.status == 400
    assert (await rt.service.get_contact(other.id or 0)).lead.status == "new"  # type: ignore[union-attr]


# -- lead statistics -------------------------------------------------------------------
async def test_lead_statistics_by_source_and_rep_scoped_with_csv(
    client: TestClient, rt: Runtime, world: World
) -> None:
    s = rt.service
    alice, bob = world.people.alice, world.people.bob
    missed = await rt.ingest.record(inbound("+14155550150", answered_by=None, at=NOW - 50))
    answered = (await rt.ingest.record(inbound("+14155550151", at=NOW - 40))).lead_created
    manual = await s.create_contact("Walk-in", "", "", [], owner_id=alice.id, lead_status="new")
    bobs = await s.create_contact("Bob's", "", "", [], owner_id=bob.id, lead_status="new")
    assert answered is not None and answered.owner_id == alice.id and missed.call is not None
    alice_leads = 2 + (missed.lead_created is not None and missed.lead_created.owner_id == alice.id)
    rt.clock.set(NOW + 2 * 3600)
    await s.convert_lead(manual.id or 0, "alice")
    await login(client, "maria")
    html = await (await client.get("/reports/leads")).text()

    def source_row(source: str) -> list[str]:
        row = html[html.index(f'data-source="{source}"') :]
        row = row[: row.index("</tr>")]
        return re.findall(r'<td class="num">([^<]*)</td>', row)

    assert source_row("inbound_call")[:2] == ["1", "0"]
    assert source_row("manual") == ["1", "1", "100%", "2h 00m"]
    assert "Bob Rep" not in html  # otto's team
    resp = await client.get("/reports/leads.csv")
    assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(await resp.text())))
    assert table[0][:4] == ["group", "name", "leads", "converted"]
    by = {(r[0], r[1]): r for r in table[1:]}
    assert by[("rep", "Alice Rep")][2:4] == [str(alice_leads), "1"]
    assert ("rep", "Bob Rep") not in by
    assert by[("source", "manual")][5] == "2.0"  # hours from lead to customer
    client.session.cookie_jar.clear()
    await login(client, "admin")
    every = list(csv.reader(io.StringIO(await (await client.get("/reports/leads.csv")).text())))
    names = {r[1] for r in every if r[0] == "rep"}
    assert {"Alice Rep", "Bob Rep"} <= names
    assert bobs.id is not None
    client.session.cookie_jar.clear()
    await login(client, "alice")
    assert (await client.get("/reports/leads")).status in (403, 404)


# -- handover --------------------------------------------------------------------------
async def test_handover_previews_then_moves_and_audits_names(
    client: TestClient, rt: Runtime, world: World
) -> None:
    s = rt.service
    alice = world.people.alice
    [east] = [t.id for t in await s.list_teams() if t.name == "East"]
    carol = await s.create_user("carol", "Carol Rep", PASSWORD, "rep", ["103"])
    dave = await s.create_user("dave", "Dave Rep", PASSWORD, "rep", ["104"])
    for u in (carol, dave):
        await s.set_team(u.id or 0, east or 0, "test")
    await s.create_contact("Lead One", "", "", [], owner_id=alice.id, lead_status="new")
    await s.create_contact("Lead Two", "", "", [], owner_id=alice.id, lead_status="contacted")
    before = await s.handover_plan(world.people.admin, alice.id or 0, [carol.id or 0])
    assert (before.contacts, before.leads, before.callbacks) == (1, 2, 1)
    token = await login(client, "maria")
    page = await (await client.get("/handover")).text()
    assert "Carol Rep" in page and "Bob Rep" not in page  # her team only
    preview = await client.get(
        "/handover", params=[("from", str(alice.id)), ("to", str(carol.id)), ("to", str(dave.id))]
    )
    html = await preview.text()
    assert preview.status == 200 and 'id="handover-confirm"' in html
    assert re.search(r'id="total-leads">2<', html) and re.search(r'id="total-callbacks">1<', html)
    assert (await s.get_contact(world.grace.id or 0)).owner_id == alice.id  # nothing moved yet
    resp = await client.post(
        "/handover",
        data=[
            ("_csrf", token),
            ("from", str(alice.id)),
            ("to", str(carol.id)),
            ("to", str(dave.id)),
        ],
        allow_redirects=False,
    )
    assert resp.status == 303
    left = await s.handover_plan(world.people.admin, alice.id or 0, [carol.id or 0])
    assert (left.contacts, left.leads, left.callbacks) == (0, 0, 0)
    owners = {c.owner_id for c in await s.list_contacts(limit=100)} - {None}
    assert alice.id not in owners and {carol.id, dave.id} & owners
    [entry] = await s.list_audit(action="user.handover")
    assert entry.actor == "maria" and entry.detail["from"] == "alice"
    assert entry.detail["to"] == ["carol", "dave"] and entry.detail["leads"] == 2
    # otto (the other team's manager) cannot hand over alice's work, nor to bob from her
    client.session.cookie_jar.clear()
    token = await login(client, "otto")
    refused = await client.post(
        "/handover",
        data=[("_csrf", token), ("from", str(carol.id)), ("to", str(world.people.bob.id))],
    )
    assert refused.status == 400
    assert (await s.get_contact(world.grace.id or 0)).owner_id in (carol.id, dave.id)


# -- link down -------------------------------------------------------------------------
async def test_link_down_banner_and_healthz_503(
    client: TestClient, rt: Runtime, world: World
) -> None:
    assert (await client.get("/healthz")).status == 200
    await login(client, "alice")
    assert re.search(r'id="link-banner"[^>]*hidden', await (await client.get("/")).text())
    endpoint = "{host}:{port}".format(**rt.settings["ami"])
    up = LinkStatus("connected", NOW - 600, endpoint, None, 0, 0.0, None, 0)
    down = LinkStatus("disconnected", NOW - 120, endpoint, None, 0, 0.0, "refused", 1)
    retry = LinkStatus("connecting", NOW - 5, endpoint, None, 0, 0.0, "refused", 2)
    for st in (up, down, retry):
        board(rt).note(st)
    health = await client.get("/healthz")
    body = await health.json()
    assert health.status == 503 and body["ok"] is False
    assert body["link_down_since"] == NOW - 120  # since it dropped, not the last retry
    html = await (await client.get("/")).text()
    banner = html[html.index('id="link-banner"') :]
    banner = banner[: banner.index("</div>")]
    assert "hidden" not in banner.split(">")[0] and "The PBX link is down" in banner
    assert 'data-since="' + str(NOW - 120) in banner
    board(rt).note(LinkStatus("connected", NOW, endpoint, None, 0, 0.0, None, 2))
    assert (await client.get("/healthz")).status == 200


async def test_admin_puts_several_users_in_a_team_at_once(
    client: TestClient, rt: Runtime, world: World
) -> None:
    s = rt.service
    north = await s.create_team("North", "test")
    token = await login(client, "admin")
    page = await (await client.get("/admin/users")).text()
    assert 'id="bulk-team"' in page and 'name="user"' in page
    alice, bob = world.people.alice, world.people.bob
    resp = await client.post(
        "/admin/users/team",
        data=[
            ("_csrf", token),
            ("user", str(alice.id)),
            ("user", str(bob.id)),
            ("team_id", str(north.id)),
        ],
        allow_redirects=False,
    )
    assert resp.status == 303
    assert {u.team_id for u in await s.list_users() if u.id in (alice.id, bob.id)} == {north.id}
    [entry] = await s.list_audit(action="users.team")
    assert entry.detail["users"] == ["alice", "bob"]
    none = await client.post("/admin/users/team", data={"_csrf": token, "team_id": ""})
    assert none.status == 400
