"""Logging in with a real browser, and the login page on a phone-sized screen."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from .conftest import ROOT, SCREENSHOTS, UPDATE_VAR, Site, login_page, screenshot, screenshot_dir


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


async def test_a_test_run_leaves_the_readme_screenshots_alone(
    browser: Browser, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without UPDATE_SCREENSHOTS the screenshot is still taken, but outside the work tree."""
    monkeypatch.delenv(UPDATE_VAR, raising=False)
    readme_copy = SCREENSHOTS / "login-phone.png"
    before = readme_copy.read_bytes() if readme_copy.exists() else None
    context = await browser.new_context(viewport={"width": 390, "height": 780})
    page = await context.new_page()
    await page.goto(f"{site.url}/login")
    await screenshot(page, "login-phone")
    taken = screenshot_dir() / "login-phone.png"
    assert taken.stat().st_size > 1000
    assert ROOT not in taken.parents
    assert (readme_copy.read_bytes() if readme_copy.exists() else None) == before
    monkeypatch.setenv(UPDATE_VAR, "1")
    assert screenshot_dir() == SCREENSHOTS
