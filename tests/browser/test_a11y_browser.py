"""Accessibility: axe-core finds no violations on any page, as every role, at desktop and
phone width; the menu, the skip link and the recording's waveform work from the keyboard.

The pages are read from the application's router when the test runs (every GET route
that answers HTML), with real ids from the demo's sample data in the path, so a page
added later is checked without touching this file.  A route with a path parameter this
file cannot fill fails the test until ``ID_OF`` says which object to show.

axe-core comes from the npm registry, pinned, installed by ``scripts/bootstrap`` into
``.npm-tools/`` (git-ignored).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from ami_bridge.replay import replay_file
from config.settings import pbx_profile
from tests.web.conftest import web_settings
from tests.web.test_recordings_http import ingest_capture_with_recording
from web.app import create_app
from web.demo import DEMO_PASSWORD, seed
from web.runtime import Runtime, open_runtime, resolve_path

from .conftest import ROOT

pytestmark = pytest.mark.browser

AXE = ROOT / ".npm-tools" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ROLES = {"rep": "alice", "manager": "maria", "admin": "admin"}
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


@dataclass
class DemoSite:
    url: str
    rt: Runtime
    ids: dict[str, int]
    """Path parameter -> a real object's id (see ``ID_OF``)."""


async def _demo_ids(rt: Runtime, recorded_call_id: int) -> dict[str, int]:
    """Real objects of the demo for the detail pages: alice's recorded call (so the call
    page shows the player), a contact with a call history, a lead, a user."""
    s = rt.service
    users = {u.username: u for u in await s.list_users(include_inactive=True)}
    call = await s.get_call(recorded_call_id)
    assert call is not None
    everyone = await s.store.list_contacts(limit=1000)
    contacts = [c for c in everyone if c.lead is None]
    leads = [c for c in everyone if c.lead is not None]
    assert contacts and leads, "the demo data should hold contacts and leads"
    contact_id = call.contact_id or contacts[0].id
    ids = {"call_id": recorded_call_id, "contact_id": contact_id, "lead_id": leads[0].id,
           "user_id": users["alice"].id, "other_user_id": users["bob"].id,
           "team_id": users["alice"].team_id}  # fmt: skip
    callbacks = await _callbacks(rt)
    if callbacks:
        ids["callback_id"] = callbacks[0]
    return {k: v for k, v in ids.items() if v is not None}


async def _callbacks(rt: Runtime) -> list[int]:
    return [r.id for r in await rt.service.list_callbacks(limit=5) if r.id is not None]


