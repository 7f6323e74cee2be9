"""The managers' audit and reports as a manager abroad reads them: every row, figure and
table of a generated month in the manager's own language and time zone (a Russian manager
in Tokyo, a Japanese one in Los Angeles), so a change to how the pages are rendered cannot
change what they show."""

# ruff: noqa: RUF001 (the pages' Russian and Japanese words hold letters that look Latin)

from __future__ import annotations

import re
from html import unescape

from aiohttp.test_utils import TestClient

from tests.crm.factories import inbound, outbound
from web.runtime import Runtime

from .conftest import People, login

HOUR = 3_600.0
DAY = 86_400.0
START = 1_793_491_200.0  # 2026-11-01 00:00 UTC
PERIOD = "from=2026-11-01&to=2026-11-30"


EXPECTED_AUDIT_RU_TOKYO = [
    [
        "28 нояб. 15:03",
        "+1 415-555-0309 (missed call, 28 Nov 06:03) (415) 555-0309",
        "5552000",
        "Alice Rep (101)",
        "15 с",
        "брошен",
        "перезвонили",
        "Bob Rep через 2 ч 50 мин",
    ],
    [
        "26 нояб. 06:56",
        "+1 415-555-0308 (missed call, 25 Nov 21:56) (415) 555-0308",
        "5551000",
        "Alice Rep (101) Bob Rep (102)",
        "15 с",
        "пропущен",
        "открыт Bob Rep",
        "—",
    ],
    [
        "23 нояб. 01:49",
        "+1 415-555-0307 (missed call, 22 Nov 16:49) (415) 555-0307",
        "5551000",
        "Alice Rep (101) Bob Rep (102)",
        "15 с",
        "нет ответа",
        "перезвонили",
        "Bob Rep через 2 ч 16 мин",
    ],
    [
        "19 нояб. 20:42",
        "+1 415-555-0306 (missed call, 19 Nov 11:42) (415) 555-0306",
        "5552000",
        "Alice Rep (101) Bob Rep (102) (отклонил)",
        "15 с",
        "занято",
        "перезвонили",
        "Alice Rep через 1 ч 59 мин",
    ],
    [
        "16 нояб. 15:35",
        "+1 415-555-0305 (missed call, 16 Nov 06:35) (415) 555-0305",
        "5551000",
        "Alice Rep (101)",
        "15 с",
        "брошен",
        "открыт Alice Rep",
        "—",
    ],
    [
        "11 нояб. 02:21",
        "+1 415-555-0303 (missed call, 10 Nov 17:21) (415) 555-0303",
        "5552000",
        "Alice Rep (101) Bob Rep (102)",
        "15 с",
        "нет ответа",
        "перезвонили",
        "Bob Rep через 1 ч 08 мин",
    ],
    [
        "7 нояб. 21:14",
        "+1 415-555-0302 (missed call, 7 Nov 12:14) (415) 555-0302",
        "5551000",
        "Alice Rep (101) Bob Rep (102)",
        "15 с",
        "занято",
        "открыт Alice Rep",
        "—",
    ],
    [
        "4 нояб. 16:07",
        "Ольга <Клиент> (415) 555-0301",
        "5551000",
        "Alice Rep (101)",
        "15 с",
        "брошен",
        "перезвонили",
        "Bob Rep через 34 мин 00 с",
    ],
    [
        "1 нояб. 11:00",
        "+1 415-555-0300 (missed call, 1 Nov 02:00) (415) 555-0300",
        "5552000",
        "Alice Rep (101) Bob Rep (102)",
        "15 с",
        "пропущен",
        "перезвонили",
        "Alice Rep через 17 мин 00 с",
    ],
]

FIGURES_RU = {
    "inbound": "19",
    "missed": "9",
    "missed-rate": "47,4%",
    "median-callback": "1 ч 33 мин",
    "within-sla": "22%",
    "returned": "6 / 9",
}

PER_REP_RU = [
    "Alice Rep 10 10 2 1 ч 08 мин",
    "Bob Rep 7 0 4 1 ч 42 мин",
]

PER_LINE_RU = [
    "5551000 11 5 45,5%",
    "5552000 8 4 50,0%",
]

TITLES_RU_TOKYO = [
    "28.11.2026 15:03:09",
    "26.11.2026 06:56:08",
    "23.11.2026 01:49:07",
    "19.11.2026 20:42:06",
    "16.11.2026 15:35:05",
    "11.11.2026 02:21:03",
    "07.11.2026 21:14:02",
    "04.11.2026 16:07:01",
    "01.11.2026 11:00:00",
]

PER_DAY_RU_TOKYO = [
    "2026-11-01 2 1 0 0 0 3",
    "2026-11-04 2 0 1 0 0 3",
    "2026-11-07 1 0 0 1 0 2",
    "2026-11-11 2 0 0 0 1 3",
    "2026-11-14 1 0 0 0 0 1",
    "2026-11-16 1 0 1 0 0 2",
    "2026-11-19 2 0 0 1 0 3",
    "2026-11-22 1 0 0 0 0 1",
    "2026-11-23 1 0 0 0 1 2",
    "2026-11-26 1 1 0 0 0 2",
    "2026-11-28 2 0 1 0 0 3",
]

