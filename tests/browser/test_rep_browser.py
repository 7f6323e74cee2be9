"""The rep-facing pages in Chromium: every role opens every page; the screen pop of a
real Asterisk 22 call (capture 01: ring group 101 & 102, 101 answers) appears for both
reps, leaves Bob when Alice answers and leaves Alice when the call ends; the live list
follows without a reload.  Screenshots of the main pages go to docs/screenshots/."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from crm.models import Contact, PhoneNumber
from tests.crm.factories import inbound, internal, outbound
from tests.paths import ASTERISK22
from web.runtime import Runtime

from .conftest import Site, login_page, pbx_site_factory, screenshot

pytestmark = pytest.mark.browser
CAPTURE = ASTERISK22 / "01-inbound-answered" / "events.jsonl"
pbx_site = pbx_site_factory(CAPTURE)


def watch_errors(page: Page) -> list[str]:
    """Console errors, uncaught exceptions (CSP violations included) and failed loads of
    a page, except the 404 of a page the test opens on purpose."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and r.request.resource_type != "document"
            else None
        ),
    )
    return errors


async def sample_data(rt: Runtime, site: Site) -> dict[str, Any]:
    """A believable morning for Alice (101) and Bob (102)."""
    s, p = rt.service, site.people
    now = time.time()
    # earlier today (UTC), even a minute after midnight: never before it
    start = now - min(3 * 3600.0, max(0.5, now % 86400 - 1))
    grace = await s.create_contact(
        "Grace Hopper",
        "Navy Computing",
        "grace@navy.example",
        ["+1 415 555 0199", PhoneNumber("+1 415 555 0198", None, "mobile")],
        owner_id=p.alice.id,
        tags=["vip"],
    )
    alan = await s.create_contact(
        "Alan Turing",
        "Bletchley Ltd",
        "alan@bletchley.example",
        ["+14155550201"],
        owner_id=p.alice.id,
    )
    await s.create_contact(
        "Ada Lovelace", "Analytical Engines", "", ["+14155550204"], owner_id=p.bob.id
    )
    await s.create_contact("Front Desk", "Globex", "", ["+14155550300"])
    await s.create_contact(
        "Tim Berners-Lee", "W3 Consortium", "", ["+442079460958"], owner_id=p.alice.id
    )
    step = (now - start) / 8
    calls = [
        inbound("+14155550201", at=start),
        outbound("00442079460958", "+442079460958", at=start + step),
        inbound("+14155550142", answered_by=None, at=start + 2 * step),  # unknown: a lead
        inbound("+14155550199", at=start + 3 * step),
        inbound("+14155550204", answered_by="102", at=start + 4 * step),
        internal(at=start + 5 * step),
        inbound("+14155550201", answered_by=None, at=start + 6 * step),
        outbound("4155550300", "+14155550300", at=start + 7 * step),
    ]
    recorded = [await rt.ingest.record(c) for c in calls]
    # hers and overdue whatever the time of day (only her phone rang): the calls above are
    # "earlier today", less than an hour ago just after midnight UTC, so none is overdue
    await rt.ingest.record(
        inbound("+14155550177", answered_by=None, at=now - 5 * 3600, rang=("101",))
    )
    first = recorded[3].call
    await s.add_note(
        first.id or 0,
        p.alice.id,
        "Quote",
        "Interested",
        "Wants 40 seats before the end of the quarter; send the enterprise deck.",
    )
    return {"grace": grace, "alan": alan, "call": first}


# -- every role, every page --------------------------------------------------------------
PAGES = ["/", "/calls", "/contacts", "/leads", "/contacts/new"]


@pytest.mark.parametrize("username", ["alice", "maria", "admin"])
async def test_each_role_opens_each_page(browser: Browser, site: Any, username: str) -> None:
    data = await sample_data(site.rt, site)
    grace: Contact = data["grace"]
    page = await login_page(browser, site, username)
    errors = watch_errors(page)
    paths = [*PAGES, "/calls?direction=inbound&outcome=answered"]
    if username != "maria":  # maria's team is only herself here: alice's work is not hers
        paths += [
            f"/calls/{data['call'].id}",
            f"/contacts/{grace.id}",
            f"/contacts/{grace.id}/edit",
            f"/contacts/{grace.id}/merge",
        ]
    for path in paths:
        resp = await page.goto(f"{site.url}{path}")
        assert resp is not None and resp.status == 200, path
        assert await page.locator("main h1").count() >= 1, path
        assert await page.locator("header .mainnav").is_visible(), path
    if username == "maria":
        resp = await page.goto(f"{site.url}/calls/{data['call'].id}")
        assert resp is not None and resp.status == 404
    assert not errors, errors