@pytest.fixture
async def demo_site(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[DemoSite]:
    """The demo's people and contacts, the demo's recorded calls through the ingest, and
    one call with its recording transcoded (alice's: the call page shows the player)."""
    rt = await open_runtime(web_settings(tmp_path), with_link=False)
    try:
        assert await seed(rt)
        profile = pbx_profile(rt.settings)
        for capture in rt.settings.get("demo", {}).get("captures", []):
            for record in replay_file(resolve_path(capture), profile):
                await rt.ingest.record(record)
        rt.settings["recordings"]["media_dir"] = str(tmp_path / "media")
        recorded = await ingest_capture_with_recording(rt)
        assert recorded.call.id is not None
        ids = await _demo_ids(rt, recorded.call.id)
        server = await aiohttp_server(create_app(rt))
        yield DemoSite(str(server.make_url("/")).rstrip("/"), rt, ids)
    finally:
        await rt.close()


PARAM = re.compile(r"\{(\w+)\}")


def _contact_or_lead(path: str, ids: dict[str, int]) -> int | None:
    return ids.get("lead_id" if path.startswith("/leads/") else "contact_id")


ID_OF: dict[str, Callable[[str, dict[str, int]], int | str | None]] = {
    "call_id": lambda path, ids: ids.get("call_id"),
    "contact_id": _contact_or_lead,
    "id": _contact_or_lead,
    "user_id": lambda path, ids: ids.get("user_id"),
    "team_id": lambda path, ids: ids.get("team_id"),
    "callback_id": lambda path, ids: ids.get("callback_id"),
}  # fmt: skip
"""How to fill a path parameter of a page; a page with another parameter fails the test
until a line is added here."""
STATES = ("/handover?from={user_id}&to={other_user_id}", "/search?q=4155", "/calls?q=4155")
"""Pages in a state their bare route does not show (a handover's preview, search results)."""


def page_paths(site: DemoSite) -> list[str]:
    """Every GET route of the router, with real ids; the API, static files and routes
    the HTML check below turns away are filtered later."""
    app = create_app(site.rt)
    paths: set[str] = set()
    missing: list[str] = []
    for route in app.router.routes():
        if route.method != "GET" or route.resource is None:
            continue
        path = route.resource.canonical
        if path.startswith(("/api/", "/static", "/recordings/")) or path in ("/metrics",):
            continue
        for name in PARAM.findall(path):
            filler = ID_OF.get(name)
            value = filler(path, site.ids) if filler else None
            if value is None:
                missing.append(f"{path}: no id for {{{name}}}")
                break
            path = path.replace(f"{{{name}}}", str(value))
        else:
            paths.add(path)
    assert not missing, "add these parameters to ID_OF:\n" + "\n".join(missing)
    paths.update(state.format(**site.ids) for state in STATES)
    return sorted(paths)


async def html_pages(site: DemoSite, username: str | None) -> list[str]:
    """The paths that answer ``username`` (None: logged out) with an HTML page: no
    redirect, no refusal, no CSV, no event stream (only the headers are read)."""
    out: list[str] = []
    jar = aiohttp.CookieJar(unsafe=True)  # the test server is on 127.0.0.1
    async with aiohttp.ClientSession(site.url, cookie_jar=jar) as http:
        if username is not None:
            async with http.get("/login") as resp:
                csrf = CSRF_RE.search(await resp.text())
            assert csrf
            form = {"_csrf": csrf.group(1), "username": username, "password": DEMO_PASSWORD}
            async with http.post("/login", data=form, allow_redirects=False) as resp:
                assert resp.status in (302, 303), resp.status
        for path in page_paths(site):
            async with http.get(path, allow_redirects=False) as resp:
                kind = resp.headers.get("Content-Type", "")
                if resp.status == 200 and kind.startswith("text/html"):
                    out.append(path)
    return out


async def open_as(browser: Browser, site: DemoSite, username: str | None,
                  viewport: dict[str, int]) -> Page:  # fmt: skip
    context = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = await context.new_page()
    if username is not None:
        await page.goto(f"{site.url}/login")
        await page.fill("input[name=username]", username)
        await page.fill("input[name=password]", DEMO_PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{site.url}/")
    return page


async def axe_violations(page: Page) -> list[str]:
    """axe-core's violations on the page as it is now, one line per rule and element."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run scripts/bootstrap (installs axe-core from npm)")
    # evaluated through the debugging protocol: the page's Content-Security-Policy stays on
    # (an injected <script> would be refused by it)
    await page.evaluate(AXE.read_text() + "\n;void 0")
    found = await page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(' ') + ' :: ' +
                               (n.failureSummary || '').replace(/\\s+/g, ' '))}));
    }""")  # fmt: skip
    return [f"{v['id']} ({v['impact']}): {v['help']}\n      {node}"
            for v in found for node in v["nodes"]]  # fmt: skip


async def sweep(browser: Browser, site: DemoSite, username: str | None,
                viewport: dict[str, int]) -> list[str]:  # fmt: skip
    paths = await html_pages(site, username)
    assert paths, "no HTML page found"
    page = await open_as(browser, site, username, viewport)
    problems: list[str] = []
    for path in paths:
        resp = await page.goto(f"{site.url}{path}")
        assert resp is not None and resp.status == 200, path
        for line in await axe_violations(page):
            problems.append(f"{path}: {line}")
    await page.context.close()
    return problems


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("role", sorted(ROLES))
async def test_no_axe_violation_on_any_page(
    browser: Browser, demo_site: DemoSite, role: str, viewport: dict[str, int]
) -> None:
    problems = await sweep(browser, demo_site, ROLES[role], viewport)
    assert not problems, f"{len(problems)} axe violations:\n" + "\n".join(problems)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_no_axe_violation_logged_out(
    browser: Browser, demo_site: DemoSite, viewport: dict[str, int]
) -> None:
    paths = await html_pages(demo_site, None)
    assert "/login" in paths
    problems = await sweep(browser, demo_site, None, viewport)
    assert not problems, f"{len(problems)} axe violations:\n" + "\n".join(problems)


async def test_skip_link_and_menu_button_from_the_keyboard(
    browser: Browser, demo_site: DemoSite
) -> None:
    """On a phone: the first Tab reaches "Skip to content", which moves the focus to the
    page's main content; the ☰ button opens and closes the menu with the keyboard and says
    so (aria-expanded); Escape closes it and leaves the focus on the button."""
    page = await open_as(browser, demo_site, "alice", PHONE)
    await page.goto(f"{demo_site.url}/calls")
    await page.keyboard.press("Tab")
    skip = page.locator("a.skip-link")
    assert await skip.evaluate("a => a === document.activeElement")
    assert (await skip.bounding_box() or {}).get("y", -1) >= 0, "the skip link must show"
    await page.keyboard.press("Enter")
    assert await page.evaluate("() => document.activeElement.id") == "main"

    menu = page.get_by_role("button", name="Menu")
    nav = page.locator("nav#mainnav")
    assert await menu.get_attribute("aria-expanded") == "false"
    assert not await nav.is_visible()
    await menu.focus()
    await page.keyboard.press("Enter")
    assert await menu.get_attribute("aria-expanded") == "true"
    await nav.get_by_role("link", name="Contacts").wait_for()
    await page.keyboard.press("Tab")
    focused = await page.evaluate("() => document.activeElement.textContent.trim()")
    assert focused == "Home", "the next Tab goes into the open menu"
    await page.keyboard.press("Escape")
    assert await menu.get_attribute("aria-expanded") == "false"
    assert not await nav.is_visible()
    assert await menu.evaluate("b => b === document.activeElement")
    await page.keyboard.press("Space")
    assert await menu.get_attribute("aria-expanded") == "true"
    await nav.get_by_role("link", name="Contacts").click()
    await page.wait_for_url(f"{demo_site.url}/contacts")


async def test_menu_without_javascript_is_open(browser: Browser, demo_site: DemoSite) -> None:
    """Server-rendered first: with scripts off the menu is there, and no dead button."""
    context = await browser.new_context(viewport=PHONE, java_script_enabled=False)  # type: ignore[arg-type]
    page = await context.new_page()
    await page.goto(f"{demo_site.url}/login")
    await page.fill("input[name=username]", "alice")
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{demo_site.url}/")
    assert await page.locator("nav#mainnav a", has_text="Contacts").is_visible()
    assert not await page.locator("#navburger").is_visible()
    await context.close()


async def test_waveform_is_a_keyboard_slider(browser: Browser, demo_site: DemoSite) -> None:
    """The recording's waveform takes the focus and moves the playback position with the
    arrows, Page Up/Down, Home and End, and says where it is (aria-valuetext)."""
    page = await open_as(browser, demo_site, "alice", DESKTOP)
    await page.goto(f"{demo_site.url}/calls/{demo_site.ids['call_id']}")
    wave = page.get_by_role("slider", name="Position in the recording")
    await wave.wait_for()
    duration = await page.evaluate("""() => new Promise((ok, fail) => {
        const a = document.querySelector('audio.player-audio');
        if (a.readyState >= 1) ok(a.duration);
        else a.addEventListener('loadedmetadata', () => ok(a.duration));
        a.addEventListener('error', () => fail(new Error('audio error')));
    })""")  # fmt: skip
    assert duration > 6
    position = "() => document.querySelector('audio.player-audio').currentTime"
    await wave.focus()
    assert await wave.evaluate("w => w === document.activeElement")
    await page.keyboard.press("ArrowRight")
    assert await page.evaluate(position) == pytest.approx(5, abs=0.3)
    assert await wave.get_attribute("aria-valuenow") == "5"
    text = await wave.get_attribute("aria-valuetext") or ""
    assert text.startswith("0:05 of 0:"), text
    await page.keyboard.press("ArrowLeft")
    assert await page.evaluate(position) == pytest.approx(0, abs=0.1)
    await page.keyboard.press("PageUp")  # +30 s, held at the end
    assert await page.evaluate(position) == pytest.approx(duration, abs=0.3)
    await page.keyboard.press("Home")
    await page.keyboard.press("End")
    assert await page.evaluate(position) == pytest.approx(duration, abs=0.3)
    assert await wave.get_attribute("aria-valuenow") == str(round(duration))
    await page.keyboard.press("Home")
    assert await page.evaluate(position) == pytest.approx(0, abs=0.1)
    assert (await wave.get_attribute("aria-valuetext") or "").startswith("0:00 of ")
