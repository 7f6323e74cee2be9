"""The wrap-up card, the pop stack and the callbacks page in Chromium.

* A real Asterisk 22 call (capture 01: 101 & 102 ring, 101 answers): when it ends, Alice's
  pop turns into a wrap-up card; a result and Enter save it as a note on the call.
* The stack: the call I am on stays on top, the other pops collapse under a count, and on
  a phone the stack stays inside the screen.
* A required wrap-up cannot be dismissed and stays above the next call's pop.
* The callbacks page: log an attempt, close with a reason; another rep never sees it.
Screenshots: docs/screenshots/wrapup-card.png, pop-stack-phone.png, callbacks.png."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.async_api import Browser

from crm import wrapup
from tests.crm.factories import inbound
from tests.paths import ASTERISK22

from .conftest import Site, login_page, pbx_site_factory, screenshot
from .test_rep_browser import _ringing, watch_errors

pytestmark = pytest.mark.browser
CAPTURE = ASTERISK22 / "01-inbound-answered" / "events.jsonl"
pbx_site = pbx_site_factory(CAPTURE)


async def test_the_pop_turns_into_a_wrapup_card_saved_with_enter(
    browser: Browser, pbx_site: Site
) -> None:
    rt, pbx, people = pbx_site.rt, pbx_site.pbx, pbx_site.people
    assert pbx is not None
    await rt.service.create_contact(
        "Grace Hopper", "Navy Computing", "", ["+14155550199"], owner_id=people.alice.id
    )
    alice = await login_page(browser, pbx_site, "alice")
    errors = watch_errors(alice)
    await alice.wait_for_function("() => document.body.dataset.live === '1'")
    await pbx.play_until(_ringing("101"))
    await alice.locator(".pop[data-state=ringing]").wait_for(timeout=3000)
    pbx.resume()
    await pbx.wait_done(timeout=10)
    card = alice.locator(".wrapup-card[data-call]")
    await card.wait_for(timeout=5000)
    await alice.locator(".pop").wait_for(state="detached", timeout=3000)
    assert "Grace Hopper" in await card.inner_text()
    await card.locator("button[type=submit]:enabled").wait_for(timeout=3000)
    await card.locator("select[name=result]").select_option("Interested")
    comment = card.locator("input[name=comment]")
    await comment.fill("Wants a quote for 50 seats")
    await screenshot(alice, "wrapup-card")
    await comment.press("Enter")
    await alice.locator(".wrapup-card.saved").wait_for(timeout=3000)
    await alice.locator(".wrapup-card").wait_for(state="detached", timeout=4000)
    calls = (await rt.service.list_calls()).items
    [call] = [c for c in calls if c.remote_e164 == "+14155550199"]
    notes = await rt.service.notes(call.id or 0)
    assert [(n.result, n.comment, n.author_id) for n in notes] == [
        ("Interested", "Wants a quote for 50 seats", people.alice.id)
    ]
    assert not errors, errors


def _progress(linkedid: str, pop: str, name: str, number: str, at: float) -> dict[str, Any]:
    return {
        "linkedid": linkedid, "pop": pop, "state": "up" if pop == "on_call" else "ringing",
        "direction": "inbound", "number": number, "number_display": number, "did": "5551000",
        "contact": {"name": name}, "details": True, "me": "ringing", "at": at,
    }  # fmt: skip


async def test_the_pop_stack_keeps_my_call_on_top_and_fits_a_phone(
    browser: Browser, pbx_site: Site
) -> None:
    context = await browser.new_context(
        viewport={"width": 390, "height": 700}, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    await page.goto(f"{pbx_site.url}/login")
    await page.fill("input[name=username]", "alice")
    await page.fill("input[name=password]", "correct-horse-1")
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{pbx_site.url}/")
    errors = watch_errors(page)
    now = time.time()
    events = [_progress("on.1", "on_call", "Grace Hopper", "+14155550199", now)] + [
        _progress(f"ring.{i}", "ringing", f"Caller {i}", f"+1415555030{i}", now + i)
        for i in range(1, 6)
    ]
    for ev in events:
        await page.evaluate("(d) => window.crm.dispatch('call_progress', d)", ev)
    box = page.locator("#pops")
    top = box.locator(".pop.top")
    assert "Grace Hopper" in await top.inner_text()  # the call I am on
    assert await box.locator(".pop.collapsed").count() == 5
    assert "+5" in await box.locator(".pop-more").inner_text()
    nothing_off = await page.evaluate(
        """() => { const r = document.getElementById('pops').getBoundingClientRect();
                   return r.top >= 0 && r.bottom <= innerHeight && r.left >= 0
                          && r.right <= innerWidth; }"""
    )
    assert nothing_off, "the pop stack runs off a phone's screen"
    await screenshot(page, "pop-stack-phone")
    await box.locator(".pop-more").click()
    assert await box.locator(".pop.collapsed").count() == 0
    # the ringing ones end without me: they go, my call stays on top
    for i in range(1, 6):
        await page.evaluate(
            "(id) => window.crm.dispatch('call_progress', {linkedid: id, pop: null,"
            " state: 'ended'})",
            f"ring.{i}",
        )
    await box.locator(".pop").nth(1).wait_for(state="detached", timeout=2000)
    assert await box.locator(".pop").count() == 1
    assert "Grace Hopper" in await box.locator(".pop.top").inner_text()
    await context.close()
    assert not errors, errors


async def test_callbacks_page_attempt_and_close(browser: Browser, pbx_site: Site) -> None:
    rt, people = pbx_site.rt, pbx_site.people
    now = time.time()
    grace = await rt.service.create_contact(
        "Grace Hopper", "Navy Computing", "", ["+14155550199"], owner_id=people.alice.id
    )
    await rt.ingest.record(inbound("+14155550199", answered_by=None, at=now - 7200))
    await rt.ingest.record(inbound("+14155550199", answered_by=None, at=now - 7000))
    # an unknown caller rang 101 and 102: its task goes to bob (alice has one already)
    await rt.ingest.record(inbound("+14155550288", answered_by=None, at=now - 600))
    alice = await login_page(browser, pbx_site, "alice")
    errors = watch_errors(alice)
    await alice.goto(f"{pbx_site.url}/callbacks")
    card = alice.locator(".cb-card", has_text="Grace Hopper")
    await card.wait_for(timeout=3000)
    assert "overdue" in (await card.get_attribute("class") or "")
    assert await card.locator(".cb-missed").inner_text() == "2"
    assert await card.locator(".cb-attempts").inner_text() == "0"
    assert await alice.locator(".cb-card").count() == 1  # bob's task is not shown
    await screenshot(alice, "callbacks")
    await card.locator("select[name=result]").select_option("no_answer")
    await card.locator("input[name=comment]").fill("rang twice")
    await card.locator("button", has_text="Log attempt").click()
    await alice.locator(".alert.ok", has_text="Attempt logged").wait_for(timeout=3000)
    card = alice.locator(".cb-card", has_text="Grace Hopper")
    assert await card.locator(".cb-attempts").inner_text() == "1"
    assert "rang twice" in await card.inner_text()
    await card.locator("summary").click()
    await card.locator("select[name=reason]").select_option("not_needed")
    await card.locator("button", has_text="Close").click()
    await alice.locator(".alert.ok", has_text="Callback closed").wait_for(timeout=3000)
    assert await alice.locator(".cb-card").count() == 0
    [task] = await rt.service.list_callbacks(status="closed")
    assert task.contact_id == grace.id and task.close_reason == "not_needed"
    bob = await login_page(browser, pbx_site, "bob")
    await bob.goto(f"{pbx_site.url}/callbacks")
    text = await bob.locator("main").inner_text()
    assert "Grace Hopper" not in text and "(415) 555-0288" in text
    assert not errors, errors


async def test_a_required_wrapup_stays_on_top_of_the_next_pop(browser: Browser, site: Site) -> None:
    rt, people = site.rt, site.people
    await wrapup.save_settings(rt.service, "admin", wrapup.DEFAULT_RESULTS, {}, True)
    call = (await rt.ingest.record(inbound("+14155550199", answered_by="101"))).call
    alice = await login_page(browser, site, "alice")
    errors = watch_errors(alice)
    now = time.time()
    on_call = _progress(call.linkedid, "on_call", "Grace Hopper", "+14155550199", now)
    await alice.evaluate("(d) => window.crm.dispatch('call_progress', d)", on_call)
    ended = {**on_call, "pop": None, "state": "ended"}
    await alice.evaluate("(d) => window.crm.dispatch('call_progress', d)", ended)
    await alice.evaluate(
        "(c) => window.crm.dispatch('call_recorded', {call: c})",
        {"id": call.id, "linkedid": call.linkedid},
    )
    card = alice.locator(".wrapup-card[data-call]")
    await card.locator("button[type=submit]:enabled").wait_for(timeout=3000)
    assert await card.locator(".pop-close").count() == 0  # required: not dismissable
    ringing = _progress("next.1", "ringing", "Next Caller", "+14155550301", now + 5)
    await alice.evaluate("(d) => window.crm.dispatch('call_progress', d)", ringing)
    await alice.locator(".pop.collapsed", has_text="Next Caller").wait_for(timeout=2000)
    assert "top" in (await card.get_attribute("class") or "")
    await card.locator("select[name=result]").select_option("Sale")
    await card.locator("button[type=submit]").click()
    await alice.locator(".wrapup-card").wait_for(state="detached", timeout=4000)
    await alice.locator(".pop.top", has_text="Next Caller").wait_for(timeout=2000)
    [note] = await rt.service.notes(call.id or 0)
    assert note.result == "Sale" and note.author_id == people.alice.id
    assert not errors, errors
