"""The managers' pages as a manager meets them: the missed-calls audit (figures, rows,
filters, pages, CSV export) and the reports with their charts; reps are kept out and a
manager sees only their team."""

from __future__ import annotations

import csv
import io
import re
from html import unescape

from aiohttp.test_utils import TestClient

from tests.crm.factories import T0, inbound, outbound
from web.runtime import Runtime

from .conftest import People, login

DAY = 86_400.0
PERIOD = "from=2026-11-21&to=2026-11-23"  # T0 is 2026-11-22 09:54:54 UTC


async def traffic(rt: Runtime) -> None:
    """Five inbound calls on two lines (three missed: missed, abandoned, busy), bob
    calls the first missed caller back after 10 minutes, alice the abandoned one after
    two hours (SLA is the default 60 minutes)."""
    h = rt.ingest.handle
    await h(inbound("+14155550201", answered_by="101", at=T0))
    await h(inbound("+14155550202", answered_by=None, at=T0 + 100))  # ends +115
    await h(
        inbound("+14155550203", answered_by=None, outcome="abandoned", at=T0 + 200, did="5552000")
    )
    await h(inbound("+14155550204", answered_by=None, outcome="busy", at=T0 + 300, rang=("101",)))
    await h(inbound("+14155550205", answered_by="102", at=T0 + 400, did="5552000"))
    await h(outbound("4155550202", "+14155550202", caller="102", at=T0 + 715))
    await h(outbound("4155550203", "+14155550203", caller="101", at=T0 + 215 + 7200))


def rows_of(html: str) -> list[str]:
    """The text of each row of the missed-calls table."""
    body = html.split('class="missed-table"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr data-call=.*?</tr>", body, re.S)
    return [unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r))).strip() for r in rows]