async def test_rep_pages_work_and_look_right(browser: Browser, site: Any) -> None:
    data = await sample_data(site.rt, site)
    page = await login_page(browser, site, "alice")
    errors = watch_errors(page)
    await page.goto(f"{site.url}/")
    await page.wait_for_function("() => document.body.dataset.live === '1'")
    callbacks = page.locator("#callbacks tbody tr")
    overdue = await page.locator("#callbacks tbody tr.overdue").count()
    assert 0 < overdue < await callbacks.count()
    assert await page.locator("#callbacks tbody tr").first.evaluate(
        "tr => tr.classList.contains('overdue')"
    )
    assert await page.locator("#today-calls tbody tr").count() >= 5
    await screenshot(page, "home")

    await page.goto(f"{site.url}/calls")
    assert await page.locator("#calls tbody tr").count() >= 6
    await page.select_option("select[name=direction]", "inbound")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url("**/calls?*direction=inbound*")
    badges = await page.locator("#calls tbody .badge.inbound").count()
    assert badges == await page.locator("#calls tbody tr").count() > 0
    await page.goto(f"{site.url}/calls")
    await screenshot(page, "calls")

    await page.goto(f"{site.url}/calls/{data['call'].id}")
    assert await page.locator(".call-timeline li").count() >= 5
    # the wrap-up form (the notes above it have their own, folded edit forms)
    await page.fill(".wrapup-form input[name=topic]", "Follow-up")
    await page.select_option(".wrapup-form select[name=result]", "Meeting booked")
    await page.fill(".wrapup-form textarea[name=comment]", "Demo booked for Thursday 10:00.")
    await page.click(".wrapup-form button[type=submit]")
    await page.wait_for_url("**noted=1*")
    assert "Demo booked for Thursday" in await page.inner_text("#notes")
    await page.goto(f"{site.url}/calls/{data['call'].id}")
    await screenshot(page, "call")

    await page.goto(f"{site.url}/contacts")
    await page.fill("main input[name=q]", "(415) 555-0199")
    await page.press("main input[name=q]", "Enter")
    await page.wait_for_url("**q=*")
    assert await page.locator("#contacts tbody tr").count() == 1
    await page.goto(f"{site.url}/contacts")
    await screenshot(page, "contacts")

    await page.goto(f"{site.url}/contacts/{data['grace'].id}")
    assert await page.locator(".history li").count() >= 3
    assert await page.locator('a.dial[data-dial="+14155550199"]').count() >= 1
    await screenshot(page, "contact")

    phone = await browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    mobile = await phone.new_page()
    await mobile.goto(f"{site.url}/login")
    await mobile.fill("input[name=username]", "alice")
    await mobile.fill("input[name=password]", "correct-horse-1")
    await mobile.click("button[type=submit]")
    await mobile.wait_for_url(f"{site.url}/")
    wide = await mobile.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= 390 + 1, f"the home page scrolls sideways on a phone ({wide}px)"
    await screenshot(mobile, "home-phone")
    await phone.close()
    assert not errors, errors


# -- the screen pop and the live list, on a real call ------------------------------------
def _ringing(ext: str) -> Any:
    def match(msg: dict[str, Any]) -> bool:
        return (
            msg.get("Event") == "Newstate"
            and str(msg.get("Channel", "")).startswith(f"PJSIP/{ext}-")
            and msg.get("ChannelStateDesc") == "Ringing"
        )

    return match


async def test_screen_pop_follows_the_call_and_the_live_list_updates(
    browser: Browser, pbx_site: Site
) -> None:
    rt, pbx, people = pbx_site.rt, pbx_site.pbx, pbx_site.people
    assert pbx is not None
    await rt.service.create_contact(
        "Grace Hopper", "Navy Computing", "", ["+14155550199"], owner_id=people.alice.id
    )
    alice = await login_page(browser, pbx_site, "alice")
    bob = await login_page(browser, pbx_site, "bob")
    errors = watch_errors(alice) + watch_errors(bob)
    for page in (alice, bob):
        await page.wait_for_function("() => document.body.dataset.live === '1'")
    assert await alice.locator("#live-calls tbody tr").count() == 0
    assert await alice.locator("#today-calls tbody tr").count() == 0

    # 101 rings: alice's pop, nothing for bob
    await pbx.play_until(_ringing("101"))
    pop = alice.locator(".pop[data-state=ringing]")
    await pop.wait_for(timeout=3000)
    assert "Grace Hopper" in await pop.inner_text()
    assert "Navy Computing" in await pop.inner_text()
    assert await alice.locator("#live-calls tbody tr").count() == 1  # no reload
    await bob.wait_for_timeout(300)
    assert await bob.locator(".pop").count() == 0

    # the ring group reaches 102: bob's pop too
    await pbx.play_until(_ringing("102"))
    await bob.locator(".pop[data-state=ringing]").wait_for(timeout=3000)
    # alice's customer: bob's pop gives the number, not who it is (test_pop_privacy.py)
    bob_pop = await bob.locator(".pop").inner_text()
    assert "Known contact of another rep" in bob_pop and "Grace Hopper" not in bob_pop
    assert "(415) 555-0199" in bob_pop
    await alice.wait_for_timeout(150)
    await screenshot(alice, "screen-pop")

    # alice answers: bob's pop goes, alice's says "on call"
    await pbx.play_until(
        lambda m: m.get("Event") == "BridgeEnter" and "trunk" in str(m.get("Channel"))
    )
    await alice.locator(".pop[data-state=on_call]").wait_for(timeout=3000)
    await bob.locator(".pop").wait_for(state="detached", timeout=3000)
    assert await alice.locator("#live-calls .badge.answered").count() == 1
    assert await bob.locator("#live-calls tbody tr").count() == 0

    # the call ends: alice's pop goes, the live row goes, today's calls gets the call
    pbx.resume()
    await pbx.wait_done(timeout=10)
    await alice.locator(".pop").wait_for(state="detached", timeout=5000)
    await alice.locator("#live-calls tbody tr").wait_for(state="detached", timeout=5000)
    row = alice.locator("#today-calls tbody tr[data-call]")
    await row.wait_for(timeout=5000)
    assert "Grace Hopper" in await row.inner_text()
    assert await alice.locator("#today-count").inner_text() == "1"
    await asyncio.sleep(0)
    assert not errors, errors
