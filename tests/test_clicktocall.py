"""Click-to-call end to end below HTTP: the CRM's ClickToCall -> AmiLink -> the replay PBX
over TCP -> the recorded call -> tracker -> ingest -> the rep's progress on the bus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ami_bridge.dialrules import DialRules
from ami_bridge.facts import CallProgress, OriginateResult
from ami_bridge.link import AmiLink, LinkSettings
from ami_bridge.profile import PbxProfile
from ami_bridge.replay_pbx import OriginateScript, ReplayPbx
from ami_bridge.tracker import CallTracker
from crm.clicktocall import (
    NOT_PERMITTED,
    ClickResult,
    ClickToCall,
    ClickToCallError,
    reason_words,
)
from crm.events import Event, EventBus, Subscription
from crm.ingest import Ingest
from crm.models import Call, CallFilter, Contact, User
from crm.policy import LeadPolicy
from crm.services import CrmService
from crm.store import Store, open_store

FIXTURES = Path(__file__).parent / "fixtures" / "asterisk-22"
CLICK = FIXTURES / "06-click-to-call" / "raw.ami"
SECRET = "crmsecret"
CUSTOMER = "(415) 555-0123"  # as a rep sees it on a US contact card
CUSTOMER_E164 = "+14155550123"


class Clock:
    def __init__(self, now: float = 1_795_341_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    pbx: ReplayPbx
    link: AmiLink
    store: Store
    service: CrmService
    bus: EventBus
    c2c: ClickToCall
    carol: User  # extension 103, the rep of the recorded click-to-call
    bob: User  # extension 102
    contact: Contact
    sub: Subscription

    async def states(
        self, originate_id: str, until: tuple[str, ...] = ("ended", "failed"), timeout: float = 3.0
    ) -> list[tuple[str, Any]]:
        """The rep's click_progress states for one click, until it ends or fails."""
        out: list[tuple[str, Any]] = []
        async with asyncio.timeout(timeout):
            while not out or out[-1][0] not in until:
                event = await self.sub.get()
                if event.kind == "click_progress" and event.payload["originate_id"] == originate_id:
                    assert event.user_ids == frozenset({self.carol.id})
                    out.append((event.payload["state"], event.payload["reason"]))
        return out

    def originates(self) -> list[dict[str, Any]]:
        return [m for m in self.pbx.received if m.get("Action") == "Originate"]


def link_settings(pbx: ReplayPbx) -> LinkSettings:
    return LinkSettings(
        host=pbx.host,
        port=pbx.port,
        secret=SECRET,
        backoff_initial=0.02,
        backoff_max=0.1,
        ping_interval=0.5,
        ping_timeout=0.5,
        tick_interval=0.02,
        connect_timeout=1.0,
        login_timeout=1.0,
        resync_timeout=1.0,
    )


@asynccontextmanager
async def world(tmp_path: Path, *, start_link: bool = True, **options: Any) -> AsyncIterator[World]:
    store = await open_store(f"sqlite:///{tmp_path / 'crm.db'}")
    policy = LeadPolicy(own_numbers=("5551000", "5551002", "5552000"))
    service = CrmService(store, policy)
    bus = EventBus()
    ingest = Ingest(store, policy, bus)
    carol = await service.create_user("carol", "Carol Chen", "password-1", extensions=["103"])
    bob = await service.create_user("bob", "Bob Brown", "password-2", extensions=["102"])
    contact = await service.create_contact("Dana Diaz", phones=[CUSTOMER])
    sub = bus.subscribe(maxsize=1000)
    tracker = CallTracker(PbxProfile(finish_grace=0.05))
    try:
        async with ReplayPbx(None, speed=0) as pbx:
            link = AmiLink(link_settings(pbx), tracker, ingest.handle)
            options.setdefault("per_user_per_minute", 10)
            c2c = ClickToCall(service, link, DialRules(), bus, **options)
            try:
                if start_link:
                    await link.start()
                    await link.wait_state("connected")
                yield World(pbx, link, store, service, bus, c2c, carol, bob, contact, sub)
            finally:
                await c2c.aclose()
                await link.stop()
    finally:
        await store.close()


