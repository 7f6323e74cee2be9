"""Issue 15, part B in Chromium: the handover preview and confirmation (a manager), the
PBX link-down banner arriving live over SSE (every user), converting a lead from its
card, the header search and the lead statistics.  Screenshots of the new pages for the
README (with UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import time

from playwright.async_api import Browser, expect

from tests.crm.factories import inbound
from tests.paths import ASTERISK22
from tests.web.conftest import PASSWORD

from .conftest import Site, login_page, pbx_site_factory, screenshot

pbx_site = pbx_site_factory(ASTERISK22 / "01-inbound-answered" / "events.jsonl")


async def _team(site: Site) -> tuple[int, int]:
    """Maria manages alice and a new rep, carol; alice owns customers, leads, a callback."""
    rt, p = site.rt, site.people
    s = rt.service
    team = await s.create_team("Sales", "admin")
    carol = await s.create_user("carol", "Carol Rep", PASSWORD, "rep", ["103"], team.id)
    for user in (p.manager, p.alice):
        await s.set_team(user.id or 0, team.id or 0, "admin")
    for i, (name, lead) in enumerate(
        [("Acme Corp", None), ("Globex", None), ("Hooli", "new"), ("Initech", "qualified")]
    ):
        await s.create_contact(name, name, "", [f"+1415555{1200 + i:04d}"],
                               owner_id=p.alice.id, lead_status=lead)  # fmt: skip
    await rt.ingest.handle(inbound("+14155551200", answered_by=None, at=time.time() - 600))
    [task] = await s.list_callbacks(None, "open")
    task.owner_id = p.alice.id
    await rt.store.save_callback(task)
    return p.alice.id or 0, carol.id or 0


async def test_a_manager_previews_and_confirms_a_handover(browser: Browser, site: Site) -> None:
    alice, carol = await _team(site)
    page = await login_page(browser, site, "maria")
    await page.click("nav.mainnav >> text=Handover")
    await page.select_option("select[name=from]", str(alice))
    await expect(page.locator("fieldset.receivers")).not_to_contain_text("Bob Rep")
    await page.check(f"input[name=to][value='{carol}']")
    await page.click("#handover-pick button[type=submit]")
    preview = page.locator("#handover-preview")
    await expect(preview).to_contain_text("What moves from Alice Rep")
    await expect(page.locator("#total-contacts")).to_have_text("2")
    await expect(page.locator("#total-leads")).to_have_text("2")
    await expect(page.locator("#total-callbacks")).to_have_text("1")
    await screenshot(page, "handover-preview")
    # nothing moved yet
    assert {c.owner_id for c in await site.rt.service.list_contacts(limit=50)} == {alice}
    await page.click("#handover-confirm button")
    await expect(page.locator(".alert.ok")).to_contain_text("Handover done: 4 contacts and 1")
    assert {c.owner_id for c in await site.rt.service.list_contacts(limit=50)} == {carol}


async def test_every_user_sees_the_link_down_banner_live(browser: Browser, pbx_site: Site) -> None:
    rep = await login_page(browser, pbx_site, "alice")
    banner = rep.locator("#link-banner")
    await expect(rep.locator("#link-dot.connected")).to_have_count(1)
    await expect(banner).to_be_hidden()
    assert pbx_site.pbx is not None
    await pbx_site.pbx.close()  # the PBX goes away: the link drops and keeps retrying
    await expect(banner).to_be_visible(timeout=10_000)
    await expect(banner).to_contain_text("The PBX link is down")
    await expect(banner.locator(".link-since")).not_to_have_text("")
    await screenshot(rep, "link-down-banner")
    # on page load too, and for a manager who was not watching
    boss = await login_page(browser, pbx_site, "maria")
    await expect(boss.locator("#link-banner")).to_be_visible()
    await rep.reload()
    await expect(rep.locator("#link-banner")).to_be_visible()


async def test_convert_a_lead_search_and_lead_statistics(browser: Browser, site: Site) -> None:
    await _team(site)
    rt = site.rt
    lead = (await rt.ingest.record(inbound("+14155550142", at=time.time() - 300))).lead_created
    assert lead is not None
    page = await login_page(browser, site, "alice")
    await page.goto(f"{site.url}/contacts/{lead.id}")
    await page.click("text=Convert to customer…")
    await expect(page.locator("input[name=name]")).to_have_value("")
    await page.fill("input[name=name]", "Linus Pauling")
    await page.fill("input[name=company]", "Caltech")
    await screenshot(page, "lead-convert")
    await page.click("#convert-form button[type=submit]")
    await expect(page.locator("h1")).to_contain_text("Linus Pauling")
    await expect(page.locator(".tl-lead")).to_contain_text("Converted to a customer")
    await expect(page.locator(".tl-lead")).to_contain_text("by Alice Rep")
    # the header search, from any page: part of a number finds the contact and its calls
    await page.fill("form.topsearch input[name=q]", "555 0142")
    await page.press("form.topsearch input[name=q]", "Enter")
    await expect(page.locator("#search-contacts")).to_contain_text("Linus Pauling")
    await expect(page.locator("#search-calls tr.call-row")).to_have_count(1)
    await screenshot(page, "search")
    boss = await login_page(browser, site, "maria")
    await boss.goto(f"{site.url}/reports")
    await boss.click("text=Lead statistics")
    await expect(boss.locator("#lead-figures")).to_contain_text("converted")
    await expect(boss.locator("#leads-by-rep")).to_contain_text("Alice Rep")
    await screenshot(boss, "lead-statistics")