REPORT_REPS_RU = [
    "Alice Rep 12 10 1 мин 30 с",
    "Bob Rep 4 7 20 с",
]

HOURS_RU_TOKYO = [
    "00:00 1",
    "01:00 1",
    "02:00 1",
    "03:00 1",
    "04:00 2",
    "05:00 1",
    "06:00 1",
    "07:00 0",
    "08:00 0",
    "09:00 1",
    "10:00 0",
    "11:00 2",
    "12:00 0",
    "13:00 2",
    "14:00 1",
    "15:00 2",
    "16:00 2",
    "17:00 1",
    "18:00 1",
    "19:00 1",
    "20:00 1",
    "21:00 1",
    "22:00 1",
    "23:00 1",
]

EXPECTED_AUDIT_JA_LA = [
    [
        "11月27日 22:03",
        "+1 415-555-0309 (missed call, 28 Nov 06:03) (415) 555-0309",
        "5552000",
        "Alice Rep (101)",
        "15秒",
        "放棄",
        "折り返し済み",
        "Bob Rep 2時間50分 後",
    ],
    [
        "11月25日 13:56",
        "+1 415-555-0308 (missed call, 25 Nov 21:56) (415) 555-0308",
        "5551000",
        "Alice Rep (101) Bob Rep (102)",
        "15秒",
        "不在",
        "未完了 Bob Rep",
        "—",
    ],
    [
        "11月22日 08:49",
        "+1 415-555-0307 (missed call, 22 Nov 16:49) (415) 555-0307",
        "5551000",
        "Alice Rep (101) Bob Rep (102)",
        "15秒",
        "応答なし",
        "折り返し済み",
        "Bob Rep 2時間16分 後",
    ],
    [
        "11月19日 03:42",
        "+1 415-555-0306 (missed call, 19 Nov 11:42) (415) 555-0306",
        "5552000",
        "Alice Rep (101) Bob Rep (102) （拒否）",
        "15秒",
        "話し中",
        "折り返し済み",
        "Alice Rep 1時間59分 後",
    ],
    [
        "11月15日 22:35",
        "+1 415-555-0305 (missed call, 16 Nov 06:35) (415) 555-0305",
        "5551000",
        "Alice Rep (101)",
        "15秒",
        "放棄",
        "未完了 Alice Rep",
        "—",
    ],
    [
        "11月10日 09:21",
        "+1 415-555-0303 (missed call, 10 Nov 17:21) (415) 555-0303",
        "5552000",
        "Alice Rep (101) Bob Rep (102)",
        "15秒",
        "応答なし",
        "折り返し済み",
        "Bob Rep 1時間08分 後",
    ],
    [
        "11月7日 04:14",
        "+1 415-555-0302 (missed call, 7 Nov 12:14) (415) 555-0302",
        "5551000",
        "Alice Rep (101) Bob Rep (102)",
        "15秒",
        "話し中",
        "未完了 Alice Rep",
        "—",
    ],
    [
        "11月3日 23:07",
        "Ольга <Клиент> (415) 555-0301",
        "5551000",
        "Alice Rep (101)",
        "15秒",
        "放棄",
        "折り返し済み",
        "Bob Rep 34分00秒 後",
    ],
]

FIGURES_JA = {
    "inbound": "18",
    "missed": "8",
    "missed-rate": "44.4%",
    "median-callback": "1時間59分",
    "within-sla": "12%",
    "returned": "5 / 8",
}

HEAD_RU = "Отчёты с 01.11.2026 по 30.11.2026 · 25 звонков"

BUSIEST_RU = "Больше всего: 04:00–04:59, 2 звонка."


async def month(rt: Runtime, people: People) -> None:
    """A November of Maria's team (Alice 101, Bob 102): every third day a caller rings
    at a time that falls on another day in Tokyo or Los Angeles than in UTC; missed,
    abandoned, busy and unanswered calls, a known contact, a declined ring, a withheld
    number (no task: not in a manager's audit), callbacks within the SLA, late, and
    still open (owned and not)."""
    s, h = rt.service, rt.ingest.handle
    team = await s.create_team("North", "test")
    for user in (people.manager, people.alice, people.bob):
        await s.set_team(user.id, team.id, "test")
    await s.create_contact("Ольга <Клиент>", phones=["+14155550301"], owner_id=people.alice.id)
    outcomes = ("missed", "abandoned", "busy", "no_answer")
    for i in range(10):
        at = START + 3 * i * DAY + (2 + 5 * i % 21) * HOUR + 7 * i * 60 + i
        caller = None if i == 4 else f"+1415555{300 + i:04d}"
        did = "5552000" if i % 3 == 0 else "5551000"
        declined = ("102",) if i == 6 else ()
        rang = ("101",) if i % 4 == 1 else ("101", "102")
        await h(inbound("+14155550900", answered_by="101", at=at - 2 * HOUR, did=did))
        await h(
            inbound(caller, answered_by=None, outcome=outcomes[i % 4], at=at, did=did,
                    rang=rang, declined=declined)
        )  # fmt: skip
        if caller is not None and i % 3 != 2:
            back = at + (i + 1) * 17 * 60 + 15  # minutes to callback grow: some late
            rep = "102" if i % 2 else "101"
            await h(outbound(caller[2:], caller, caller=rep, at=back))
    await h(inbound("+14155550900", answered_by="102", at=START + 29 * DAY + 23 * HOUR))


