"""Logging in with a real browser, and the login page on a phone-sized screen."""

from __future__ import annotations

from playwright.async_api import Browser

from .conftest import Site, login_page, screenshot


async def test_login_then_logout_in_chromium(browser: Browser, site: Site) -> None:
    page = await login_page(browser, site, "alice")
    assert "Alice Rep" in await page.inner_text("header")
    await page.click("text=Log out")
    await page.wait_for_url(f"{site.url}/login")
    await page.goto(f"{site.url}/calls")
    assert "/login?next=" in page.url


async def test_wrong_password_is_said_plainly(browser: Browser, site: Site) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 780})
    page = await context.new_page()
    await page.goto(f"{site.url}/login")
    await page.fill("input[name=username]", "alice")
    await page.fill("input[name=password]", "wrong-password")
    await page.click("button[type=submit]")
    assert "Wrong username or password" in await page.inner_text("[role=alert]")
    await screenshot(page, "login-phone")
