"""Click-to-call from a process that does not consume the PBX link.

Two runtimes (real ``open_runtime``: real link managers with their advisory locks, real
LISTEN/NOTIFY fan-out, two event buses) share one PostgreSQL schema; the first consumes the
link to a replay PBX, the rep's click arrives at the second.  The Originate must reach the
PBX exactly once, through the first, and the second must follow the click as it would a
local one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ami_bridge.facts import OriginateResult
from ami_bridge.originate import OriginateRequest
from ami_bridge.replay_pbx import OriginateScript, ReplayPbx
from config.settings import load_settings
from crm.access import Scope
from crm.clicktocall import ClickToCall
from crm.events import Event, EventBus, Subscription
from crm.models import Call, CallFilter, User
from crm.originate_relay import (
    NOBODY,
    ORIGINATE_REQUEST,
    RELAY_KINDS,
    OriginateDesk,
    RelayedLink,
    reply_event,
    request_event,
)
from web.linkmanager import LinkManager
from web.live import Client, LiveHub, Viewer
from web.pages.dial import clicktocall_of
from web.runtime import Runtime, open_runtime

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-22"
CLICK = FIXTURES / "06-click-to-call" / "raw.ami"
SECRET = "crmsecret"
CUSTOMER = "(415) 555-0123"


def settings_for(tmp_path: Path, pg_url: str, pbx: ReplayPbx) -> dict[str, Any]:
    settings = load_settings(env={}, demo=True)
    settings["database"]["url"] = pg_url
    settings["server"]["secret_key"] = "click-relay-test-secret-key-0123456789abcdef"
    settings["server"]["link_retry_seconds"] = 0.2
    settings["recordings"]["directory"] = str(tmp_path / "monitor")
    settings["ami"].update(host="127.0.0.1", port=pbx.port, username="crm", secret=SECRET,
                           backoff_initial=0.05, backoff_max=0.2)  # fmt: skip
    settings["pbx"]["finish_grace"] = 0.05
    return settings


async def until(predicate: Any, what: str, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)
    assert predicate(), what


def manager(rt: Runtime) -> LinkManager:
    return rt.extras["link_manager"]  # type: ignore[no-any-return]


@dataclass
class Pair:
    pbx: ReplayPbx
    holder: Runtime
    other: Runtime
    carol: User
    c2c: ClickToCall  # the other's: the process the rep's browser talks to
    sub: Subscription  # carol's events on the other's bus

    def originates(self) -> list[dict[str, Any]]:
        return [m for m in self.pbx.received if m.get("Action") == "Originate"]

    async def states(self, originate_id: str, until: tuple[str, ...] = ("ended", "failed"),
                     timeout: float = 15.0) -> list[tuple[str, Any]]:  # fmt: skip
        out: list[tuple[str, Any]] = []
        async with asyncio.timeout(timeout):
            while not out or out[-1][0] not in until:
                event = await self.sub.get()
                if event.kind == "click_progress" and event.payload["originate_id"] == originate_id:
                    out.append((event.payload["state"], event.payload["reason"]))
        return out

    async def recorded(self, originate_id: str, timeout: float = 15.0) -> Call:
        async with asyncio.timeout(timeout):
            while True:
                for call in await self.other.store.list_calls(CallFilter(), limit=50):
                    if call.originate_id == originate_id:
                        return call
                await asyncio.sleep(0.05)


@asynccontextmanager
async def pair(tmp_path: Path, pg_url: str, script: OriginateScript) -> AsyncIterator[Pair]:
    async with ReplayPbx(None, speed=0, secret=SECRET) as pbx:
        pbx.script_originate(script)
        settings = settings_for(tmp_path, pg_url, pbx)
        holder = await open_runtime(settings)
        other: Runtime | None = None
        try:
            await until(lambda: "default" in manager(holder).running, "the first holds the link")
            await holder.link.wait_state("connected")  # type: ignore[union-attr]
            other = await open_runtime(settings)
            for rt in (holder, other):
                channel = rt.extras["fanout"].channel
                await asyncio.wait_for(channel.listening.wait(), 10)
            carol = await other.service.create_user("carol", "Carol Chen", "password-1",
                                                    extensions=["103"])  # fmt: skip
            await other.service.create_contact("Dana Diaz", phones=[CUSTOMER])
            c2c = clicktocall_of(other)
            assert c2c is not None
            sub = other.bus.subscribe(user_ids=[carol.id], maxsize=10_000)
            yield Pair(pbx, holder, other, carol, c2c, sub)
        finally:
            if other is not None:
                await other.close()
            await holder.close()


async def test_click_on_the_other_process_is_sent_once_by_the_holder(
    tmp_path: Path, pg_url: str
) -> None:
    async with pair(tmp_path, pg_url, OriginateScript.from_capture(CLICK, "c2c-0001")) as p:
        assert "default" not in manager(p.other).running  # it stands by
        requests = p.other.bus.subscribe(user_ids=NOBODY, maxsize=10_000)
        click = await p.c2c.start(p.carol, CUSTOMER)
        assert click.state == "ringing_you" and not click.duplicate
        assert await p.states(click.originate_id) == [
            ("ringing_you", None),
            ("dialling", None),
            ("connected", None),
            ("ended", None),
        ]
        [sent] = p.originates()
        assert sent["ActionID"] == click.originate_id
        assert sent["Variable"] == f"CRM_CALL_ID={click.originate_id}"
        assert (sent["Channel"], sent["Exten"]) == ("PJSIP/103", "4155550123")
        assert manager(p.holder).desk.sent == 1  # type: ignore[union-attr]
        assert manager(p.other).desk.sent == 0  # type: ignore[union-attr]
        call = await p.recorded(click.originate_id)
        assert call.answered and call.user_id == p.carol.id

        # The request went out as an event for processes only, with what the PBX needs.
        relayed = [e for e in drain(requests) if e.kind in RELAY_KINDS]
        assert {e.kind for e in relayed} == {ORIGINATE_REQUEST, "originate_reply"}
        request = next(e for e in relayed if e.kind == ORIGINATE_REQUEST)
        assert request.user_ids == NOBODY and not request.extensions
        assert request.payload["link"] == "default"
        assert request.payload["request_id"] == click.originate_id
        assert request.payload["request"]["channel"] == "PJSIP/103"

        # Re-delivered (a duplicate NOTIFY), it is not sent again.
        manager(p.holder).desk.on_event(  # type: ignore[union-attr]
            Event(request.kind, request.payload, user_ids=NOBODY, origin="elsewhere")
        )
        await asyncio.sleep(0.2)
        assert len(p.originates()) == 1 and p.pbx.actions["originate"] == 1

        # The SSE hub never forwards these to a browser, not even an admin's (who gets
        # every event targeted at nobody in particular) nor one of "user 0".
        hub = LiveHub(p.other)
        watchers = [hub.connect(Viewer(uid, "admin", frozenset({"103"}), Scope(None), None))
                    for uid in (0, p.carol.id or 0)]  # fmt: skip
        for watcher in watchers:
            drain_client(watcher)
        for event in relayed:
            await hub.handle(event)
        assert all(w.pending() == 0 for w in watchers)


def drain_client(client: Client) -> None:
    while client.pending():
        client._queue.popleft()


def drain(sub: Subscription) -> list[Event]:
    out = []
    while sub.pending():
        out.append(sub.get_nowait())
    return out


async def test_holder_dies_before_answering(tmp_path: Path, pg_url: str) -> None:
    gate = asyncio.Event()  # never set: the PBX never answers the Originate
    async with pair(tmp_path, pg_url, OriginateScript(respond=True, gate=gate)) as p:
        click = await p.c2c.start(p.carol, CUSTOMER)
        await p.pbx.wait_for(lambda: p.pbx.actions["originate"] == 1, timeout=10)
        # The holder dies: first it goes silent on the fan-out (nothing it says reaches
        # anyone any more), then its lock and its PBX connection go.
        await p.holder.extras["fanout"].close()
        await p.holder.close()
        assert await p.states(click.originate_id) == [
            ("ringing_you", None),
            ("failed", "PBX link down"),
        ]
        # The other process took the link over and is connected; nothing was re-sent.
        await until(lambda: "default" in manager(p.other).running, "taken over")
        await p.other.link.wait_state("connected", timeout=10)  # type: ignore[union-attr]
        await p.pbx.wait_for(lambda: p.pbx.logins_ok == 2, timeout=10)
        await asyncio.sleep(0.3)
        assert p.pbx.actions["originate"] == 1
        assert manager(p.other).desk.sent == 0  # type: ignore[union-attr]
        status = p.c2c.status(click.originate_id)
        assert status is not None and status.state == "failed"


# -- the relay on one bus, no database: the edges ---------------------------------------


class FakeLink:
    """A consumed link that answers every Originate at once and counts them."""

    def __init__(self) -> None:
        self.sent: list[OriginateRequest] = []

    @property
    def status(self) -> Any:
        return type("S", (), {"state": "connected"})()

    async def originate(self, req: OriginateRequest, timeout: float | None = None) -> Any:
        self.sent.append(req)
        return OriginateResult(req.action_id, True, 4, "answered", "PJSIP/103-1", "1.1", 0.0)


def request(action_id: str = "crm-1") -> OriginateRequest:
    return OriginateRequest(action_id, "PJSIP/103", "4155550123")


async def test_nobody_consumes_the_link_so_the_click_fails_in_words() -> None:
    bus = EventBus()
    result = await RelayedLink(bus, "east", accept_timeout=0.2).originate(request())
    assert (result.success, result.reason_text) == (False, "PBX link down")


async def test_a_request_waiting_for_a_consumer_is_picked_up_once_on_takeover() -> None:
    bus = EventBus()
    held: dict[str, FakeLink] = {}
    desk = OriginateDesk(bus, held.get, accept_window=5.0)
    desk.start()
    try:
        relayed = asyncio.create_task(RelayedLink(bus, "east", accept_timeout=5.0).originate(
            request()))  # fmt: skip
        await asyncio.sleep(0.05)  # the request is out; nobody consumes "east" yet
        link = held["east"] = FakeLink()
        desk.link_started("east")
        result = await asyncio.wait_for(relayed, 5)
        assert result.success and [r.action_id for r in link.sent] == ["crm-1"]
        desk.link_started("east")  # again (a restart): nothing is sent twice
        bus.publish(Event(ORIGINATE_REQUEST, {"link": "east", "request_id": "crm-1",
                                              "request": {}}, user_ids=NOBODY))  # fmt: skip
        await asyncio.sleep(0.05)
        assert len(link.sent) == 1 and desk.sent == 1
    finally:
        await desk.close()


async def test_a_request_someone_else_accepted_is_never_picked_up() -> None:
    bus = EventBus()
    held: dict[str, FakeLink] = {}
    desk = OriginateDesk(bus, held.get, accept_window=5.0)
    req = request("crm-2")
    desk.on_event(Event(ORIGINATE_REQUEST, request_event(req, "east").payload,
                        user_ids=NOBODY, origin="a"))  # fmt: skip
    accepted = reply_event("crm-2", "east", None)
    desk.on_event(Event(accepted.kind, accepted.payload, user_ids=NOBODY, origin="a"))
    link = held["east"] = FakeLink()
    desk.link_started("east")  # the acceptor died; its Originate may be on the PBX already
    await asyncio.sleep(0.05)
    assert link.sent == [] and desk.sent == 0
    await desk.close()
