"""Pages that say "today" and "overdue" read the runtime's clock, not the wall clock.

A suite run that crossed midnight UTC once failed the home page's tests: a call made
minutes before midnight was "yesterday" by the time the page was read.  Here the clock is
set to either side of one midnight, with calls and a callback due on either side of it,
and every page answers as a rep would expect at that moment.
"""

from __future__ import annotations

import datetime as dt
import re

from aiohttp.test_utils import TestClient

from tests.crm.factories import inbound
from web.runtime import Runtime

from .conftest import People, login

MIDNIGHT = dt.datetime(2026, 3, 15, tzinfo=dt.UTC).timestamp()
BEFORE = MIDNIGHT - 30  # 23:59:30 on the 14th
AFTER = MIDNIGHT + 30  # 00:00:30 on the 15th


def today_calls(html: str) -> list[str]:
    section = html[html.index('id="today-h"') :]
    return re.findall(r'data-call="(\d+)"', section.split("</section>", 1)[0])


def overdue(html: str) -> int:
    match = re.search(r'id="overdue-count">(\d+)<', html)
    assert match, "no overdue figure on the home page"
    return int(match.group(1))


async def test_home_either_side_of_midnight(
    client: TestClient, rt: Runtime, people: People
) -> None:
    await rt.service.create_contact("Grace Hopper", "", "", ["+14155550199"],
                                    owner_id=people.alice.id)  # fmt: skip
    await rt.service.create_contact("Late Caller", "", "", ["+14155550111"],
                                    owner_id=people.alice.id)  # fmt: skip
    late = (await rt.ingest.record(inbound("+14155550199", at=MIDNIGHT - 70))).call  # 23:58:50
    sla = rt.ingest.policy.callback_sla_seconds
    # a missed call whose callback falls due at midnight exactly (it ends 15 s after it starts)
    missed = await rt.ingest.record(
        inbound("+14155550111", answered_by=None, at=MIDNIGHT - sla - 15)
    )
    assert missed.callback is not None and missed.callback.task.due_at == MIDNIGHT
    early = (await rt.ingest.record(inbound("+14155550199", at=MIDNIGHT + 10))).call  # 00:00:10

    rt.clock.set(BEFORE)  # before logging in: a session never starts in the future
    await login(client, "alice")
    html = await (await client.get("/")).text()
    # at 23:59:30 the call of 00:00:10 has not happened yet; the one of 23:58:50 is today's
    assert str(late.id) in today_calls(html) and str(early.id) not in today_calls(html)
    assert str(missed.call.id) in today_calls(html)
    assert overdue(html) == 0

    rt.clock.set(AFTER)
    html = await (await client.get("/")).text()
    # at 00:00:30 yesterday's calls are gone from "today", the new one is there
    assert today_calls(html) == [str(early.id)]
    assert overdue(html) == 1


async def test_manager_pages_either_side_of_midnight(
    client: TestClient, rt: Runtime, people: People
) -> None:
    """The reports' and the missed-calls audit's default period ends today."""
    await rt.service.create_contact("Grace Hopper", "", "", ["+14155550199"],
                                    owner_id=people.alice.id)  # fmt: skip
    late = (await rt.ingest.record(inbound("+14155550199", at=MIDNIGHT - 70))).call
    early = (await rt.ingest.record(inbound("+14155550199", at=MIDNIGHT + 10))).call
    rt.clock.set(BEFORE)  # before logging in: a session never starts in the future
    await login(client, "admin")
    for at, day, shown, hidden in ((BEFORE, "2026-03-14", late, early),
                                   (AFTER, "2026-03-15", early, None)):  # fmt: skip
        rt.clock.set(at)
        for page in ("/reports", "/missed"):
            html = await (await client.get(page)).text()
            assert f'name="to" value="{day}"' in html, page
        home = today_calls(await (await client.get("/")).text())
        assert home == [str(shown.id)]
        if hidden is not None:
            assert str(hidden.id) not in home
