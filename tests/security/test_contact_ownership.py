"""A rep cannot take a shared contact (or anyone's) for themself: owning a contact hides it
from the other reps, so a takeover through the API, the edit form or a merge would make
the customer disappear from everyone else's lists.  Managers and admins assign owners;
a rep may still share a contact they own.
"""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from crm.models import Contact
from web.runtime import Runtime

from .conftest import Clients, World


async def _shared(rt: Runtime, name: str = "Shared Sharon", phone: str = "+14155550321") -> Contact:
    return await rt.service.create_contact(name, "Shared Inc", "", [phone], owner_id=None)


async def _token(rt: Runtime, user_id: int | None) -> dict[str, str]:
    assert user_id is not None
    token = await rt.service.create_api_token(user_id, "sync", "admin")
    return {"Authorization": f"Bearer {token}"}


async def _bob_sees(bob: TestClient, contact_id: int | None) -> bool:
    resp = await bob.get(f"/contacts/{contact_id}", allow_redirects=False)
    return resp.status == 200


async def test_a_rep_cannot_take_a_shared_contact_through_the_api(
    clients: Clients, rt: Runtime, world: World
) -> None:
    shared = await _shared(rt)
    alice_id = world.people.alice.id
    headers = await _token(rt, alice_id)
    alice = clients.by_name["nobody"]  # no session cookie: the token decides
    resp = await alice.patch(f"/api/v1/contacts/{shared.id}", json={"owner_id": alice_id},
                             headers=headers)  # fmt: skip
    body = await resp.json()
    assert resp.status == 403, body
    assert body["error"]["field"] == "owner_id" and "manager" in body["error"]["message"]
    assert (await rt.service.get_contact(shared.id or 0)).owner_id is None
    assert await _bob_sees(clients.by_name["bob"], shared.id)
    # other fields of the shared contact stay editable for the rep
    resp = await alice.patch(f"/api/v1/contacts/{shared.id}", json={"company": "Shared Corp"},
                             headers=headers)  # fmt: skip
    assert resp.status == 200
    # a rep may share their own contact...
    mine = world.alice_contact.id
    resp = await alice.patch(f"/api/v1/contacts/{mine}", json={"owner_id": None},
                             headers=headers)  # fmt: skip
    assert resp.status == 200 and (await resp.json())["owner_id"] is None
    # ...and a manager may assign a shared contact to a rep of the team
    maria = await _token(rt, world.people.manager.id)
    resp = await alice.patch(f"/api/v1/contacts/{shared.id}", json={"owner_id": alice_id},
                             headers=maria)  # fmt: skip
    assert resp.status == 200 and (await resp.json())["owner_id"] == alice_id


async def test_a_rep_cannot_take_a_shared_contact_through_the_edit_form(
    clients: Clients, rt: Runtime, world: World
) -> None:
    shared = await _shared(rt)
    alice = clients.by_name["alice"]
    form = {"name": shared.name, "company": shared.company, "email": "",
            "phones": "+14155550321", "owner": str(world.people.alice.id), "tags": "",
            "_csrf": clients.csrf["alice"]}  # fmt: skip
    resp = await alice.post(f"/contacts/{shared.id}/edit", data=form, allow_redirects=False)
    assert resp.status == 403
    assert "only a manager can change the owner" in await resp.text()
    assert (await rt.service.get_contact(shared.id or 0)).owner_id is None
    assert await _bob_sees(clients.by_name["bob"], shared.id)
    # the same form, owner left shared, saves
    resp = await alice.post(f"/contacts/{shared.id}/edit", data={**form, "owner": ""},
                            allow_redirects=False)  # fmt: skip
    assert resp.status == 303


async def test_a_rep_cannot_take_a_shared_contact_by_merging(
    clients: Clients, rt: Runtime, world: World
) -> None:
    shared = await _shared(rt)
    alice = clients.by_name["alice"]
    mine = world.alice_contact
    for keep, other in ((mine.id, shared.id), (shared.id, mine.id)):
        resp = await alice.post(f"/contacts/{keep}/merge",
                                data={"other_id": str(other), "_csrf": clients.csrf["alice"]},
                                allow_redirects=False)  # fmt: skip
        assert resp.status == 403, await resp.text()
    after = await rt.service.get_contact(shared.id or 0)
    assert after.owner_id is None and after.phones[0].e164 == "+14155550321"
    assert await _bob_sees(clients.by_name["bob"], shared.id)
    # two shared cards (the same owner: nobody) a rep may still merge
    twin = await _shared(rt, "Sharon Shared", "+14155550322")
    resp = await alice.post(f"/contacts/{shared.id}/merge",
                            data={"other_id": str(twin.id), "_csrf": clients.csrf["alice"]},
                            allow_redirects=False)  # fmt: skip
    assert resp.status == 303
    assert (await rt.service.get_contact(shared.id or 0)).owner_id is None
    # a manager merges cards of different owners
    maria = clients.by_name["maria"]
    resp = await maria.post(f"/contacts/{shared.id}/merge",
                            data={"other_id": str(mine.id), "_csrf": clients.csrf["maria"]},
                            allow_redirects=False)  # fmt: skip
    assert resp.status == 303
