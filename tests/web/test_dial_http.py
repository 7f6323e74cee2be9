"""Click-to-call over HTTP against the replay PBX (the recorded Originate of Asterisk 22
capture 06, rep 103): the UI's POST /dial and the no-JavaScript form, one Originate
however often the rep clicks, progress on the bus in words, refusals in words."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ami_bridge.replay_pbx import OriginateScript, ReplayPbx
from crm.events import Subscription
from crm.models import Call, CallFilter, Contact, User
from tests.paths import ASTERISK22
from web.app import create_app
from web.pages.dial import EXTRA, clicktocall_of
from web.runtime import Runtime, open_runtime, start_link

from .conftest import PASSWORD, login, web_settings

CLICK = ASTERISK22 / "06-click-to-call" / "events.jsonl"
SECRET = "dial-test"


@dataclass
class World:
    rt: Runtime
    pbx: ReplayPbx
    client: TestClient
    carol: User
    contact: Contact

    def originates(self) -> list[dict[str, Any]]:
        return [m for m in self.pbx.received if m.get("Action", "").lower() == "originate"]


async def _world(aiohttp_client: Any, tmp_path: Path, dial: dict[str, Any],
                 with_pbx: bool = True) -> AsyncIterator[World]:  # fmt: skip
    pbx = ReplayPbx(None, speed=0, secret=SECRET)
    await pbx.start()
    settings = web_settings(
        tmp_path, dial=dial,
        ami={"host": "127.0.0.1", "port": pbx.port, "username": "crm", "secret": SECRET},
        pbx={"finish_grace": 0.05},
    )  # fmt: skip
    rt = await open_runtime(settings, with_link=False)
    rt.pbx = pbx
    try:
        carol = await rt.service.create_user("carol", "Carol Chen", PASSWORD, "rep", ["103"])
        await rt.service.create_user("admin", "Ada Admin", PASSWORD, "admin")
        contact = await rt.service.create_contact("Acme buyer", phones=["+14155550123"],
                                                  owner_id=carol.id)  # fmt: skip
        if with_pbx:
            await start_link(rt).wait_state("connected")
        client = await aiohttp_client(create_app(rt))
        yield World(rt, pbx, client, carol, contact)
    finally:
        await rt.close()


@pytest.fixture
async def w(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[World]:
    async for world in _world(
        aiohttp_client, tmp_path, {"per_user_per_minute": 100, "blocked": ["+1900*"]}
    ):
        yield world


async def dial_json(client: TestClient, csrf: str, number: str,
                    key: str | None = None) -> tuple[int, Any]:  # fmt: skip
    body: dict[str, str] = {"number": number}
    if key:
        body["request_key"] = key
    resp = await client.post(
        "/dial", json=body, headers={"X-CSRF-Token": csrf, "Accept": "application/json"}
    )
    return resp.status, await resp.json()


async def states(sub: Subscription, originate_id: str, until: str = "ended") -> list[tuple]:
    seen: list[tuple[str, str | None]] = []
    async with asyncio.timeout(5):
        while not seen or seen[-1][0] not in (until, "failed"):
            event = await sub.get()
            if event.kind == "click_progress" and event.payload["originate_id"] == originate_id:
                seen.append((event.payload["state"], event.payload["reason"]))
    return seen


async def recorded_call(rt: Runtime, originate_id: str) -> Call:
    async with asyncio.timeout(5):
        while True:
            page = await rt.service.list_calls(CallFilter(), 50)
            found = [c for c in page.items if c.originate_id == originate_id]
            if found:
                return found[0]
            await asyncio.sleep(0.02)


async def test_a_click_rings_the_rep_then_the_number_and_the_call_lands_on_the_contact(
    w: World,
) -> None:
    w.pbx.script_originate(OriginateScript.from_capture(CLICK, "c2c-0001"))
    csrf = await login(w.client, "carol")
    assert w.carol.id is not None
    sub = w.rt.bus.subscribe(user_ids=[w.carol.id], maxsize=1000)
    status, click = await dial_json(w.client, csrf, "(415) 555-0123", "click-1")
    assert status == 202
    assert (click["state"], click["number"], click["extension"]) == (
        "ringing_you",
        "+14155550123",
        "103",
    )
    assert await states(sub, click["originate_id"]) == [
        ("ringing_you", None),
        ("dialling", None),
        ("connected", None),
        ("ended", None),
    ]
    [sent] = w.originates()
    assert (sent["Channel"], sent["Exten"]) == ("PJSIP/103", "4155550123")
    call = await recorded_call(w.rt, click["originate_id"])
    assert (call.contact_id, call.user_id, call.answered) == (w.contact.id, w.carol.id, True)
    [entry] = await w.rt.service.list_audit(action="call.click_to_call")
    assert entry.actor == "carol"


async def test_double_clicks_and_retries_never_send_a_second_originate(w: World) -> None:
    w.pbx.script_originate(OriginateScript.from_capture(CLICK, "c2c-0001"), times=None)
    csrf = await login(w.client, "carol")
    answers = await asyncio.gather(*(dial_json(w.client, csrf, "+14155550123", "same-key")
                                     for _ in range(5)))  # fmt: skip
    assert {s for s, _ in answers} == {202}
    assert len({a["originate_id"] for _, a in answers}) == 1
    assert sum(not a["duplicate"] for _, a in answers) == 1
    # a second click on the same number moments later, with a fresh key, is the same call
    _, again = await dial_json(w.client, csrf, "+1 415 555 0123", "other-key")
    assert again["duplicate"] and again["originate_id"] == answers[0][1]["originate_id"]
    await w.pbx.wait_for(lambda: len(w.originates()) >= 1)
    await asyncio.sleep(0.1)  # room for a wrong second Originate to arrive
    assert len(w.originates()) == 1


async def test_refusals_are_in_words_and_dial_nothing(w: World) -> None:
    csrf = await login(w.client, "carol")
    status, body = await dial_json(w.client, csrf, "my friend Bob")
    assert status == 422 and "not a phone number" in body["error"]["message"]
    status, body = await dial_json(w.client, csrf, "+1 900 555 0100")
    assert status == 422 and "blocked" in body["error"]["message"]
    resp = await w.client.post("/dial", json={"number": "+14155550123"})
    assert resp.status == 403  # no CSRF header: not from our page
    w.client.session.cookie_jar.clear()
    csrf = await login(w.client, "admin")  # no extension: nothing to ring
    status, body = await dial_json(w.client, csrf, "+14155550123")
    assert status == 422 and "extension" in body["error"]["message"]
    assert w.originates() == []


async def test_without_javascript_tel_links_land_on_a_confirm_page_and_a_form_dials(
    w: World,
) -> None:
    w.pbx.script_originate(OriginateScript.from_capture(CLICK, "c2c-0001"))
    await login(w.client, "carol")
    page = await w.client.get("/dial", params={"number": "tel:+14155550123"})
    html = await page.text()
    assert page.status == 200 and 'action="/dial"' in html and "(415) 555-0123" in html
    assert w.originates() == []  # a GET never dials
    csrf = html.split('name="_csrf" value="', 1)[1].split('"', 1)[0]
    done = await w.client.post("/dial", data={"number": "+14155550123", "_csrf": csrf,
                                              "next": "/contacts"})  # fmt: skip
    text = await done.text()
    assert done.status == 200 and "Calling (415) 555-0123" in text and "extension 103" in text
    await w.pbx.wait_for(lambda: len(w.originates()) == 1)


async def test_rate_limit_from_the_dial_settings(aiohttp_client: Any, tmp_path: Path) -> None:
    async for world in _world(aiohttp_client, tmp_path, {"per_user_per_minute": 1}):
        world.pbx.script_originate(OriginateScript.failure(reason=3), times=None)
        csrf = await login(world.client, "carol")
        assert (await dial_json(world.client, csrf, "+14155550123"))[0] == 202
        status, body = await dial_json(world.client, csrf, "+14155550124")
        assert status == 429 and "too fast" in body["error"]["message"]
        assert len(world.originates()) == 1


async def test_a_down_pbx_link_is_reported_as_such(aiohttp_client: Any, tmp_path: Path) -> None:
    async for world in _world(aiohttp_client, tmp_path, {}, with_pbx=False):
        csrf = await login(world.client, "carol")
        status, click = await dial_json(world.client, csrf, "+14155550123")
        assert status == 202
        assert (click["state"], click["reason"]) == ("failed", "PBX link down")


async def test_unusable_dial_settings_disable_click_to_call_with_a_clear_answer(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    async for world in _world(aiohttp_client, tmp_path, {"channel_template": "nonsense"},
                              with_pbx=False):  # fmt: skip
        assert clicktocall_of(world.rt) is None and EXTRA not in world.rt.extras
        csrf = await login(world.client, "carol")
        status, body = await dial_json(world.client, csrf, "+14155550123")
        assert status == 503 and "not set up" in body["error"]["message"]