def figure(html: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert match, f"no figure {name}"
    return unescape(match.group(1)).strip()


async def test_reps_get_403_on_manager_pages(client: TestClient, people: People) -> None:
    await login(client, "alice")
    for path in ("/missed", "/missed.csv", "/reports"):
        resp = await client.get(path)
        assert resp.status == 403, path
        assert "your role does not allow this page" in await resp.text()


async def test_missed_page_figures_and_rows(
    client: TestClient, rt: Runtime, people: People
) -> None:
    await traffic(rt)
    await login(client, "admin")
    resp = await client.get(f"/missed?{PERIOD}")
    assert resp.status == 200
    html = await resp.text()
    assert figure(html, "inbound") == "5"
    assert figure(html, "missed") == "3"
    assert figure(html, "missed-rate") == "60.0%"
    assert figure(html, "median-callback") == "1h 05m"  # median of 10 min and 2 h
    assert figure(html, "within-sla") == "33%"
    assert figure(html, "returned") == "2 / 3"
    rows = rows_of(html)
    assert len(rows) == 3
    busy, abandoned, missed = rows  # newest first
    assert "busy" in busy and "Alice Rep (101)" in busy and "Bob Rep" not in busy
    assert "open" in busy
    assert "abandoned" in abandoned and "Alice Rep" in abandoned and "after 2h 00m" in abandoned
    assert "called back" in missed and "Bob Rep" in missed and "after 10m 00s" in missed
    assert "Alice Rep (101)" in missed and "Bob Rep (102)" in missed
    # per-line figures: 5551000 had 3 inbound, 2 missed
    per_line = html.split("<h2>Per line</h2>", 1)[1].split("</table>", 1)[0]
    assert re.search(r"\(555\) 100-0|5551000", per_line)
    assert "66.7%" in per_line and "50.0%" in per_line
    per_rep = html.split("<h2>Per rep</h2>", 1)[1].split("</table>", 1)[0]
    assert "Alice Rep" in per_rep and "Bob Rep" in per_rep


async def test_missed_filters(client: TestClient, rt: Runtime, people: People) -> None:
    await traffic(rt)
    await login(client, "admin")  # every call: the filters are what this checks
    html = await (await client.get(f"/missed?{PERIOD}&outcome=abandoned")).text()
    assert [("abandoned" in r) for r in rows_of(html)] == [True]
    html = await (await client.get(f"/missed?{PERIOD}&line=5552000")).text()
    assert len(rows_of(html)) == 1 and "abandoned" in rows_of(html)[0]
    html = await (await client.get(f"/missed?{PERIOD}&callback=open")).text()
    assert len(rows_of(html)) == 1 and "busy" in rows_of(html)[0]
    html = await (await client.get(f"/missed?{PERIOD}&callback=closed")).text()
    assert len(rows_of(html)) == 2
    # bob was not rung on the busy call and called back only the first one
    html = await (await client.get(f"/missed?{PERIOD}&rep={people.bob.id}")).text()
    assert len(rows_of(html)) == 2 and not any("busy" in r for r in rows_of(html))
    bad = await client.get(f"/missed?{PERIOD}&outcome=drop%20table")
    assert bad.status == 200
    assert "outcome must be one of" in await bad.text()


async def test_manager_sees_only_their_team(
    client: TestClient, rt: Runtime, people: People
) -> None:
    s = rt.service
    team = await s.create_team("North", "test")
    await s.set_team(people.manager.id, team.id, "test")
    await s.set_team(people.alice.id, team.id, "test")
    await s.create_contact("Alice's Customer", phones=["+14155550301"], owner_id=people.alice.id)
    await s.create_contact("Bob's Customer", phones=["+14155550302"], owner_id=people.bob.id)
    await rt.ingest.handle(inbound("+14155550301", answered_by=None, at=T0))
    await rt.ingest.handle(inbound("+14155550302", answered_by=None, at=T0 + 60))
    await login(client, "maria")
    html = await (await client.get(f"/missed?{PERIOD}")).text()
    shown = " ".join(rows_of(html))
    assert "Alice's Customer" in shown and "Bob's Customer" not in shown
    csv_text = await (await client.get(f"/missed.csv?{PERIOD}")).text()
    assert "Alice's Customer" in csv_text and "Bob's Customer" not in csv_text

    await login(client, "otto")  # a manager without a team
    html = await (await client.get(f"/missed?{PERIOD}")).text()
    assert rows_of(html) == []
    await login(client, "admin")
    html = await (await client.get(f"/missed?{PERIOD}")).text()
    assert len(rows_of(html)) == 2


async def test_missed_pages_keyset(client: TestClient, rt: Runtime, people: People) -> None:
    for i in range(60):
        outcome = "busy" if i % 2 else "missed"
        await rt.ingest.handle(
            inbound(f"+1415555{1000 + i:04d}", answered_by=None, outcome=outcome, at=T0 + i * 60)
        )
    await login(client, "admin")
    html = await (await client.get(f"/missed?{PERIOD}")).text()
    first = rows_of(html)
    assert len(first) == 50
    nxt = re.search(r'rel="next" href="([^"]+)"', html)
    assert nxt
    html2 = await (await client.get(unescape(nxt.group(1)))).text()
    second = rows_of(html2)
    assert len(second) == 10 and not set(first) & set(second)
    assert 'rel="next"' not in html2
    # filtered pages: 30 busy calls -> 30 on the first page, no next page
    html = await (await client.get(f"/missed?{PERIOD}&outcome=busy")).text()
    assert len(rows_of(html)) == 30 and 'rel="next"' not in html
    assert all("busy" in r for r in rows_of(html))


async def test_csv_export_neutralises_formulas_and_is_audited(
    client: TestClient, rt: Runtime, people: People
) -> None:
    await rt.service.create_contact('=HYPERLINK("http://evil")', phones=["+14155550401"])
    await rt.ingest.handle(inbound("+14155550401", answered_by=None, at=T0))
    await traffic(rt)
    await login(client, "admin")  # every missed call, the evil contact's included
    resp = await client.get(f"/missed.csv?{PERIOD}&outcome=missed")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await resp.text())))
    header, data = rows[0], rows[1:]
    assert header[:4] == ["started", "caller", "contact", "line"]
    assert len(data) == 2  # the evil contact's call and the plain missed one
    evil = next(r for r in data if "HYPERLINK" in r[2])
    assert evil[2] == '\'=HYPERLINK("http://evil")'
    assert evil[1] == "'+14155550401"  # a leading + is a formula to a spreadsheet too
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in data for cell in r)
    entries = await rt.service.list_audit(action="missed_calls.exported")
    assert len(entries) == 1
    assert entries[0].actor == "admin" and entries[0].detail["rows"] == 2
    assert entries[0].detail["outcome"] == "missed"