def cells(html: str, after: str, nth: int = 0) -> list[str]:
    """The text of each body row of the ``nth`` table after the text ``after``."""
    body = html.split(after, 1)[1].split("</table>", nth + 1)[nth]
    body = body.split("<tbody>", 1)[1]
    rows = re.findall(r"<tr.*?</tr>", body, re.S)
    text = (re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r)) for r in rows)
    return [unescape(t).strip() for t in text]


def audit_rows(html: str) -> list[list[str]]:
    """The audit's calls, each row as the text of its cells."""
    body = html.split('class="missed-table"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr data-call=.*?</tr>", body, re.S)
    return [
        [unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", td))).strip() for td in tds]
        for tds in (re.findall(r"<td.*?</td>", row, re.S) for row in rows)
    ]


def figures(html: str) -> dict[str, str]:
    found = re.findall(r'data-figure="([^"]+)">([^<]*)<', html)
    return {name: unescape(value).strip() for name, value in found}


async def page_as(
    client: TestClient, rt: Runtime, people: People, language: str, zone: str, path: str
) -> str:
    """The generated month, then ``path`` as the manager reading in ``language`` and ``zone``."""
    await month(rt, people)
    await rt.service.set_preferences(people.manager.id, language, zone, "test")
    await login(client, "maria")
    return await (await client.get(f"{path}?{PERIOD}")).text()


async def test_the_audit_in_russian_in_tokyo(
    client: TestClient, rt: Runtime, people: People
) -> None:
    html = await page_as(client, rt, people, "ru", "Asia/Tokyo", "/missed")
    assert audit_rows(html) == EXPECTED_AUDIT_RU_TOKYO
    assert figures(html) == FIGURES_RU
    assert cells(html, '<div class="grid">') == PER_REP_RU
    assert cells(html, '<div class="grid">', 1) == PER_LINE_RU
    titles = re.findall(r'<a href="/calls/\d+" title="([^"]+)"', html)
    assert titles == TITLES_RU_TOKYO


async def test_the_audit_in_japanese_in_los_angeles(
    client: TestClient, rt: Runtime, people: People
) -> None:
    html = await page_as(client, rt, people, "ja", "America/Los_Angeles", "/missed")
    assert audit_rows(html) == EXPECTED_AUDIT_JA_LA
    assert figures(html) == FIGURES_JA


async def test_the_reports_in_russian_in_tokyo(
    client: TestClient, rt: Runtime, people: People
) -> None:
    html = await page_as(client, rt, people, "ru", "Asia/Tokyo", "/reports")
    head = unescape(re.sub(r"<[^>]+>", " ", html.split('class="page-head"', 1)[1]))
    assert HEAD_RU in re.sub(r"\s+", " ", head)
    assert cells(html, 'id="per-day"') == PER_DAY_RU_TOKYO
    assert cells(html, 'id="per-rep"') == REPORT_REPS_RU
    assert cells(html, 'class="compact hours"') == HOURS_RU_TOKYO
    assert BUSIEST_RU in unescape(html)


async def test_a_row_seen_before_shows_what_changed_since(
    client: TestClient, rt: Runtime, people: People
) -> None:
    """The same rows again after the reader's language and zone, a callback and a rep's
    extensions changed: each row shows the change at once."""
    await month(rt, people)
    await rt.service.set_preferences(people.manager.id, "ru", "Asia/Tokyo", "test")
    await login(client, "maria")
    assert audit_rows(await (await client.get(f"/missed?{PERIOD}")).text()) == (
        EXPECTED_AUDIT_RU_TOKYO
    )
    await rt.service.set_preferences(people.manager.id, "ja", "America/Los_Angeles", "test")
    assert audit_rows(await (await client.get(f"/missed?{PERIOD}")).text()) == (
        EXPECTED_AUDIT_JA_LA
    )
    await rt.service.set_preferences(people.manager.id, "ru", "Asia/Tokyo", "test")
    await rt.service.set_extensions(people.bob.id, ["109"], "test")
    # Bob calls back the caller whose task was still his and open (25 Nov UTC)
    await rt.ingest.handle(outbound("4155550308", "+14155550308", caller="109",
                                    at=START + 24 * DAY + 23 * HOUR))  # fmt: skip
    rows = audit_rows(await (await client.get(f"/missed?{PERIOD}")).text())
    assert rows[1][3] == "Alice Rep (101) 102"
    assert rows[1][6:] == ["перезвонили", "Bob Rep через 1 ч 03 мин"]
    assert [r[3] for r in rows] == [
        r[3].replace("Bob Rep (102)", "102") for r in EXPECTED_AUDIT_RU_TOKYO
    ]
