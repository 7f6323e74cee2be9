"""The queue report (/reports/queues and its CSV), Admin > Queues, and today's queue
figures as the supervisor board shows them (``web/pages/queue_figures.py``), as a manager
and an admin meet them; reps are kept out and a manager sees only their team's reps."""

from __future__ import annotations

import csv
import io
import re
from html import unescape
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.clock import MIDDAY
from tests.crm.factories import T0, inbound
from web.app import create_app
from web.pages.queue_figures import queue_figures_context
from web.render import render
from web.runtime import Runtime

from .conftest import People, login

PERIOD = "from=2026-11-21&to=2026-11-23"  # T0 is 2026-11-22 09:54:54 UTC


def queued(
    at: float,
    answered_by: str | None,
    wait: float,
    queue: str = "support",
    caller: str = "+14155550300",
    rang: tuple[str, ...] = ("101", "102"),
) -> Any:
    answered = answered_by is not None
    return inbound(
        caller,
        answered_by=answered_by,
        outcome="answered" if answered else "abandoned",
        at=at,
        did="5552000",
        queue=queue,
        rang=rang,
        answered_at=at + wait if answered else None,
        ended_at=at + wait + (60.0 if answered else 0.0),
        ring_seconds=wait,
        talk_seconds=60.0 if answered else 0.0,
        hangup_by="caller",
    )


async def traffic(rt: Runtime, at: float = T0) -> None:
    """support: alice answers after 10 s and 90 s, a caller leaves after 3 s (short) and
    one after 45 s; sales: bob answers after 5 s."""
    h = rt.ingest.handle
    await h(queued(at, "101", 10.0, caller="+14155550301"))
    await h(queued(at + 100, "101", 90.0, caller="+14155550302"))
    await h(queued(at + 300, None, 3.0, caller="+14155550303"))
    await h(queued(at + 400, None, 45.0, caller="+14155550304"))
    await h(queued(at + 500, "102", 5.0, queue="sales", caller="+14155550305", rang=("102",)))


def figure(html: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}"[^>]*>([^<]*)<', html)
    assert match, f"no figure {name}"
    return unescape(match.group(1)).strip()


def table(html: str, table_id: str) -> list[list[str]]:
    body = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)
    cells = [
        [
            unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)
        ]
        for r in rows
    ]
    return [c for c in cells if c]


async def test_reps_get_403(client: TestClient, people: People) -> None:
    await login(client, "alice")
    for path in ("/reports/queues", "/reports/queues.csv", "/admin/queues"):
        assert (await client.get(path)).status == 403, path


async def test_queue_report_as_admin(client: TestClient, rt: Runtime, people: People) -> None:
    await traffic(rt)
    await login(client, "admin")
    resp = await client.get(f"/reports/queues?{PERIOD}")
    assert resp.status == 200
    html = await resp.text()
    assert figure(html, "total-offered") == "5"
    assert figure(html, "total-answered") == "3"
    assert figure(html, "total-abandoned") == "1"
    # support: 1 of (4 - 1 short) within 20 s; sales 1 of 1; all: 2 of 4 -> 50 %
    assert figure(html, "total-service-level") == "50%"
    rows = {r[0]: r for r in table(html, "queue-table")}
    assert rows["support"][1:5] == ["4", "2", "1", "1"]
    assert rows["support"][5] == "33%"
    assert rows["support"][6] == "50s"  # ASA (10 + 90) / 2
    assert rows["support"][8] == "1m 30s"  # longest wait
    assert rows["sales"][1:6] == ["1", "1", "0", "0", "100%"]
    assert rows["All queues"][1] == "5"
    # colours: support's 33 % is red (<= 60 %), its 90 s longest wait amber (>= 60 s)
    assert re.search(r'level-red" data-figure="service-level" data-level="red">33%', html)
    assert 'data-level="amber">1m 30s' in html
    reps = {r[0]: r for r in table(html, "rep-table")}
    # the unanswered calls rang 101 then 102: alice rang out, bob was still ringing when
    # the callers left; bob rang out on the two calls alice took
    assert reps["Alice Rep"][1:3] == ["2", "2"]
    assert reps["Bob Rep"][1:3] == ["1", "2"]
    assert html.count("<svg") >= 4  # per queue, wait distribution, per hour, per rep
    days = table(html, "day-table")
    assert [r[0] for r in days] == ["2026-11-22 · sales", "2026-11-22 · support"]


