"""Russian and Japanese in Chromium: a rep whose browser sits in another time zone sees the
screen pop of a real Asterisk 22 call in their own language and time zone, and the pop
says the same due time as the callbacks table under it; a manager audits missed calls and
reads the reports in Japanese. Screenshots for the README (docs/screenshots/*-ru, *-ja)."""

from __future__ import annotations

import time

import pytest
from playwright.async_api import Browser

from tests.crm.factories import inbound
from tests.paths import ASTERISK22
from tests.web.test_i18n_pages import leaks
from web import formatting, i18n

from .conftest import Site, login_page, pbx_site_factory, screenshot
from .test_manager_admin_browser import seed
from .test_rep_browser import _ringing, watch_errors

pytestmark = pytest.mark.browser
pbx_site = pbx_site_factory(ASTERISK22 / "01-inbound-answered" / "events.jsonl")
WORDS = {
    "ru": ("Входящий звонок", "Открытый перезвон", "Текущие звонки"),
    "ja": ("着信", "未完了の折り返し", "通話中"),
}


@pytest.mark.parametrize(("language", "timezone"), [("ru", "Europe/Moscow"), ("ja", "Asia/Tokyo")])
async def test_a_rep_sees_the_pop_in_their_language_and_time(
    browser: Browser, pbx_site: Site, language: str, timezone: str
) -> None:
    rt, pbx, people = pbx_site.rt, pbx_site.pbx, pbx_site.people
    assert pbx is not None
    alice = people.alice
    alice.language, alice.timezone = language, timezone
    await rt.store.update_user(alice)
    await rt.service.create_contact(
        "Grace Hopper", "Navy Computing", "", ["+14155550199"], owner_id=alice.id
    )
    # she missed Grace an hour ago: an open callback, due in her own time zone
    await rt.ingest.record(inbound("+14155550199", answered_by=None, at=time.time() - 3600))

    # the browser itself is in New York: the page must not use its clock's zone
    context = await browser.new_context(
        viewport={"width": 1280, "height": 860}, timezone_id="America/New_York"
    )
    page = await context.new_page()
    errors = watch_errors(page)
    await page.goto(f"{pbx_site.url}/login")
    await page.fill("input[name=username]", "alice")
    await page.fill("input[name=password]", "correct-horse-1")
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{pbx_site.url}/")
    assert await page.get_attribute("html", "lang") == language
    await page.wait_for_function("() => document.body.dataset.live === '1'")

    row = page.locator("#callbacks tbody tr[data-due]")
    due_at = float(await row.get_attribute("data-due") or 0)
    with i18n.using(language, timezone):
        due_text = formatting.format_time(due_at, "datetime")
    assert due_text in await row.locator("td.c-time").inner_text()

    await pbx.play_until(_ringing("101"))
    pop = page.locator(".pop[data-state=ringing]")
    await pop.wait_for(timeout=3000)
    await page.locator(".pop .pop-callback").wait_for(timeout=3000)
    text = await pop.inner_text()  # as shown: the state line is in capitals
    incoming, open_callback, live_calls = WORDS[language]
    assert "Grace Hopper" in text and incoming.upper() in text.upper()
    assert open_callback in text
    assert due_text in text, (due_text, text)  # the pop and the table agree
    assert live_calls in await page.inner_text("main")
    assert leaks(await page.content(), language) == []
    await page.wait_for_timeout(150)
    await screenshot(page, f"screen-pop-{language}")
    pbx.resume()
    await pbx.wait_done(timeout=10)
    await page.locator(".pop").wait_for(state="detached", timeout=5000)
    assert not errors, errors


async def test_a_manager_audits_missed_calls_and_reads_reports_in_japanese(
    browser: Browser, pbx_site: Site
) -> None:
    await seed(pbx_site)
    maria = pbx_site.people.manager
    maria.language, maria.timezone = "ja", "Asia/Tokyo"
    await pbx_site.rt.store.update_user(maria)
    page = await login_page(browser, pbx_site, "maria")
    errors = watch_errors(page)
    await page.click("nav.mainnav >> text=不在着信")
    await page.wait_for_url(f"{pbx_site.url}/missed")
    figures = await page.inner_text("section.figures")
    assert "不在率" in figures and "折り返しまでの時間の中央値" in figures
    assert await page.locator("table.missed-table tbody tr[data-call]").count() > 3
    assert leaks(await page.content(), "ja") == []
    await screenshot(page, "missed-ja")

    await page.click("nav.mainnav >> text=レポート")
    await page.wait_for_url(f"{pbx_site.url}/reports")
    charts = page.locator("figure.chart svg[role=img]")
    assert await charts.count() == 4
    assert await charts.first.get_attribute("aria-label") == "日別・結果別の通話"
    assert "最も忙しい時間帯" in await page.inner_text("#hours")
    assert leaks(await page.content(), "ja") == []
    await screenshot(page, "reports-ja")
    assert not errors, errors


async def test_the_login_page_switches_language(browser: Browser, pbx_site: Site) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = await context.new_page()
    await page.goto(f"{pbx_site.url}/login")
    await page.click("nav.lang-switch >> text=Русский")
    await page.wait_for_function("() => document.documentElement.lang === 'ru'")
    assert "lang=ru" in page.url
    assert await page.get_attribute("html", "lang") == "ru"
    assert await page.inner_text("button[type=submit]") == "Войти"
    await screenshot(page, "login-ru")
