"""Calls that move between phones on the real PBX: blind and attended transfers, a blind
transfer to an outside number, the support queue answered by its second member or
abandoned, and a directed pickup.

Transfers run at the same time (their callers differ); the queue (``ringinuse=no``: a
ringing member is skipped by the next caller) and the pickup (``*8102`` takes whatever
rings on 102) each run alone.  Expectations come from the plans, not from the CRM."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from .conftest import Live
from .rig import wait_for
from .test_calls import RING_GROUP, assert_pops

QUEUE = "5552000"  # Answer(), then queue "support": 102 then 103, 6 s each
BOB_DID = "5551002"
BLIND, ATTENDED, OUTSIDE = "+14155550131", "+14155550132", "+14155550133"
OUTSIDE_TARGET = "4155550134"
QUEUE_SECOND, QUEUE_ABANDON, PICKUP = "+14155550141", "+14155550142", "+14155550151"


@pytest.fixture(scope="module")
def transfers(live: Live) -> float:
    since = time.time() - 1

    async def place(lab: Any) -> None:
        await lab.plan({
            # 101 answers after 2 s and, 3 s later, transfers blind (REFER) to 103,
            # who answers after 2 s
            "14155550131/101": "answer:2:blindxfer:3:103", "14155550131/102": "ring",
            "14155550131/103": "answer:2:hold",
            # 101 answers after 2 s, 3 s later presses *2 103; 103 answers the consult
            # call after 2 s; 101 hangs up 3 s later, leaving the caller with 103
            "14155550132/101": "answer:2:atxfer:3:103:3", "14155550132/102": "ring",
            "101/103": "answer:2:hold",
            # 102 answers after 2 s and, 3 s later, transfers blind to an outside number
            "14155550133/102": "answer:2:blindxfer:3:" + OUTSIDE_TARGET,
            "14155550133/101": "ring",
            f"out/{OUTSIDE_TARGET}": "answer:2:hold",
        }, clear=True)  # fmt: skip
        await lab.carrier_call(RING_GROUP, BLIND, "Blind Transfer", talk=16)
        await lab.carrier_call(RING_GROUP, ATTENDED, "Attended Transfer", talk=26)
        await lab.carrier_call(RING_GROUP, OUTSIDE, "Out Transfer", talk=16)

    live.drive(place)
    return since


def test_blind_transfer(live: Live, transfers: float) -> None:
    call = live.call_of(BLIND, transfers)
    assert call["answered"] is True and call["outcome"] == "answered"
    assert call["answered_by"] == "101"
    assert call["final_agent"] == "103"
    assert [(t["kind"], t["from"], t["to"]) for t in call["transfers"]] == [
        ("blind", "101", "103")
    ]
    # 2 s ring + 16 s with the caller, whoever they talked to
    assert 12.0 <= call["talk_seconds"] <= 20.0, call["talk_seconds"]
    wait_for(lambda: live.obs.popped("carol", call["linkedid"]), 10, "carol's pop (103 rang)")


def test_attended_transfer(live: Live, transfers: float) -> None:
    call = live.call_of(ATTENDED, transfers)
    assert call["answered"] is True and call["outcome"] == "answered"
    assert call["answered_by"] == "101"
    assert call["final_agent"] == "103"
    assert [(t["kind"], t["from"], t["to"]) for t in call["transfers"]] == [
        ("attended", "101", "103")
    ]


def test_blind_transfer_to_an_outside_number(live: Live, transfers: float) -> None:
    call = live.call_of(OUTSIDE, transfers)
    assert call["answered"] is True and call["answered_by"] == "102"
    assert [(t["kind"], t["from"], t["to"]) for t in call["transfers"]] == [
        ("blind", "102", "+1" + OUTSIDE_TARGET)
    ]
    assert call["final_agent"] != "102", "the call ended with the outside number, not 102"
    assert live.trunk_dials(OUTSIDE_TARGET) == 1


@pytest.fixture(scope="module")
def queue_calls(live: Live, transfers: float) -> float:
    since = time.time() - 1

    async def place(lab: Any) -> None:
        await lab.plan({
            "14155550141/102": "ring", "14155550141/103": "answer:2:hold",
            "14155550142/102": "ring", "14155550142/103": "ring",
        }, clear=True)  # fmt: skip
        # 102 rings 6 s, then 103 rings and answers after 2 s; the caller talks 5 s with
        # her (the queue answers the caller at once, so the caller's clock starts then)
        await lab.carrier_call(QUEUE, QUEUE_SECOND, "Queue Second", talk=13)
        await lab.wait_idle(quiet=1.0)
        # the next caller waits 4 s while 102 rings, then gives up
        await lab.carrier_call(QUEUE, QUEUE_ABANDON, "Queue Quitter", ring_timeout=60,
                               abandon_after=4)  # fmt: skip
        await asyncio.sleep(5)

    live.drive(place)
    return since


def test_queue_answered_by_the_second_member(live: Live, queue_calls: float) -> None:
    call = live.call_of(QUEUE_SECOND, queue_calls)
    assert call["queue"] == "support"
    assert call["did"] == QUEUE
    assert call["answered"] is True and call["outcome"] == "answered"
    assert call["answered_by"] == "103" and call["final_agent"] == "103"
    assert set(call["rang"]) >= {"102", "103"}
    assert 6.5 <= call["ring_seconds"] <= 11.0, call["ring_seconds"]  # 6 s on 102 + 2 s
    assert 3.5 <= call["talk_seconds"] <= 7.5, call["talk_seconds"]
    assert len(call["recording_ids"]) == 1
    assert_pops(live, call["linkedid"], {"102", "103"})


def test_queue_abandoned(live: Live, queue_calls: float) -> None:
    call = live.call_of(QUEUE_ABANDON, queue_calls)
    assert call["queue"] == "support"
    assert call["answered"] is False and call["outcome"] == "abandoned"
    assert call["answered_by"] is None
    assert call["hangup_by"] == "caller"
    assert len(live.callbacks_for(QUEUE_ABANDON, "open")) == 1


@pytest.fixture(scope="module")
def pickup(live: Live, queue_calls: float) -> float:
    since = time.time() - 1

    async def place(lab: Any) -> None:
        await lab.plan({"14155550151/102": "ring"}, clear=True)
        await lab.carrier_call(BOB_DID, PICKUP, "Pick Me", talk=12)
        await asyncio.sleep(3)  # 102 rings; Carol picks the call up from her phone
        await lab.dial_feature("103", "*8102", talk=5)

    live.drive(place)
    return since


def test_directed_pickup(live: Live, pickup: float) -> None:
    call = live.call_of(PICKUP, pickup)
    assert call["answered"] is True and call["outcome"] == "answered"
    assert call["answered_by"] == "103" and call["final_agent"] == "103"
    assert "102" in call["rang"]
    assert 2.0 <= call["ring_seconds"] <= 6.0, call["ring_seconds"]
    wait_for(lambda: live.obs.popped("bob", call["linkedid"]), 10, "bob's pop")
    wait_for(lambda: not live.obs.pop_open("bob", call["linkedid"]), 10, "bob's pop to close")
    assert not live.obs.popped("alice", call["linkedid"])