async def test_queue_csv_exports(client: TestClient, rt: Runtime, people: People) -> None:
    await traffic(rt)
    await login(client, "maria")
    await rt.service.set_team(people.manager.id, None, "test")  # type: ignore[arg-type]
    resp = await client.get(f"/reports/queues.csv?{PERIOD}&table=queues")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    # maria (no team) sees none of them: alice and bob answered two, and the unanswered
    # calls' callbacks went to the reps they rang (the calls list's rule)
    assert rows == []
    assert (await client.get(f"/calls?{PERIOD}")).status == 200
    await rt.service.set_team(people.manager.id, None, "test")  # type: ignore[arg-type]
    team = await rt.service.create_team("North", "test")
    for person in (people.manager, people.alice, people.bob):
        await rt.service.set_team(person.id, team.id, "test")  # type: ignore[arg-type]
    resp = await client.get(f"/reports/queues.csv?{PERIOD}&table=queues")
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    # with alice and bob in her team she sees every queue call of the period
    found = {r["queue"]: (r["abandoned"], r["short_abandoned"]) for r in rows}
    assert found["support"] == ("1", "1") and found["all"] == ("1", "1")
    await login(client, "admin")
    for name, first in (("days", "day"), ("hours", "hour"), ("reps", "rep")):
        resp = await client.get(f"/reports/queues.csv?{PERIOD}&table={name}")
        text = await resp.text()
        assert text.startswith(first + ","), name
    reps = list(csv.DictReader(io.StringIO(text)))
    assert {r["rep"]: r["queue_answered"] for r in reps} == {"Alice Rep": "2", "Bob Rep": "1"}
    assert (await client.get(f"/reports/queues.csv?{PERIOD}&table=nope")).status == 400
    audit = await rt.service.list_audit(action="queue_report.exported")
    assert len(audit) == 5  # every export, the two of maria included


async def test_manager_sees_only_their_team(client: TestClient, rt: Runtime, people: People):
    await traffic(rt)
    s = rt.service
    team = await s.create_team("North", "test")
    await s.set_team(people.manager.id, team.id, "test")  # type: ignore[arg-type]
    await s.set_team(people.bob.id, team.id, "test")  # type: ignore[arg-type]
    await login(client, "maria")
    html = await (await client.get(f"/reports/queues?{PERIOD}")).text()
    reps = {r[0] for r in table(html, "rep-table")}
    assert reps == {"Bob Rep"}
    assert "Alice Rep" not in html


async def test_admin_queue_settings(client: TestClient, rt: Runtime, people: People) -> None:
    await traffic(rt)
    csrf = await login(client, "admin")
    html = await (await client.get("/admin/queues")).text()
    assert 'id="queue-support"' in html and 'id="queue-sales"' in html
    form = {
        "_csrf": csrf,
        "queue": "support",
        "service_level_seconds": "100",
        "short_abandon_seconds": "5",
        "waiting_amber": "2",
        "waiting_red": "4",
        "longest_wait_amber": "100",
        "longest_wait_red": "200",
        "service_level_amber": "80",
        "service_level_red": "60",
    }
    resp = await client.post("/admin/queues", data=form, allow_redirects=False)
    assert resp.status == 303
    html = await (await client.get(f"/reports/queues?{PERIOD}")).text()
    rows = {r[0]: r for r in table(html, "queue-table")}
    assert rows["support"][5] == "67%"  # both answered calls within 100 s now: 2 of 3
    assert 'data-level="ok">1m 30s' in html  # longest wait under the new amber
    bad = {**form, "waiting_red": "1"}
    resp = await client.post("/admin/queues", data=bad)
    assert resp.status == 400
    assert "red must be at or above amber" in await resp.text()
    resp = await client.post(
        "/admin/queues/reset", data={"_csrf": csrf, "queue": "support"}, allow_redirects=False
    )
    assert resp.status == 303
    assert (await rt.service.queue_settings()).for_queue("support").service_level_seconds == 20
    entries = await rt.service.list_audit(action="settings.changed")
    assert [e.target for e in entries][:2] == ["queues", "queues"]


async def _board_partial(request: web.Request) -> web.StreamResponse:
    """What the board page does with the partial (``web/pages/board.py``)."""
    return render(request, "_queue_figures.html", await queue_figures_context(request))


async def test_board_shows_todays_figures_coloured(
    aiohttp_client: Any, rt: Runtime, people: People
) -> None:
    rt.clock.set(MIDDAY)
    await traffic(rt, at=MIDDAY - 3600)
    await rt.ingest.handle(queued(MIDDAY - 86400, "101", 5.0, caller="+14155550399"))  # yesterday
    app = create_app(rt)
    app.router.add_get("/_board_figures", _board_partial)
    client = await aiohttp_client(app)
    await login(client, "admin")
    resp = await client.get("/_board_figures")
    html = await resp.text()
    assert resp.status == 200
    assert "Today in the queues" in html
    rows = {r[0]: r for r in table(html.replace("<table", '<table id="t"', 1), "t")}
    assert rows["support"][1] == "4"  # yesterday's call left out
    assert 'data-level="red">33%' in html
    assert 'data-queue-thresholds="support" data-waiting-amber="3" data-waiting-red="6"' in html
    assert "Alice Rep" in html
