"""A screen pop shows only what the ringing rep may see.

Bob's customer calls and the ring group rings alice's phone: her pop (over SSE) and her
live list must not name the customer, their company, their owner, whom they last spoke to
or whose callback is open; she gets the number and a "known contact of another rep"
marker.  An admin watching the same call sees everything (the control).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp.test_utils import TestClient

from tests.crm.factories import inbound
from tests.web.conftest import People, login
from tests.web.test_live import Stream, progress, ring
from web.app import create_app
from web.live import jsonable
from web.runtime import Runtime

PRIVATE = ("Grace Hopper", "Navy Computing", "Bob Rep")


async def _stream(client: TestClient) -> Stream:
    resp = await client.get("/events")
    assert resp.status == 200
    return Stream(resp)


async def test_a_pop_for_another_reps_customer_hides_the_contact(
    rt: Runtime, people: People, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    grace = await rt.service.create_contact("Grace Hopper", "Navy Computing", "",
                                            ["+14155550199"], owner_id=people.bob.id)  # fmt: skip
    now = time.time()
    await rt.ingest.record(inbound("+14155550199", answered_by="102", at=now - 3600))
    await rt.ingest.record(inbound("+14155550199", answered_by=None, at=now - 600))
    server = await aiohttp_server(create_app(rt))
    alice: TestClient = await aiohttp_client(server)
    admin: TestClient = await aiohttp_client(server)
    await login(alice, "alice")
    await login(admin, "admin")
    alice_events, admin_events = await _stream(alice), await _stream(admin)
    await ring(rt, progress(ringing=("101",), linkedid="priv.1"))
    pop = await alice_events.next_of("call_progress")
    while not pop["details"]:
        pop = await alice_events.next_of("call_progress")
    assert pop["pop"] == "ringing"
    text = json.dumps(pop)
    for secret in PRIVATE:
        assert secret not in text, f"the pop tells alice {secret!r}"
    assert str(grace.id) not in json.dumps(pop["contact"])
    assert f"/contacts/{grace.id}" not in text
    assert pop["contact"]["other_rep"] is True and pop["contact"]["id"] is None
    assert pop["last_call"] is None and pop["open_callback"] is None
    assert pop["can_open"] is False
    assert pop["number"] == "+14155550199"  # what she may know: who is calling
    assert "row_html" not in pop  # her browser words the row from other_rep alone
    # the live list she loads while it rings says the same
    home = await (await alice.get("/")).text()
    assert 'data-linkedid="priv.1"' in home
    for secret in PRIVATE:
        assert secret not in home
    assert "known contact of another rep" in home
    # the control: the admin sees who calls
    seen = await admin_events.next_of("call_progress")
    while not seen["details"]:
        seen = await admin_events.next_of("call_progress")
    assert seen["contact"]["name"] == "Grace Hopper" and seen["contact"]["owner"] == "Bob Rep"
    assert seen["last_call"] is not None and seen["open_callback"] is not None
    await asyncio.sleep(0)


async def test_a_pop_for_a_shared_contact_still_names_it(
    rt: Runtime, people: People, aiohttp_client: Any, aiohttp_server: Any
) -> None:
    """Shared contacts (no owner) are everyone's: the pop names them."""
    await rt.service.create_contact("Shared Sam", "Open Co", "", ["+14155550188"])
    server = await aiohttp_server(create_app(rt))
    alice: TestClient = await aiohttp_client(server)
    await login(alice, "alice")
    events = await _stream(alice)
    await ring(rt, progress(ringing=("101",), caller="+14155550188", linkedid="shared.1"))
    pop = await events.next_of("call_progress")
    while not pop["details"]:
        pop = await events.next_of("call_progress")
    assert pop["contact"]["name"] == "Shared Sam" and pop["can_open"] is True
    assert pop["contact"]["url"] == f"/contacts/{pop['contact']['id']}"


async def test_a_call_seeded_from_the_store_hides_another_reps_customer(
    rt: Runtime, people: People, client: TestClient
) -> None:
    """A page loaded mid-call (the hub learns the call from the store's ``live_calls``,
    before any details lookup) hides the name just the same."""
    await rt.service.create_contact("Grace Hopper", "Navy Computing", "", ["+14155550199"],
                                    owner_id=people.bob.id)  # fmt: skip
    ringing = progress(ringing=("101",), linkedid="seed.1")
    snapshot = {"progress": jsonable(ringing), "started_at": ringing.at, "rung": ["101"],
                "answered_at": None}  # fmt: skip
    assert await rt.store.save_live_call("seed.1", None, snapshot, ringing.at)
    await login(client, "alice")
    html = await (await client.get("/")).text()
    assert 'data-linkedid="seed.1"' in html
    for secret in PRIVATE:
        assert secret not in html
    await login(client, "admin")  # the control: the admin sees who calls
    html = await (await client.get("/")).text()
    live = html[html.index('id="live-calls"'):].split("</table>", 1)[0]
    assert 'data-linkedid="seed.1"' in live and "Grace Hopper" in live
