"""The queue report in Chromium as a manager: from Reports to the Queues tab, the figures
of the recorded queue calls (20, 21) and a week of generated ones, the threshold colours,
a narrower period, a CSV download; an admin tightens a queue's thresholds and the report
turns red.  Screenshot for the README (``queue-report.png``)."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser

from ami_bridge.replay import replay_file
from config.settings import load_settings, pbx_profile
from tests.crm.factories import inbound
from tests.paths import ASTERISK22

from .conftest import Site, login_page, screenshot

DAY = 86_400.0
START = 1_795_132_800.0  # 2026-11-20 00:00 UTC
PERIOD = "from=2026-11-20&to=2026-11-30"


async def seed(site: Site) -> None:
    """The two recorded queue calls (2026-11-30), then a week of queue calls on two queues
    (2026-11-20 to 26): most answered within 20 s, some late, some callers gone."""
    rt, p = site.rt, site.people
    team = await rt.service.create_team("Support", "admin")
    for user in (p.manager, p.alice, p.bob):
        await rt.service.set_team(user.id, team.id, "admin")  # type: ignore[arg-type]
    profile = pbx_profile(load_settings(env={}, demo=True))
    for scenario in ("20-queue-second-member", "21-queue-abandoned"):
        for rec in replay_file(ASTERISK22 / scenario / "events.jsonl", profile):
            await rt.ingest.handle(rec)
    start = START
    n = 0
    for day in range(7):
        for slot in range(6 + day % 4):
            n += 1
            at = start + day * DAY + (9 + slot) * 3600 + (n * 137) % 1800
            queue = "support" if n % 3 else "sales"
            wait = float((4, 8, 12, 6, 15, 35, 9, 18, 70, 5)[n % 10] + n % 3)
            who = None if n % 5 == 0 else ("101" if n % 2 else "102")
            await rt.ingest.handle(
                inbound(
                    f"+1415555{n % 50 + 200:04d}", answered_by=who,
                    outcome="answered" if who else "abandoned", at=at, did="5552000",
                    queue=queue, rang=("101", "102"),
                    answered_at=at + wait if who else None,
                    ended_at=at + wait + (90.0 + n % 120 if who else 0.0),
                    ring_seconds=wait, talk_seconds=90.0 + n % 120 if who else 0.0,
                )
            )  # fmt: skip
    # the reps' phones registered 08:00-18:00 with a lunch pause, as the board's tracker
    # stores them (agent_events)
    events = []
    for day in range(7):
        base = START + day * DAY
        for ext, lunch in (("101", 12), ("102", 13)):
            events += [
                (base + 8 * 3600, "registered", None, ext, None),
                (base + lunch * 3600, "paused", "support", ext, "lunch"),
                (base + (lunch + 1) * 3600, "unpaused", "support", ext, None),
                (base + 18 * 3600, "unregistered", None, ext, None),
            ]
    async with rt.store._use() as c:  # type: ignore[attr-defined]
        await c.executemany(
            "INSERT INTO agent_events (ts, kind, queue, extension, reason) "
            "VALUES ($1, $2, $3, $4, $5)",
            events,
        )


async def test_a_manager_reads_the_queue_report(browser: Browser, site: Site) -> None:
    await seed(site)
    page = await login_page(browser, site, "maria")
    await page.click("nav.mainnav >> text=Reports")
    await page.click("nav.tabs >> text=Queues")
    await page.wait_for_url("**/reports/queues?*")
    await page.goto(f"{site.url}/reports/queues?{PERIOD}")
    rows = page.locator("#queue-table tbody tr")
    assert await rows.count() == 3  # sales, support, all queues
    offered = int(await page.inner_text("[data-figure=total-offered]"))
    assert offered > 40
    charts = page.locator("figure.chart svg[role=img]")
    assert await charts.count() == 4
    alice = page.locator("#rep-table tr", has_text="Alice Rep")
    pause = alice.locator("[data-figure=pause]")
    assert await pause.inner_text() == "7h 00m"
    assert await pause.get_attribute("title") == "lunch: 7h 00m"
    assert (await alice.locator("[data-figure=occupancy]").inner_text()).endswith("%")
    await page.set_viewport_size({"width": 1280, "height": 860})
    await screenshot(page, "queue-report")

    async with page.expect_download() as info:
        await page.click("text=CSV: per queue")
    text = Path(str(await (await info.value).path())).read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("queue,offered,answered,abandoned")

    admin = await login_page(browser, site, "admin")
    # the recorded calls' day only: 2026-11-30, two calls of queue support (103, who
    # answered one, is nobody's rep here: only the admin sees that call)
    await admin.goto(f"{site.url}/reports/queues")
    await admin.fill("input[name=from]", "2026-11-30")
    await admin.fill("input[name=to]", "2026-11-30")
    await admin.click("form.filters button[type=submit]")
    await admin.wait_for_url("**/reports/queues?from=2026-11-30*")
    assert await admin.inner_text("[data-figure=total-offered]") == "2"
    support = admin.locator("#queue-table tbody tr").first
    assert (await support.locator("td").first.inner_text()) == "support"
    assert await support.locator("[data-figure=service-level]").inner_text() == "50%"
    level = await support.locator("[data-figure=service-level]").get_attribute("data-level")
    assert level == "red"  # 50 % <= 60 %

    # the admin lowers support's longest-wait limits; the report shows it red
    await admin.goto(f"{site.url}/admin/queues")
    form = admin.locator("#queue-support form").first
    await form.locator("input[name=longest_wait_amber]").fill("1")
    await form.locator("input[name=longest_wait_red]").fill("2")
    await form.locator("button[type=submit]").click()
    await admin.wait_for_url("**/admin/queues?done=saved")
    await admin.goto(f"{site.url}/reports/queues?{PERIOD}")
    cell = admin.locator("#queue-table tbody tr", has_text="support").first.locator(
        "[data-figure=longest-wait]"
    )
    assert await cell.get_attribute("data-level") == "red"
