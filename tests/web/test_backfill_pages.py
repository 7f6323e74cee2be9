"""Calls during an outage as users see them: a backfilled call says it came from the PBX's
CDR on its page and in the JSON API; the admin page shows the last backfill, its count
and its error."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC
from html import unescape

from aiohttp.test_utils import TestClient

from ami_bridge.cdr import CdrCalls, parse_lines
from config.settings import pbx_profile
from crm.models import BackfillState
from tests.crm.factories import T0, inbound
from tests.paths import ASTERISK22
from web.runtime import Runtime

from .apicheck import Api
from .conftest import People, login


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


async def test_a_backfilled_call_says_where_it_came_from(
    client: TestClient, rt: Runtime, people: People
) -> None:
    live = (await rt.ingest.record(inbound("+14155550142", answered_by="101"))).call
    # A real one: the missed call of capture 02 as its Master.csv rows give it.
    rows = parse_lines((ASTERISK22 / "02-inbound-missed" / "cdr.csv").read_text().splitlines(), UTC)
    (rec,) = CdrCalls(pbx_profile(rt.settings)).calls(rows)
    cdr = (await rt.ingest.record(rec)).call
    await login(client, "admin")
    page = text_of(await (await client.get(f"/calls/{cdr.id}")).text())
    assert "from the PBX's CDR" in page
    assert "+1 415-555-0102" in page and "missed" in page
    assert "from the PBX's CDR" not in text_of(await (await client.get(f"/calls/{live.id}")).text())
    assert people.admin.id is not None
    api = Api(client, await rt.service.create_api_token(people.admin.id, "t", "admin"))
    status, body = await api.get(f"/calls/{cdr.id}")
    assert status == 200 and body["source"] == "cdr"
    status, body = await api.get(f"/calls/{live.id}")
    assert status == 200 and body["source"] == "ami"


async def test_admin_sees_the_last_backfill_and_its_error(
    client: TestClient, rt: Runtime, people: People
) -> None:
    await login(client, "admin")
    page = text_of(await (await client.get("/admin")).text())
    assert "Calls during an outage" in page and "Off:" in page
    rt.settings["cdr"]["csv_path"] = "/mnt/pbx/Master.csv"
    await rt.store.mark_link_alive("default", T0)
    state = BackfillState(
        "default", last_run_at=T0 + 60, last_window_start=T0 - 120, last_window_end=T0 + 60,
        last_count=3, total_count=5,
    )  # fmt: skip
    await rt.store.save_backfill_state(state, T0 + 60)
    page = text_of(await (await client.get("/admin")).text())
    assert "Off:" not in page
    assert "3 last time, 5 in all" in page
    assert "Last backfill" in page and "not yet" not in page
    failed = dataclasses.replace(
        state, last_count=0, last_error="CDR file /mnt/pbx/Master.csv not found"
    )
    await rt.store.save_backfill_state(failed, T0 + 120)
    page = text_of(await (await client.get("/admin")).text())
    assert "CDR file /mnt/pbx/Master.csv not found: the window is kept and retried" in page