async def recorded_call(w: World, originate_id: str, timeout: float = 3.0) -> Call:
    """The call row the ingest stored for a click (found through its originate_id)."""
    async with asyncio.timeout(timeout):
        while True:
            for call in await w.store.list_calls(CallFilter(), limit=50):
                if call.originate_id == originate_id:
                    return call
            await asyncio.sleep(0.01)


async def audit_ids(w: World) -> list[str]:
    entries = await w.service.list_audit(action="call.click_to_call")
    return [e.detail["originate_id"] for e in entries]


# -- the recorded click-to-call ---------------------------------------------------


async def test_click_rings_the_rep_then_the_customer(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.pbx.script_originate(OriginateScript.from_capture(CLICK, "c2c-0001"))
        first = await w.c2c.start(w.carol, CUSTOMER)
        assert first.state == "ringing_you" and not first.duplicate
        assert first.originate_id.startswith("crm-")
        assert (first.number, first.dial_string, first.extension) == (
            CUSTOMER_E164,
            "4155550123",
            "103",
        )
        states = await w.states(first.originate_id)
        assert states == [
            ("ringing_you", None),
            ("dialling", None),
            ("connected", None),
            ("ended", None),
        ]
        assert w.c2c.status(first.originate_id) == ClickResult(
            first.originate_id, CUSTOMER_E164, "4155550123", "103", "ended"
        )
        [sent] = w.originates()
        assert sent["ActionID"] == first.originate_id
        assert sent["Variable"] == f"CRM_CALL_ID={first.originate_id}"
        assert (sent["Channel"], sent["Exten"], sent["Context"]) == (
            "PJSIP/103",
            "4155550123",
            "from-internal",
        )
        assert sent["Async"] == "true"
        assert sent["CallerID"] == '"Call to 4155550123" <4155550123>'
        call = await recorded_call(w, first.originate_id)
        assert call.answered and call.direction == "outbound"
        assert call.contact_id == w.contact.id and call.user_id == w.carol.id
        assert await audit_ids(w) == [first.originate_id]


async def test_rep_never_answers(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.pbx.script_originate(OriginateScript.failure(reason=3))
        click = await w.c2c.start(w.carol, CUSTOMER)
        assert await w.states(click.originate_id) == [
            ("ringing_you", None),
            ("failed", "your phone did not answer"),
        ]
        assert len(w.originates()) == 1
        call = await recorded_call(w, click.originate_id)
        # "failed", not "no_answer": the customer was never dialled, so did not not-answer
        assert not call.answered and call.outcome == "failed"
        assert call.user_id == w.carol.id


async def test_the_reps_phone_giving_up_is_not_dialling_the_customer(tmp_path: Path) -> None:
    """On a real Asterisk the rep's phone stops ringing (the tracker says "ringing", nobody
    ringing) a moment before the Originate's failure arrives: the rep must not be told
    the customer is being dialled in between (the live suite caught it)."""
    async with world(tmp_path) as w:
        w.pbx.script_originate(OriginateScript.failure(reason=3, delay=0.5))
        click = await w.c2c.start(w.carol, CUSTOMER)
        stopped = CallProgress("1795341999.1", "ringing", "outbound", "103", None, "4155550123",
                               None, (), None, time.time(), originate_id=click.originate_id)
        w.c2c.on_event(Event("call_progress", stopped))
        assert await w.states(click.originate_id) == [
            ("ringing_you", None),
            ("failed", "your phone did not answer"),
        ]


async def test_link_drops_before_the_answer_and_the_call_never_happens(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        gate = asyncio.Event()  # never set: the PBX placed nothing
        w.pbx.script_originate(OriginateScript(respond=True, gate=gate))
        click = await w.c2c.start(w.carol, CUSTOMER)
        await w.pbx.wait_for(lambda: w.pbx.actions["originate"] == 1)
        w.pbx.drop_clients()
        assert await w.states(click.originate_id) == [
            ("ringing_you", None),
            ("failed", "PBX link down"),
        ]
        await w.link.wait_state("connected")
        await w.pbx.wait_for(lambda: w.pbx.logins_ok == 2 and w.pbx.actions["ping"] >= 1)
        assert w.pbx.actions["originate"] == 1  # never re-sent after the reconnect
        assert w.c2c.status(click.originate_id).state == "failed"  # type: ignore[union-attr]


async def test_link_drops_before_the_answer_but_the_call_goes_ahead(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        gate = asyncio.Event()
        script = OriginateScript.from_capture(CLICK, "c2c-0001")
        script.gate = gate
        w.pbx.script_originate(script)
        click = await w.c2c.start(w.carol, CUSTOMER)
        await w.pbx.wait_for(lambda: w.pbx.actions["originate"] == 1)
        w.pbx.drop_clients()
        await w.link.wait_state("connecting", "disconnected")
        await w.link.wait_state("connected")
        gate.set()  # the PBX rings 103 anyway; the new session sees the call
        assert await w.states(click.originate_id, until=("ended",)) == [
            ("ringing_you", None),
            ("failed", "PBX link down"),
            ("ringing_you", None),  # the PBX did place it: 103 rings after all
            ("dialling", None),
            ("connected", None),
            ("ended", None),
        ]
        assert w.pbx.actions["originate"] == 1
        call = await recorded_call(w, click.originate_id)
        assert call.answered and call.contact_id == w.contact.id


# -- one click, one Originate --------------------------------------------------------


async def test_double_click_sends_one_originate(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.pbx.script_originate(OriginateScript.failure(reason=5), times=None)
        a, b = await asyncio.gather(
            w.c2c.start(w.carol, CUSTOMER), w.c2c.start(w.carol, "+1 415 555 0123")
        )
        assert a.originate_id == b.originate_id
        assert sorted([a.duplicate, b.duplicate]) == [False, True]
        assert await w.states(a.originate_id) == [("ringing_you", None), ("failed", "busy")]
        again = await w.c2c.start(w.carol, "4155550123")
        assert again.originate_id == a.originate_id and again.duplicate
        assert (again.state, again.reason) == ("failed", "busy")
        keyed = await w.c2c.start(w.carol, "+442079460958", request_key="form-7")
        retried = await w.c2c.start(w.carol, "+442079460958", request_key="form-7")
        assert retried.originate_id == keyed.originate_id and retried.duplicate
        await w.pbx.wait_for(lambda: w.pbx.actions["originate"] == 2)
        await asyncio.sleep(0.05)
        assert [m["ActionID"] for m in w.originates()] == [a.originate_id, keyed.originate_id]
        assert sorted(await audit_ids(w)) == sorted([a.originate_id, keyed.originate_id])


async def test_same_number_after_the_dedupe_window_is_a_new_call(tmp_path: Path) -> None:
    clock = Clock()
    async with world(tmp_path, clock=clock) as w:
        w.pbx.script_originate(OriginateScript.failure(reason=3), times=None)
        first = await w.c2c.start(w.carol, CUSTOMER)
        clock.now += 6
        second = await w.c2c.start(w.carol, CUSTOMER)
        assert second.originate_id != first.originate_id and not second.duplicate
        await w.pbx.wait_for(lambda: w.pbx.actions["originate"] == 2)


# -- refused clicks: a clear message, nothing dialled ----------------------------------


async def refused(w: World, code: str, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ClickToCallError) as info:
        await w.c2c.start(*args, **kwargs)
    assert info.value.code == code
    return info.value.message


async def test_a_rep_cannot_dial_from_another_reps_extension(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        text = await refused(w, "not_your_extension", w.carol, CUSTOMER, extension="102")
        assert "your own phone" in text
        nobody = User(99, "eve", "Eve", extensions=[])
        assert "no phone extension" in await refused(w, "no_extension", nobody, CUSTOMER)
        gone = User(w.bob.id, "bob", "Bob", extensions=["102"], active=False)
        await refused(w, "inactive", gone, CUSTOMER)
        await asyncio.sleep(0.05)
        assert w.pbx.actions["originate"] == 0 and await audit_ids(w) == []


async def test_numbers_that_do_not_parse_are_refused(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        for bad in ("hello", "12", "", "   ", "+1 415", "4155550123\r\nAction: Logoff"):
            text = await refused(w, "bad_number", w.carol, bad)
            assert text.endswith(".") and "Traceback" not in text
        assert "is not a phone number that can be dialled" in await refused(
            w, "bad_number", w.carol, "call me maybe"
        )
        await asyncio.sleep(0.05)
        assert w.pbx.actions["originate"] == 0 and await audit_ids(w) == []


async def test_blocked_numbers_are_refused(tmp_path: Path) -> None:
    async with world(tmp_path, blocked=["+1 (415) 555-0199", "+1900*"]) as w:
        text = await refused(w, "blocked", w.carol, "415-555-0199")
        assert "blocked" in text
        await refused(w, "blocked", w.carol, "+1 900 555 0123")
        await asyncio.sleep(0.05)
        assert w.pbx.actions["originate"] == 0 and await audit_ids(w) == []
    with pytest.raises(ValueError, match="not a phone number"):
        ClickToCall(w.service, None, DialRules(), EventBus(), blocked=["nonsense"])


async def test_rate_limit_per_user(tmp_path: Path) -> None:
    clock = Clock()
    async with world(tmp_path, per_user_per_minute=2, clock=clock) as w:
        w.pbx.script_originate(OriginateScript.failure(reason=3), times=None)
        await w.c2c.start(w.carol, "+14155550101")
        clock.now += 10
        await w.c2c.start(w.carol, "+14155550102")
        clock.now += 10
        text = await refused(w, "rate_limited", w.carol, "+14155550103")
        assert "at most 2 calls a minute" in text and "try again in 40 s" in text
        await w.c2c.start(w.bob, "+14155550104")  # another rep has a limit of their own
        clock.now += 41
        await w.c2c.start(w.carol, "+14155550105")
        await w.pbx.wait_for(lambda: w.pbx.actions["originate"] == 4)
        dialled = [m["Exten"] for m in w.originates()]
        assert dialled == ["4155550101", "4155550102", "4155550104", "4155550105"]


# -- no PBX link -------------------------------------------------------------------------


async def test_no_link_or_a_down_link_fails_clearly(tmp_path: Path) -> None:
    async with world(tmp_path, start_link=False) as w:
        down = await w.c2c.start(w.carol, CUSTOMER)
        assert (down.state, down.reason) == ("failed", "PBX link down")
        assert await w.states(down.originate_id) == [
            ("ringing_you", None),
            ("failed", "PBX link down"),
        ]
        none = ClickToCall(w.service, None, DialRules(), w.bus)
        result = await none.start(w.carol, "+14155550188")
        assert (result.state, result.reason) == ("failed", "PBX link down")
        assert w.pbx.connections_total == 0
        assert sorted(await audit_ids(w)) == sorted([down.originate_id, result.originate_id])


def test_reasons_in_words() -> None:
    def r(reason: int | None, text: str = "") -> OriginateResult:
        return OriginateResult("x", False, reason, text, None, None, 0.0)

    assert reason_words(r(0)) == "number unreachable"
    assert reason_words(r(1)) == "number unreachable"
    assert reason_words(r(3)) == "your phone did not answer"
    assert reason_words(r(5)) == "busy"
    assert reason_words(r(8)) == "number unreachable"
    assert reason_words(r(None, "PBX link down")) == "PBX link down"
    assert reason_words(r(None, "Permission denied")) == NOT_PERMITTED  # says what to fix
    assert "originate" in NOT_PERMITTED and "permission" in NOT_PERMITTED
    assert reason_words(r(None, "Channel not found")) == (
        "the PBX did not place the call (Channel not found)"
    )


async def test_no_audit_entry_no_call(tmp_path: Path) -> None:
    class BrokenAudit:
        async def click_to_call(self, actor: str, number: str, originate_id: str) -> None:
            raise OSError("disk full")

    async with world(tmp_path) as w:
        c2c = ClickToCall(BrokenAudit(), w.link, DialRules(), w.bus)
        with pytest.raises(OSError):
            await c2c.start(w.carol, CUSTOMER)
        with pytest.raises(OSError):  # the retry is a new attempt, not a "duplicate"
            await c2c.start(w.carol, CUSTOMER)
        await asyncio.sleep(0.05)
        assert w.pbx.actions["originate"] == 0
        await c2c.aclose()
