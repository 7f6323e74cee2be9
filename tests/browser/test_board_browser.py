"""The supervisor board in Chromium, as a manager: a member paused from the board shows
paused (the QueuePause goes to the replay PBX, whose event comes back through the link);
callers waiting appear in the queue and disappear when answered, from a recorded capture
of the real Asterisk 22 queue.  Screenshots for the README (board, wall board, phone)."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from ami_bridge.protocol import first

from ..presence.replaying import capture_dir
from .conftest import Site, login_page, pbx_site_factory, screenshot

pbx_site = pbx_site_factory(capture_dir("32-queue-waiting-answered") / "events.jsonl")


async def team(site: Site) -> None:
    rt, p = site.rt, site.people
    sales = await rt.service.create_team("Sales", "admin")
    for user in (p.manager, p.alice, p.bob):
        await rt.service.set_team(user.id, sales.id, "admin")  # type: ignore[arg-type]


async def test_a_manager_pauses_a_member_and_watches_callers_wait(
    browser: Browser, pbx_site: Site
) -> None:
    await team(pbx_site)
    page = await login_page(browser, pbx_site, "maria")
    await page.goto(f"{pbx_site.url}/board")
    bob = page.locator("#rep-102")
    await expect(bob.locator("[data-role=state]")).to_have_text("Available")
    assert await page.locator("#rep-103").count() == 0  # carol is no user of maria's team

    await bob.locator("input[name=reason]").fill("coaching")
    await bob.get_by_role("button", name="Pause").click()
    await expect(page.locator("#board-notice")).to_have_text("Extension 102 paused in every queue.")
    await expect(bob.locator("[data-role=state]")).to_have_text("Paused", timeout=2000)
    await expect(bob.locator("[data-role=reason]")).to_have_text("coaching")
    await expect(page.locator('[data-queue=support] [data-ext="102"] .state-paused')).to_have_count(
        1
    )
    assert [a.get("Action") for a in pbx_site.pbx.received][-1:] == ["QueuePause"]  # type: ignore[union-attr]

    await bob.get_by_role("button", name="Unpause").click()
    await expect(bob.locator("[data-role=state]")).to_have_text("Available", timeout=2000)

    # the recorded calls: both callers wait (103 paused, 102 ringing for the first)
    pbx = pbx_site.pbx
    assert pbx is not None
    joins = 0

    def second_join(msg: dict) -> bool:
        nonlocal joins
        joins += first(msg.get("Event")) == "QueueCallerJoin"
        return joins == 2

    await pbx.play_until(second_join)
    waiting = page.locator("[data-queue=support] [data-role=waiting] li")
    await expect(waiting).to_have_count(2, timeout=2000)
    await expect(waiting.first).to_contain_text("+14155550101")
    await expect(waiting.nth(1)).to_contain_text("+14155550102")
    await expect(page.locator("[data-queue=support] [data-role=waiting-count]")).to_have_text("2")
    await expect(bob.locator("[data-role=state]")).to_have_text("Ringing")
    await screenshot(page, "board")

    wall = await page.context.new_page()
    await wall.goto(f"{pbx_site.url}/board/wall")
    await expect(wall.locator(".wall-queue [data-role=waiting-count]")).to_have_text("2")
    await screenshot(wall, "board-wall")
    phone_ctx = await browser.new_context(
        viewport={"width": 390, "height": 844}, storage_state=await page.context.storage_state()
    )
    phone = await phone_ctx.new_page()
    await phone.goto(f"{pbx_site.url}/board/wall")
    await expect(phone.locator(".wall-queue [data-role=waiting-count]")).to_have_text("2")
    await screenshot(phone, "board-wall-phone")

    pbx.resume()
    await pbx.wait_done(timeout=30)
    await expect(waiting).to_have_count(0, timeout=3000)
    await expect(page.locator("[data-queue=support] [data-role=waiting-count]")).to_have_text("0")
    await expect(wall.locator(".wall-queue [data-role=waiting-count]")).to_have_text("0")
    await expect(bob.locator("[data-role=state]")).to_have_text("Available", timeout=3000)
    # today's figures follow the stored calls without a reload: of the two answered callers
    # the manager's team (bob, 102) took one; 103 has no user in her team
    figures = page.locator("#queue-figures")
    await expect(figures.locator("[data-figure=offered]").first).to_have_text("1", timeout=10000)
    await expect(figures.locator("[data-figure=answered]").first).to_have_text("1")
