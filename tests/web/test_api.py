"""The JSON API as an integrator meets it: bearer tokens, JSON in and out, cursor pages,
errors that name the field, and a rep's token that sees what the rep sees in the UI.
Every answer is checked against the OpenAPI document by ``Api``."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient

from crm.models import Call
from tests.crm import factories
from web.runtime import Runtime

from .apicheck import Api
from .conftest import People, login


@dataclass
class Team:
    alice: Api
    bob: Api
    maria: Api
    otto: Api
    admin: Api


@pytest.fixture
async def apis(rt: Runtime, people: People, client: TestClient) -> Team:
    """Alice, Bob and Maria (their manager) in one team; Otto manages another."""
    s = rt.service
    sales = await s.create_team("Sales", "admin")
    other = await s.create_team("Other", "admin")
    for user in (people.alice, people.bob, people.manager):
        assert user.id is not None
        await s.set_team(user.id, sales.id, "admin")
    assert people.other_manager.id is not None
    await s.set_team(people.other_manager.id, other.id, "admin")

    async def api(user_id: int | None) -> Api:
        assert user_id is not None
        return Api(client, await s.create_api_token(user_id, "test", "admin"))

    return Team(
        await api(people.alice.id), await api(people.bob.id), await api(people.manager.id),
        await api(people.other_manager.id), await api(people.admin.id),
    )  # fmt: skip


async def ingest(rt: Runtime, record: object) -> Call:
    result = await rt.ingest.record(record)  # type: ignore[arg-type]
    return result.call


async def test_me_and_token_auth(client: TestClient, apis: Team, rt: Runtime,
                                 people: People) -> None:  # fmt: skip
    status, me = await apis.alice.get("/me")
    assert status == 200
    assert (me["username"], me["role"], me["extensions"], me["auth"]) == (
        "alice",
        "rep",
        ["101"],
        "token",
    )
    status, body = await Api(client).get("/me")
    assert status == 401 and body["error"]["status"] == 401
    status, body = await Api(client, "crm_not-a-real-token").get("/me")
    assert status == 401 and "token" in body["error"]["message"]
    tokens = await rt.service.list_api_tokens(people.bob.id)
    assert await rt.service.revoke_api_token(tokens[0].id, "admin")
    status, _ = await apis.bob.get("/me")
    assert status == 401


async def test_contacts_create_read_update_delete(apis: Team, people: People) -> None:
    status, made = await apis.alice.post("/contacts", {
        "name": "Dana Diaz", "company": "Acme", "email": "dana@acme.example",
        "phones": ["(415) 555-0142"], "tags": ["vip"]})  # fmt: skip
    assert status == 201
    assert made["owner_id"] == people.alice.id  # a rep's new contact is theirs
    assert made["phones"][0]["e164"] == "+14155550142"
    cid = made["id"]
    status, got = await apis.alice.get(f"/contacts/{cid}")
    assert status == 200 and got == made
    status, changed = await apis.alice.patch(
        f"/contacts/{cid}", {"company": "Acme Inc", "tags": ["vip", "eu"]}
    )
    assert status == 200 and changed["company"] == "Acme Inc" and changed["tags"] == ["eu", "vip"]
    status, body = await apis.alice.delete(f"/contacts/{cid}")
    assert status == 403  # reps do not delete contacts
    status, _ = await apis.maria.delete(f"/contacts/{cid}")
    assert status == 204
    status, body = await apis.alice.get(f"/contacts/{cid}")
    assert status == 404 and body["error"]["status"] == 404


async def test_search_by_any_number_format_and_name(apis: Team) -> None:
    await apis.alice.post("/contacts", {"name": "Erin Example", "phones": ["+44 20 7946 0958"]})
    await apis.alice.post("/contacts", {"name": "Frank Other", "phones": ["+14155550101"]})
    for q in ("+44 20 7946 0958", "0044 20 7946 0958", "7946-0958", "erin"):
        status, page = await apis.alice.get("/contacts", params={"q": q})
        assert status == 200
        assert [c["name"] for c in page["items"]] == ["Erin Example"], q


async def test_cursor_pages_walk_every_contact_once(apis: Team) -> None:
    for i in range(7):
        await apis.alice.post("/contacts", {"name": f"Contact {i}"})
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        status, page = await apis.alice.get("/contacts", params=params)
        assert status == 200 and len(page["items"]) <= 3
        seen += [c["name"] for c in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"Contact {i}" for i in range(7)] and pages == 3


async def test_a_reps_token_sees_only_the_reps_work(rt: Runtime, apis: Team,
                                                    people: People) -> None:  # fmt: skip
    _, mine = await apis.alice.post("/contacts", {"name": "Alice's client"})
    _, theirs = await apis.bob.post("/contacts", {"name": "Bob's client"})
    _, shared = await apis.maria.post("/contacts", {"name": "Shared client"})
    a_call = await ingest(rt, factories.inbound("+14155550111", answered_by="101"))
    b_call = await ingest(rt, factories.inbound("+14155550122", answered_by="102",
                                                at=factories.T0 + 60))  # fmt: skip

    async def names(api: Api) -> set[str]:
        _, page = await api.get("/contacts", params={"limit": "500"})
        return {c["name"] for c in page["items"] if c["name"].endswith("client")}

    async def call_ids(api: Api) -> set[int]:
        _, page = await api.get("/calls")
        return {c["id"] for c in page["items"]}

    assert await names(apis.alice) == {"Alice's client", "Shared client"}
    assert await names(apis.maria) == {"Alice's client", "Bob's client", "Shared client"}
    assert await names(apis.otto) == {"Shared client"}
    assert await names(apis.admin) == {"Alice's client", "Bob's client", "Shared client"}
    assert await call_ids(apis.alice) == {a_call.id}
    assert await call_ids(apis.bob) == {b_call.id}
    assert await call_ids(apis.maria) == {a_call.id, b_call.id}
    assert await call_ids(apis.otto) == set()
    # a get of something outside the scope answers as if it did not exist
    assert (await apis.alice.get(f"/contacts/{theirs['id']}"))[0] == 404
    assert (await apis.alice.patch(f"/contacts/{theirs['id']}", {"name": "x"}))[0] == 404
    assert (await apis.alice.get(f"/calls/{b_call.id}"))[0] == 404
    assert (await apis.otto.get(f"/calls/{a_call.id}"))[0] == 404
    assert (await apis.maria.get(f"/calls/{b_call.id}"))[0] == 200
    assert (await apis.alice.get(f"/contacts/{shared['id']}"))[0] == 200
    # nor can a rep hand a contact to someone else, or search their way into other work
    status, body = await apis.alice.patch(f"/contacts/{mine['id']}", {"owner_id": people.bob.id})
    assert status == 403 and body["error"]["field"] == "owner_id"
    _, found = await apis.alice.get("/contacts", params={"q": "client"})
    assert {c["name"] for c in found["items"]} == {"Alice's client", "Shared client"}


async def test_call_filters_like_the_ui(rt: Runtime, apis: Team) -> None:
    t0 = factories.T0
    answered = await ingest(rt, factories.inbound("+14155550111", answered_by="101", at=t0))
    missed = await ingest(rt, factories.inbound("+14155550122", answered_by=None, at=t0 + 600))
    out = await ingest(rt, factories.outbound("4155550133", "+14155550133", at=t0 + 1200))

    async def ids(**params: str) -> list[int]:
        status, page = await apis.admin.get("/calls", params=params)
        assert status == 200
        return [c["id"] for c in page["items"]]

    assert await ids() == [out.id, missed.id, answered.id]  # newest first
    assert await ids(direction="outbound") == [out.id]
    assert await ids(outcome="missed") == [missed.id]
    assert await ids(number="(415) 555-0122") == [missed.id]
    assert await ids(since="2026-11-22T10:04:00Z") == [out.id, missed.id]
    assert await ids(until=str(t0 + 1)) == [answered.id]
    assert answered.contact_id is not None
    assert await ids(contact=str(answered.contact_id)) == [answered.id]
    assert await ids(user=str(answered.user_id)) == [out.id, answered.id]
    status, call = await apis.admin.get(f"/calls/{missed.id}")
    assert status == 200 and call["outcome"] == "missed" and call["direction"] == "inbound"
    status, page = await apis.admin.get("/calls", params={"limit": "2"})
    status, rest = await apis.admin.get("/calls", params={"cursor": page["next_cursor"]})
    assert [c["id"] for c in page["items"] + rest["items"]] == [out.id, missed.id, answered.id]


async def test_leads_list_and_convert(rt: Runtime, apis: Team) -> None:
    await ingest(rt, factories.inbound("+14155550177", answered_by=None))  # a missed call lead
    _, manual = await apis.alice.post("/contacts", {"name": "Gail", "lead_status": "qualified"})
    _, customer = await apis.alice.post("/contacts", {"name": "Hank"})
    status, page = await apis.admin.get("/leads")
    assert status == 200
    names = {c["name"] for c in page["items"]}
    assert "Gail" in names and "Hank" not in names and len(names) == 2
    _, only = await apis.admin.get("/leads", params={"status": "qualified"})
    assert [c["name"] for c in only["items"]] == ["Gail"]
    status, done = await apis.alice.post(f"/leads/{manual['id']}/convert")
    assert status == 200 and done["lead"]["status"] == "converted"
    status, body = await apis.alice.post(f"/leads/{customer['id']}/convert")
    assert status == 422 and "not a lead" in body["error"]["message"]


async def test_leads_pages_come_from_the_store_within_scope(
    rt: Runtime, apis: Team, people: People
) -> None:
    s = rt.service
    made = []
    for i in range(7):
        owner = people.alice.id if i % 2 else people.bob.id
        lead = "new" if i % 3 else None  # customers in between are skipped
        made.append(await s.create_contact(f"P{i}", owner_id=owner, lead_status=lead))
    leads = [c for c in made if c.lead is not None]
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, page = await apis.admin.get("/leads", params=params)
        assert status == 200 and len(page["items"]) <= 2
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [c.id for c in leads]
    _, mine = await apis.alice.get("/leads", params={"status": "new"})
    hers = [c.id for c in leads if c.owner_id == people.alice.id]
    assert [c["id"] for c in mine["items"]] == hers
    status, body = await apis.alice.get("/leads", params={"cursor": "nope"})
    assert status == 400 and body["error"]["field"] == "cursor"


async def test_callbacks_of_missed_calls(rt: Runtime, apis: Team) -> None:
    await ingest(rt, factories.inbound("+14155550188", answered_by=None))
    status, page = await apis.alice.get("/callbacks")
    assert status == 200
    assert [t["number_e164"] for t in page["items"]] == ["+14155550188"]
    assert page["items"][0]["status"] == "open"
    _, closed = await apis.alice.get("/callbacks", params={"status": "closed"})
    assert closed["items"] == []
    status, body = await apis.alice.get("/callbacks", params={"cursor": "nonsense"})
    assert status == 400 and body["error"]["field"] == "cursor"


async def test_bad_input_is_named_never_a_500(client: TestClient, apis: Team) -> None:
    cases = [
        ({"email": "not-an-address", "name": "x"}, "email"),
        ({"name": "x", "phones": ["banana"]}, "phones"),
        ({"name": "x", "phones": "+14155550100"}, "phones"),
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": 12}, "name"),
        ({"name": "x", "lead_status": "hot"}, "lead_status"),
        ({}, "name"),
    ]
    for body, field in cases:
        status, answer = await apis.alice.post("/contacts", body)
        assert status == 422, body
        assert answer["error"]["field"].startswith(field), (body, answer)
    resp = await client.post(
        "/api/v1/contacts",
        data="{not json",
        headers={**apis.alice.headers, "Content-Type": "application/json"},
    )
    assert resp.status == 400 and (await resp.json())["error"]["status"] == 400
    for params in (
        {"limit": "lots"},
        {"limit": "0"},
        {"since": "yesterday-ish"},
        {"direction": "sideways"},
        {"cursor": "garbage"},
        {"user": "x"},
    ):
        status, answer = await apis.alice.get("/calls", params=params)
        assert status == 400, params
        assert answer["error"]["field"] in params
    for path in ("/contacts/abc", "/contacts/0", "/calls/99999999999999999999"):
        status, _ = await apis.alice.get(path)
        assert status == 404, path
    status, _ = await apis.alice.patch("/contacts/1", {})
    assert status in (404, 422)


async def test_the_apps_own_js_uses_the_session_and_csrf(client: TestClient,
                                                         people: People) -> None:  # fmt: skip
    csrf = await login(client, "alice")
    resp = await client.post("/api/v1/contacts", json={"name": "No token"})
    assert resp.status == 403  # a session without the CSRF header is refused
    status, made = await Api(client, csrf=csrf).post("/contacts", {"name": "With token"})
    assert status == 201 and made["name"] == "With token"
    status, me = await Api(client).get("/me")
    assert status == 200 and me["auth"] == "session"


async def test_click_to_call_through_the_api_without_a_pbx(apis: Team) -> None:
    status, click = await apis.alice.post(
        "/calls", {"number": "(415) 555-0123", "request_key": "k1"}
    )
    assert status == 202
    assert (click["number"], click["extension"]) == ("+14155550123", "101")
    assert (click["state"], click["reason"]) == ("failed", "PBX link down")
    status, body = await apis.alice.post("/calls", {"number": "call me maybe"})
    assert status == 422 and body["error"]["field"] == "number"
    status, body = await apis.admin.post("/calls", {"number": "+14155550123"})
    assert status == 422 and body["error"]["code"] == "no_extension"
    status, body = await apis.alice.post("/calls", {"number": "+14155550123", "extension": "102"})
    assert status == 422 and body["error"]["field"] == "extension"


async def test_a_call_carries_its_transfers_declines_and_completeness(
    rt: Runtime, apis: Team
) -> None:
    """What a manager sees on the call page is in the API too (checked against the
    OpenAPI document by ``Api``): who declined, where transfers went, partial figures."""
    from ami_bridge.facts import Transfer

    t0 = factories.T0
    record = factories.inbound(
        "+14155550177", answered_by="102", at=t0, rang=("101", "102"), declined=("101",),
        final_agent="+14155550188", complete=False,
        transfers=(Transfer("blind", "102", "+14155550188", t0 + 6),),
    )  # fmt: skip
    call = await ingest(rt, record)
    status, body = await apis.admin.get(f"/calls/{call.id}")
    assert status == 200
    assert body["rang"] == ["101", "102"] and body["declined"] == ["101"]
    assert body["transfers"] == [
        {"kind": "blind", "from": "102", "to": "+14155550188", "at": "2026-11-22T09:55:00.000Z"}
    ]
    assert body["final_agent"] == "+14155550188" and body["complete"] is False
    _, page = await apis.admin.get("/calls")
    assert page["items"][0]["transfers"] == body["transfers"]
