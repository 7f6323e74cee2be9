"""The stored-XSS check a person would make: open the pages that show a hostile contact,
lead and note in a real browser and see that no script ran (no alert dialog), also when
the screen pop for a hostile caller-ID arrives live over SSE."""

from __future__ import annotations

import time

import pytest
from playwright.async_api import Browser, Dialog

from ami_bridge.facts import CallProgress
from tests.browser.conftest import Site, browser, login_page, site  # noqa: F401
from tests.crm.factories import inbound

from .test_xss import CALLER_ID, COMMENT, COMPANY, CUSTOM, NAME, TAGS, TOPIC

pytestmark = pytest.mark.browser


async def test_no_script_runs_on_pages_with_hostile_text(browser: Browser,  # noqa: F811
                                                         site: Site) -> None:  # noqa: F811
    rt, alice = site.rt, site.people.alice
    now = time.time()
    mallory = await rt.service.create_contact(NAME, COMPANY, "", ["+14155550600"],
                                              owner_id=alice.id, tags=TAGS, custom=CUSTOM)
    call = (await rt.ingest.record(inbound("+14155550600", at=now - 60))).call
    assert call.id is not None
    await rt.service.add_note(call.id, alice.id, TOPIC, "", COMMENT)
    await rt.ingest.record(inbound("+14155550601", at=now - 30, caller_name=CALLER_ID))
    page = await login_page(browser, site, "alice")
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    for path in ("/", "/calls", "/contacts", "/leads", f"/contacts/{mallory.id}",
                 f"/contacts/{mallory.id}/edit", f"/calls/{call.id}"):  # fmt: skip
        await page.goto(f"{site.url}{path}")
        await page.wait_for_load_state("networkidle")
    await page.goto(f"{site.url}/")
    await page.wait_for_timeout(500)  # the SSE stream is open
    await rt.ingest.handle(CallProgress("xss.b", "ringing", "inbound", "+14155550603",
                                        CALLER_ID, "5551000", "5551000", ("101",), None,
                                        time.time()))  # fmt: skip
    await page.wait_for_timeout(1500)
    assert dialogs == []
    assert await page.locator("img[src=x]").count() == 0
    # the page's strings and formats (#crm-i18n) are a JSON data block, never run
    assert await page.locator('script:not([src]):not([type="application/json"])').count() == 0
    assert await page.locator('script[type="application/json"]').count() == 1
    await page.goto(f"{site.url}/contacts/{mallory.id}")
    assert NAME.split("\u202e")[0] in (await page.inner_text("body"))
    await page.context.close()