async def test_reports_show_charts_and_numbers(
    client: TestClient, rt: Runtime, people: People
) -> None:
    await rt.service.create_user(
        "eve", "<script>alert(1)</script> Eve", "password-123", "rep", ["103"]
    )
    await traffic(rt)
    await rt.ingest.handle(inbound("+14155550209", answered_by="103", at=T0 + DAY - 4000))
    await login(client, "admin")
    resp = await client.get(f"/reports?{PERIOD}")
    assert resp.status == 200
    html = await resp.text()
    assert html.count('role="img"') == 4
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Eve" in html
    assert " style=" not in html
    day_rows = html.split('id="per-day"', 1)[1].split("</table>", 1)[0]
    # 2026-11-22: 2 answered inbound, 2 outbound callbacks, 3 lost calls = 7 in all
    assert re.search(
        r"<td>2026-11-22</td>(<td class=\"num\">\d+</td>)+<td class=\"num\">7</td>", day_rows
    )
    assert "Busiest: 09:00\u201309:59" in html


async def test_reports_period_errors_are_plain(client: TestClient, people: People) -> None:
    await login(client, "admin")
    html = await (await client.get("/reports?from=2026-13-40")).text()
    assert "from: a date like" in html
    html = await (await client.get("/reports?from=2026-11-20&to=2026-11-01")).text()
    assert "must end on or after" in html


async def test_csv_export_applies_the_same_filters_as_the_page(
    client: TestClient, rt: Runtime, people: People
) -> None:
    await traffic(rt)
    await login(client, "admin")
    for flt in (f"rep={people.bob.id}", "callback=closed", "outcome=abandoned", "line=5552000"):
        page = rows_of(await (await client.get(f"/missed?{PERIOD}&{flt}")).text())
        resp = await client.get(f"/missed.csv?{PERIOD}&{flt}")
        assert resp.status == 200
        table = list(csv.DictReader(io.StringIO(await resp.text())))
        assert len(table) == len(page) and page, flt
        for line, row in zip(table, page, strict=True):
            assert line["outcome"] in row, flt


async def test_a_rep_who_declined_is_shown_on_the_missed_audit_and_the_call_page(
    client: TestClient, rt: Runtime, people: People
) -> None:
    """Bob's phone rejected the call (SIP 403): he was offered it, so he is listed among
    those rung, marked as having declined it; Alice's phone just rang."""
    result = await rt.ingest.handle(
        inbound("+14155550244", answered_by=None, at=T0, rang=("101", "102"), declined=("102",))
    )
    await login(client, "admin")
    html = await (await client.get(f"/missed?{PERIOD}")).text()
    (row,) = rows_of(html)
    assert "Bob Rep (102) (declined)" in row
    assert "Alice Rep (101)" in row and "Alice Rep (101) (declined)" not in row
    call_id = result.call.id  # type: ignore[union-attr]
    page = unescape(await (await client.get(f"/calls/{call_id}")).text())
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "Rang ext 102 (Bob Rep) declined the call" in text
    assert "Rang ext 101 (Alice Rep) declined" not in text
    csv_text = await (await client.get(f"/missed.csv?{PERIOD}")).text()
    assert "Bob Rep (102) (declined)" in csv_text
