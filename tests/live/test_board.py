"""The supervisor board against the real Asterisk 22: what the board shows after the
link's resync, a pause and an unpause sent from the board (QueuePause) and coming back as
the PBX's events, a member added and removed, the PBX's refusal to remove a static member
in words, and a handset going offline and back."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from .conftest import Live
from .rig import Http, wait_for


def rep_state(page: str, ext: str) -> str | None:
    found = re.search(rf'<tr id="rep-{ext}" data-ext="{ext}" class="rep state-(\w+)"', page)
    return found.group(1) if found else None


def members(page: str, queue: str = "support") -> list[str]:
    card = page.split(f'id="queue-{queue}"', 1)
    if len(card) < 2:
        return []
    block = card[1].split("</article>", 1)[0].split('data-role="members"', 1)[1].split("</ul>")[0]
    return re.findall(r'<li data-ext="(\d+)"', block)


def act(admin: Http, path: str, **form: str) -> tuple[int, dict[str, Any]]:
    r = admin.post(path, form=form, headers={"Accept": "application/json"})
    return r.status, r.json()


def agent_events(live: Live) -> list[tuple[str, str, str | None, str | None]]:
    with sqlite3.connect(live.crm.workdir / "crm.db") as db:
        rows = db.execute("SELECT kind, extension, queue, reason FROM agent_events ORDER BY id")
        return [tuple(r) for r in rows]


def test_the_board_follows_the_real_pbx(live: Live) -> None:
    ada = live.crm.browser("ada")
    board = wait_for(
        lambda: (p := ada.get("/board").text) and rep_state(p, "103") and p,
        30,
        "the board to list the reps after the resync",
    )
    assert members(board) == ["102", "103"]
    assert rep_state(board, "101") == "available" and rep_state(board, "103") == "available"
    ada.refresh_csrf("/board")

    status, body = act(
        ada, "/board/pause", extension="103", queue="support", paused="1", reason="lunch"
    )
    assert status == 200, body
    page = wait_for(
        lambda: (p := ada.get("/board").text) and rep_state(p, "103") == "paused" and p,
        5,
        "103 paused on the board",
    )
    assert "lunch" in page.split('id="rep-103"', 1)[1].split("</tr>", 1)[0]
    status, body = act(ada, "/board/pause", extension="103", paused="0")
    assert status == 200, body
    wait_for(lambda: rep_state(ada.get("/board").text, "103") == "available", 5, "103 back")

    status, body = act(ada, "/board/membership", extension="103", queue="support", op="remove")
    assert status == 409 and "queues.conf" in body["message"], body

    status, body = act(ada, "/board/membership", extension="101", queue="support", op="add")
    assert status == 200, body
    wait_for(lambda: members(ada.get("/board").text) == ["101", "102", "103"], 5, "101 added")
    status, body = act(ada, "/board/membership", extension="101", queue="support", op="remove")
    assert status == 200, body
    wait_for(lambda: members(ada.get("/board").text) == ["102", "103"], 5, "101 removed")

    async def unregister(lab: Any) -> None:
        lab.sim_cli("pjsip send unregister reg102")

    async def register(lab: Any) -> None:
        lab.sim_cli("pjsip send register reg102")

    live.drive(unregister, idle=False)
    wait_for(lambda: rep_state(ada.get("/board").text, "102") == "offline", 10, "102 offline")
    live.drive(register, idle=False)
    wait_for(lambda: rep_state(ada.get("/board").text, "102") == "available", 20, "102 back")

    stored = wait_for(
        lambda: len(agent_events(live)) >= 6 and agent_events(live), 5, "the agent events stored"
    )
    assert stored[:4] == [
        ("paused", "103", "support", "lunch"),
        ("unpaused", "103", "support", None),
        ("added", "101", "support", None),
        ("removed", "101", "support", None),
    ]
    assert ("unregistered", "102", None, None) in stored[4:]
    assert ("registered", "102", None, None) in stored[4:]
