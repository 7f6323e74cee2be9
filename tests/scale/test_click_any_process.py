"""Click-to-call through HTTP on a ``run.py serve`` process that does not consume the PBX
link: two processes on one PostgreSQL, a rep logged in to the one standing by, ``POST
/dial`` there; the replay PBX gets the Originate once (from the other process) and the
rep's stream on the process they talk to follows the click to its end."""

from __future__ import annotations

import re
from pathlib import Path

from ami_bridge.replay_pbx import OriginateScript, ReplayPbx
from crm.policy import LeadPolicy
from crm.services import CrmService
from crm.store import open_store
from tests.waiting import until as _until

from .cluster import PASSWORD, Cluster, Office, SseClient, link_holder

ROOT = Path(__file__).resolve().parents[2]
CLICK = ROOT / "tests" / "fixtures" / "asterisk-22" / "06-click-to-call" / "raw.ami"
EAST = Office("east", "East", {}, "41555502")
META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


async def _seed(pg_url: str) -> None:
    store = await open_store(pg_url, migrate=False)
    try:
        link = await store.ensure_pbx_link(EAST.link, EAST.team)
        service = CrmService(store, LeadPolicy())
        await service.create_user("carol", "Carol Chen", PASSWORD, "rep", ["103"],
                                  team_id=link.team_id)  # fmt: skip
    finally:
        await store.close()


async def test_click_on_a_process_without_the_link_reaches_the_pbx_once(
    pg_url: str, tmp_path: Path
) -> None:
    pbx = ReplayPbx(None, speed=1.0, secret="crmsecret")
    pbx.script_originate(OriginateScript.from_capture(CLICK, "c2c-0001"))
    await pbx.start()
    cluster = Cluster(tmp_path, pg_url, [(EAST, pbx.port)])
    rep: SseClient | None = None
    try:
        cluster.migrate()
        await _seed(pg_url)
        first = cluster.spawn()
        await cluster.wait_healthy(first)
        await _until(lambda: pbx.logins_ok >= 1 and pbx.clients == 1, 30, "the link up")
        second = cluster.spawn()
        await cluster.wait_healthy(second)
        holder = await link_holder(pg_url, EAST.link)
        assert holder == first.pid
        standby = second

        rep = SseClient("carol", "103", standby)
        await rep.start()
        http = rep._session
        assert http is not None
        async with http.get(standby.url + "/") as resp:
            assert resp.status == 200
            token = META_CSRF.search(await resp.text())
        assert token, "no csrf-token meta on the home page"
        headers = {"X-CSRF-Token": token.group(1), "Accept": "application/json"}
        async with http.post(standby.url + "/dial", json={"number": "(415) 555-0123"},
                             headers=headers) as resp:  # fmt: skip
            body = await resp.json()
            assert resp.status == 202, body
        assert body["state"] == "ringing_you" and body["extension"] == "103"
        originate_id = body["originate_id"]

        def states() -> list[str]:
            return [d["state"] for d in rep.of_kind("click_progress")  # type: ignore[union-attr]
                    if d["originate_id"] == originate_id]  # fmt: skip

        await _until(lambda: "ended" in states() or "failed" in states(), 60, "the click ends")
        assert states() == ["ringing_you", "dialling", "connected", "ended"]
        sent = [m for m in pbx.received if m.get("Action") == "Originate"]
        assert [m["ActionID"] for m in sent] == [originate_id]
        assert pbx.actions["originate"] == 1
        # The relay's own events never reach a browser.
        kinds = {m["kind"] for _, m in rep.messages}
        assert not kinds & {"originate_request", "originate_reply", "link_consumer"}
    finally:
        if rep is not None:
            await rep.close()
        cluster.stop_all()
        await pbx.close()
