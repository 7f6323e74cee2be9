"""Click-to-call on the real PBX, from the web page and from the API: the rep's own
handset rings first, the customer only once the rep has answered, exactly once; a rep who
does not pick up gets a failed click and nobody outside is dialled.

Each click runs alone: the handset's plan here is for any caller (the Originate's caller
ID is the CRM's choice, not the test's)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest

from .conftest import Live
from .rig import Http, wait_for

WEB_NUMBER, API_NUMBER, UNANSWERED_NUMBER = "4155550161", "4155550162", "4155550163"
ORDER = ["ringing_you", "dialling", "connected", "ended"]


def click_states(live: Live, originate_id: str, final: str) -> list[str]:
    seen = wait_for(
        lambda: (s := [c["state"] for c in live.obs.clicks("alice", originate_id)])
        and s[-1] == final and s,
        40, f"the click to reach {final}",
    )  # fmt: skip
    return [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]


@dataclass
class Legs:
    """When the PBX first had a channel to the rep's phone and to the trunk (seconds after
    the click), and the most trunk channels up at once."""

    rep: float | None = None
    trunk: float | None = None
    most_trunk: int = 0


def placed(live: Live, plan: dict[str, str], click: Any, watch: float = 0) -> tuple[Any, Legs]:
    """Set the plan, make the click (a blocking HTTP request), and for ``watch`` seconds
    read the PBX's own channel list to see which phone it rang when."""
    legs = Legs()

    async def scenario(lab: Any) -> Any:
        await lab.plan(plan, clear=True)
        t0 = time.monotonic()
        result = await asyncio.to_thread(click)
        while time.monotonic() - t0 < watch:
            chans = await asyncio.to_thread(lab.cli, "core show channels concise")
            now = time.monotonic() - t0
            trunk = chans.count("PJSIP/trunk-")
            if legs.rep is None and "PJSIP/101-" in chans:
                legs.rep = now
            if legs.trunk is None and trunk:
                legs.trunk = now
            legs.most_trunk = max(legs.most_trunk, trunk)
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)
        return result

    return live.drive(scenario), legs


@pytest.fixture(scope="module")
def alice(live: Live) -> Http:
    return live.crm.browser("alice")


def test_click_from_the_web_rings_the_rep_then_the_customer_once(live: Live,
                                                                 alice: Http) -> None:  # fmt: skip
    since = time.time() - 1
    # Alice's handset answers after 3 s; the customer answers 2 s after it rings
    plan = {"any/101": "answer:3:hold", f"out/{WEB_NUMBER}": "answer:2:hangup:4"}
    r, legs = placed(live, plan, lambda: alice.post(
        "/dial", json_body={"number": "+1 (415) 555-0161"}, headers={"Accept": "application/json"}
    ), watch=8)  # fmt: skip
    assert r.status == 202, r.text
    # the PBX rang Alice's phone first and the trunk only once she had answered, once
    assert legs.rep is not None and legs.trunk is not None, legs
    assert legs.trunk - legs.rep >= 2.0, legs  # she answers 3 s after her phone rings
    assert legs.most_trunk == 1, legs
    click = r.json()
    assert click["state"] == "ringing_you" and click["extension"] == "101"
    assert click_states(live, click["originate_id"], "ended") == ORDER
    call = live.call_of("+1" + WEB_NUMBER, since)
    assert call["direction"] == "outbound" and call["caller"] == "101"
    assert call["originate_id"] == click["originate_id"]
    assert call["answered"] is True and call["outcome"] == "answered"
    assert 2.5 <= call["talk_seconds"] <= 6.5, call["talk_seconds"]
    assert live.trunk_dials(WEB_NUMBER) == 1  # the customer was dialled exactly once


def test_click_through_the_api(live: Live) -> None:
    since = time.time() - 1
    api = Http(live.crm.base, live.crm.rep_token)
    plan = {"any/101": "answer:2:hold", f"out/{API_NUMBER}": "answer:2:hangup:3"}
    r, _ = placed(live, plan,
                  lambda: api.post("/api/v1/calls", json_body={"number": API_NUMBER}))
    assert r.status == 202, r.text
    click = r.json()
    assert click["state"] == "ringing_you" and click["extension"] == "101"
    assert click_states(live, click["originate_id"], "ended") == ORDER
    call = live.call_of("+1" + API_NUMBER, since)
    assert call["originate_id"] == click["originate_id"]
    assert call["answered"] is True and call["outcome"] == "answered"
    assert live.trunk_dials(API_NUMBER) == 1


def test_the_rep_does_not_answer(live: Live, alice: Http) -> None:
    since = time.time() - 1
    plan = {"any/101": "ring"}  # the click rings 101 for [dial] ring_timeout_s = 10 s
    r, legs = placed(live, plan, lambda: alice.post(
        "/dial", json_body={"number": UNANSWERED_NUMBER}, headers={"Accept": "application/json"}
    ), watch=12)  # fmt: skip
    assert legs.rep is not None and legs.trunk is None, legs  # her phone rang, nothing else
    assert r.status == 202, r.text
    click = r.json()
    states = click_states(live, click["originate_id"], "failed")
    assert states == ["ringing_you", "failed"], states
    last = live.obs.clicks("alice", click["originate_id"])[-1]
    assert last["reason"] == "your phone did not answer"
    assert live.trunk_dials(UNANSWERED_NUMBER) == 0  # nobody outside was dialled
    time.sleep(3)
    for call in live.calls(number="+1" + UNANSWERED_NUMBER, since=since):
        assert call["outcome"] == "failed", call  # not "no_answer": the customer never rang
    assert live.contact_of("+1" + UNANSWERED_NUMBER) is None  # and no lead for them
