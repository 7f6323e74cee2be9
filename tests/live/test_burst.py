"""A burst of overlapping calls on the real PBX: twelve callers ring the sales line half a
second apart; eight are answered (by 101 or 102), two give up, two ring out.  Every call
is stored exactly once with the outcome its plan gives, and only 101 and 102 get pops."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from .conftest import Live
from .test_calls import RING_GROUP

CALLERS = [f"+1415555{300 + i:04d}" for i in range(1, 13)]


def plan_of(i: int) -> tuple[str, str | None, dict[str, Any]]:
    """(outcome, who answers, carrier_call options) of the i-th caller (1-based)."""
    if i in (4, 9):
        return "abandoned", None, {"ring_timeout": 60, "abandon_after": 3 + i % 2}
    if i in (6, 11):
        return "missed", None, {"ring_timeout": 40}
    who = "102" if i % 3 == 0 else "101"
    return "answered", who, {"talk": 4 + i % 4}


@pytest.fixture(scope="module")
def burst(live: Live) -> float:
    since = time.time() - 1
    plan: dict[str, str] = {}
    for i, number in enumerate(CALLERS, 1):
        _, who, _ = plan_of(i)
        key = number.lstrip("+")
        plan[f"{key}/101"] = plan[f"{key}/102"] = "ring"
        if who:
            plan[f"{key}/{who}"] = f"answer:{2 + i % 3}:hold"

    async def place(lab: Any) -> None:
        await lab.plan(plan, clear=True)
        for i, number in enumerate(CALLERS, 1):
            await lab.carrier_call(RING_GROUP, number, f"Burst {i:02d}", **plan_of(i)[2])
            await asyncio.sleep(0.5)

    live.drive(place)
    return since


def test_every_call_of_the_burst_is_stored_once_as_planned(live: Live, burst: float) -> None:
    calls = live.wait_calls(len(CALLERS), 60, since=burst, direction="inbound")
    ours = [c for c in calls if c["caller"] in CALLERS]
    assert sorted(c["caller"] for c in ours) == sorted(CALLERS)  # each once, none twice
    for i, number in enumerate(CALLERS, 1):
        outcome, who, _ = plan_of(i)
        call = next(c for c in ours if c["caller"] == number)
        assert (call["outcome"], call["answered_by"]) == (outcome, who), (i, call)
        assert set(call["rang"]) >= {"101", "102"}, (i, call)
        assert not live.obs.popped("carol", call["linkedid"]), i
        assert not live.obs.popped("maria", call["linkedid"]), i
