"""Browser tests: Debian's Chromium driven by Playwright (async API, so the app under
test runs on the same event loop as the test), against a real listening server.

``site`` is the base URL of an app on a fresh store with one user per role;
``pbx_site`` adds a paused replay PBX and a live AMI link to it, so a test plays recorded
calls when it wants them (``pbx_site.pbx.resume()``, ``play_until``...).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from ami_bridge.replay_pbx import ReplayPbx
from tests.web.conftest import PASSWORD, People, make_people, web_settings
from web.app import create_app
from web.runtime import Runtime, open_runtime, start_link

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
# Screenshots are always taken (the browser path is exercised) but land in the README's folder
# only when asked for, so a test run leaves the work tree clean.
UPDATE_VAR = "UPDATE_SCREENSHOTS"
_scratch: list[Path] = []


def screenshot_dir() -> Path:
    """docs/screenshots/ with UPDATE_SCREENSHOTS=1, else one temporary folder per test run."""
    if os.environ.get(UPDATE_VAR, "") not in ("", "0"):
        return SCREENSHOTS
    if not _scratch:
        _scratch.append(Path(tempfile.mkdtemp(prefix="crm-screenshots-")))
        atexit.register(shutil.rmtree, _scratch[0], True)
    return _scratch[0]


@dataclass
class Site:
    url: str
    rt: Runtime
    people: People
    pbx: ReplayPbx | None = None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap (installs Debian's chromium)")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox"])  # fmt: skip
        try:
            yield b
        finally:
            await b.close()


async def _serve(aiohttp_server: Any, rt: Runtime) -> str:
    server = await aiohttp_server(create_app(rt))
    return str(server.make_url("/")).rstrip("/")


@pytest.fixture
async def site(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Site]:
    rt = await open_runtime(web_settings(tmp_path), with_link=False)
    try:
        people = await make_people(rt)
        yield Site(await _serve(aiohttp_server, rt), rt, people)
    finally:
        await rt.close()


def pbx_site_factory(capture: Path) -> Any:
    """A fixture factory: ``site`` plus a paused replay PBX playing ``capture``."""

    @pytest.fixture
    async def fixture(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Site]:
        pbx = ReplayPbx(capture, speed=0, paused=True, secret="browser-test")
        await pbx.start()
        settings = web_settings(
            tmp_path,
            ami={"host": "127.0.0.1", "port": pbx.port, "username": "crm",
                 "secret": "browser-test", "tls": False},
            pbx={"finish_grace": 0.2},
        )  # fmt: skip
        rt = await open_runtime(settings, with_link=False)
        rt.pbx = pbx
        try:
            people = await make_people(rt)
            link = start_link(rt)
            await link.wait_state("connected")
            yield Site(await _serve(aiohttp_server, rt), rt, people, pbx)
        finally:
            await rt.close()

    return fixture


async def login_page(browser: Browser, site: Site, username: str) -> Page:
    """A new browser context logged in as ``username``, on the home page."""
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    await page.goto(f"{site.url}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{site.url}/")
    return page


async def screenshot(page: Page, name: str) -> None:
    """Take a screenshot: for the README (docs/screenshots/<name>.png) with
    UPDATE_SCREENSHOTS=1, otherwise into a temporary folder."""
    folder = screenshot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.png"
    await page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 0, f"empty screenshot {target}"
