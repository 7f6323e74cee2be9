"""The managers' and admins' pages in Chromium, logged in as each role: a rep is turned
away, a manager audits missed calls (filters, CSV) and reads the charts, an admin tests
the PBX link, adds a user and reads the audit log.  Screenshots for the README."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.async_api import Browser

from tests.crm.factories import inbound, outbound
from tests.paths import ASTERISK22

from .conftest import Site, login_page, pbx_site_factory, screenshot

pbx_site = pbx_site_factory(ASTERISK22 / "01-inbound-answered" / "events.jsonl")
DAY = 86_400.0


async def seed(site: Site) -> None:
    """A week of calls ending an hour ago: answered and lost calls on two lines, some
    called back in time, some late, some still open; maria manages alice and bob."""
    rt, p = site.rt, site.people
    team = await rt.service.create_team("Sales", "admin")
    for user in (p.manager, p.alice, p.bob):
        await rt.service.set_team(user.id, team.id, "admin")  # type: ignore[arg-type]
    await rt.service.create_contact("Acme Corp", phones=["+14155550100"], owner_id=p.alice.id)
    start = time.time() - 7 * DAY
    n = 0
    for day in range(7):
        for slot in range(3 + day % 3):
            at = start + day * DAY + (9 + slot * 2) * 3600 + slot * 420
            n += 1
            number = f"+1415555{n % 9 + 100:04d}" if n % 4 else "+14155550100"
            did = "5551000" if n % 3 else "5552000"
            if n % 5 in (1, 3):
                outcome = ("missed", "abandoned", "busy")[n % 3]
                await rt.ingest.handle(
                    inbound(number, answered_by=None, outcome=outcome, at=at, did=did)
                )
                if n % 2:
                    delay = 600 if n % 3 else 5400
                    caller = "101" if n % 4 else "102"
                    await rt.ingest.handle(
                        outbound(number[2:], number, caller=caller, at=at + 15 + delay)
                    )
            else:
                rep = "101" if n % 2 else "102"
                await rt.ingest.handle(
                    inbound(
                        number, answered_by=rep, at=at, did=did, talk_seconds=60.0 + 37 * (n % 7)
                    )
                )


async def test_a_rep_is_turned_away(browser: Browser, site: Site) -> None:
    page = await login_page(browser, site, "alice")
    nav = await page.inner_text("nav.mainnav")
    assert "Missed calls" not in nav and "Admin" not in nav
    for path in ("/missed", "/reports", "/admin", "/admin/users"):
        resp = await page.goto(f"{site.url}{path}")
        assert resp is not None and resp.status == 403
        assert "403" in await page.inner_text("main")


async def test_a_manager_audits_missed_calls_and_reads_reports(
    browser: Browser, site: Site
) -> None:
    await seed(site)
    page = await login_page(browser, site, "maria")
    await page.click("nav.mainnav >> text=Missed calls")
    await page.wait_for_url(f"{site.url}/missed")
    figures = await page.inner_text("section.figures")
    assert "missed rate" in figures and "median time to callback" in figures
    rows = page.locator("table.missed-table tbody tr[data-call]")
    total = await rows.count()
    assert total > 3
    assert "Acme Corp" in await page.inner_text("table.missed-table")
    await screenshot(page, "missed")

    await page.select_option("select[name=outcome]", "busy")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url("**/missed?*outcome=busy*")
    badges = await page.locator("table.missed-table tbody tr[data-call] .badge.busy").count()
    assert 0 < await rows.count() < total and badges == await rows.count()

    async with page.expect_download() as info:
        await page.click("text=Export CSV")
    download = await info.value
    text = Path(str(await download.path())).read_text(encoding="utf-8")
    lines = text.strip().splitlines()
    assert lines[0].startswith("started,caller,contact,line,rang")
    assert len(lines) - 1 == badges and all(",busy," in line for line in lines[1:])

    await page.click("nav.mainnav >> text=Reports")
    await page.wait_for_url(f"{site.url}/reports")
    charts = page.locator("figure.chart svg[role=img]")
    assert await charts.count() == 4
    assert await charts.first.get_attribute("aria-label") == "Calls per day by outcome"
    box = await charts.first.bounding_box()
    assert box is not None and box["width"] > 600
    assert "Alice Rep" in await page.inner_text("#per-rep")
    await screenshot(page, "reports")

    phone = await browser.new_context(viewport={"width": 390, "height": 844})
    mobile = await phone.new_page()
    await mobile.goto(f"{site.url}/login")
    await mobile.fill("input[name=username]", "maria")
    await mobile.fill("input[name=password]", "correct-horse-1")
    await mobile.click("button[type=submit]")
    await mobile.goto(f"{site.url}/missed")
    width = await mobile.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1  # the table scrolls inside its card, the page does not
    await screenshot(mobile, "missed-phone")


async def test_an_admin_tests_the_link_adds_a_user_and_reads_the_audit(
    browser: Browser, pbx_site: Site
) -> None:
    site = pbx_site
    await seed(site)
    page = await login_page(browser, site, "admin")
    await page.click("nav.mainnav >> text=Admin")
    await page.wait_for_url(f"{site.url}/admin")
    assert await page.inner_text("#link-status [data-field=state]") == "connected"
    secret = page.locator("input[name=secret]")
    assert await secret.get_attribute("placeholder") == "unchanged"
    assert await secret.input_value() == ""
    assert "browser-test" not in await page.content()
    await secret.fill("browser-test")
    await page.click("#test-connection")
    result = await page.inner_text("#probe-result")
    assert "Connected to Asterisk at 127.0.0.1" in result
    assert "browser-test" not in await page.content()
    await screenshot(page, "admin")

    await page.fill("#pbx-form input[name=secret]", "wrong-secret")
    await page.click("#test-connection")
    assert "Login refused" in await page.inner_text("#probe-result")

    await page.click(".admin-nav >> text=Users")
    await page.fill("#new-user input[name=username]", "carol")
    await page.fill("#new-user input[name=display_name]", "Carol Closer")
    await page.fill("#new-user input[name=password]", "carol-pass-1")
    await page.fill("#new-user input[name=extensions]", "105")
    await page.click("#new-user button[type=submit]")
    assert "User created" in await page.inner_text("[role=status]")
    await page.click("text=← All users")
    assert "Carol Closer" in await page.inner_text("table")
    await screenshot(page, "admin-users")

    await page.click(".admin-nav >> text=Audit log")
    await page.select_option("select[name=actor]", "admin")
    await page.click("form.filters button[type=submit]")
    log = await page.inner_text("table.audit")
    assert "user.created" in log and "team.created" in log
    await screenshot(page, "audit")

    await page.click(".admin-nav >> text=Extensions")
    assert await page.locator(".chip[data-ext='101']").count() == 1
    await page.click(".admin-nav >> text=Numbers")
    await page.fill("input[name=callback_sla_minutes]", "30")
    await page.click("form.stack button[type=submit]")
    assert "Settings saved" in await page.inner_text("[role=status]")
    assert site.rt.ingest.policy.callback_sla_minutes == 30.0
