"""A rep clicks a number on a contact card: their toast follows the call live (ringing
you, dialling, connected), the replay PBX gets exactly one Originate, and the call shows
up on the contact's page.  The PBX side is Asterisk 22 capture 06 (rep 103)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Browser

from ami_bridge.replay_pbx import OriginateScript
from tests.paths import ASTERISK22
from tests.web.conftest import PASSWORD

from .conftest import Site, login_page, pbx_site_factory, screenshot

pytestmark = pytest.mark.browser
CLICK = ASTERISK22 / "06-click-to-call" / "events.jsonl"
pbx_site = pbx_site_factory(CLICK)


def originates(site: Site) -> list[dict[str, Any]]:
    assert site.pbx is not None
    return [m for m in site.pbx.received if m.get("Action", "").lower() == "originate"]


async def test_clicking_a_number_calls_it_and_the_call_lands_on_the_contact(
    browser: Browser, pbx_site: Site
) -> None:
    rt, pbx = pbx_site.rt, pbx_site.pbx
    assert pbx is not None
    carol = await rt.service.create_user("carol", "Carol Chen", PASSWORD, "rep", ["103"])
    contact = await rt.service.create_contact(
        "Acme Buyer", company="Acme", phones=["+14155550123"], owner_id=carol.id
    )
    pbx.script_originate(OriginateScript.from_capture(CLICK, "c2c-0001"))
    page = await login_page(browser, pbx_site, "carol")
    await page.goto(f"{pbx_site.url}/contacts/{contact.id}")
    await page.wait_for_function("() => document.body.dataset.live === '1'")  # SSE is open
    number = page.locator('a.dial[data-dial="+14155550123"]').first
    await number.dblclick()  # a double click, as people do
    toast = page.locator(".dial-toast").first
    await toast.wait_for()
    await page.wait_for_function(
        "() => ['connected', 'ended'].includes("
        "document.querySelector('.dial-toast')?.dataset.state)"
    )
    words = await toast.text_content()
    assert words is not None and ("Connected to" in words or "Call ended" in words)
    await page.wait_for_timeout(400)  # let the screen pop of the same call fade out
    await screenshot(page, "click-to-call")
    assert len(originates(pbx_site)) == 1
    sent = originates(pbx_site)[0]
    assert (sent["Channel"], sent["Exten"]) == ("PJSIP/103", "4155550123")

    async with asyncio.timeout(10):  # the call record follows the hangup
        while not (await rt.service.list_calls()).items:
            await asyncio.sleep(0.05)
    [call] = (await rt.service.list_calls()).items
    assert (call.contact_id, call.user_id, call.answered) == (contact.id, carol.id, True)
    await page.goto(f"{pbx_site.url}/contacts/{contact.id}")
    assert await page.locator(f'a[href="/calls/{call.id}"]').count() >= 1
    await page.goto(f"{pbx_site.url}/calls/{call.id}")
    assert "Acme Buyer" in (await page.content())
