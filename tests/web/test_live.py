"""The live layer: ``/events`` (SSE) and the hub behind it.  Screen pops reach only the
reps whose phones ring, quickly, with the caller's details; they close when somebody else
answers or the call ends; lists get finished calls and callbacks by the visibility rules;
a slow or vanished browser never holds anything up."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from ami_bridge.capture import read_capture
from ami_bridge.facts import CallProgress
from ami_bridge.replay import replay_facts
from config.settings import load_settings, pbx_profile
from crm.events import Event
from crm.ingest import LiveCall
from tests.crm.factories import inbound
from tests.paths import SCENARIOS
from web.app import create_app
from web.live import LIVE_HUB, Client, LiveHub, Viewer, jsonable
from web.render import make_env
from web.runtime import Runtime, open_runtime

from .conftest import PASSWORD, People, login, web_settings

LINKEDID = "1795341294.0"
NOW = time.time()


def progress(
    state: str = "ringing",
    ringing: tuple[str, ...] = ("101",),
    answered_by: str | None = None,
    *,
    linkedid: str = LINKEDID,
    caller: str = "+14155550199",
    direction: str = "inbound",
    callee: str = "5551000",
) -> CallProgress:
    return CallProgress(
        linkedid=linkedid,
        state=state,
        direction=direction,  # type: ignore[arg-type]
        caller=caller,
        caller_name="John Smith",
        callee=callee,
        did="5551000",
        ringing=ringing,
        answered_by=answered_by,
        at=time.time(),
    )


class Stream:
    """One browser's ``/events`` connection."""

    def __init__(self, resp: ClientResponse) -> None:
        self.resp = resp
        self.comments: list[str] = []

    async def next(self, timeout: float = 2.0) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            while True:
                line = (await self.resp.content.readline()).decode()
                if not line:
                    raise EOFError("stream closed")
                if line.startswith("data: "):
                    return json.loads(line[6:])
                if line.startswith(":"):
                    self.comments.append(line.strip())

        return await asyncio.wait_for(read(), timeout)

    async def next_of(self, kind: str, timeout: float = 2.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.next(max(0.01, deadline - time.monotonic()))
            if msg["kind"] == kind:
                return msg["data"]

    async def nothing(self, kind: str = "call_progress", wait: float = 0.3) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await self.next_of(kind, wait)


async def open_stream(aiohttp_client: Any, server: Any, username: str) -> Stream:
    client: TestClient = await aiohttp_client(server)
    await login(client, username)
    resp = await client.get("/events")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return Stream(resp)


@pytest.fixture
async def streams(
    aiohttp_client: Any, aiohttp_server: Any, rt: Runtime, people: People
) -> AsyncIterator[Any]:
    """Opens ``/events`` as a user, each in their own browser, all on one web process."""
    server = await aiohttp_server(create_app(rt))

    async def make(username: str) -> Stream:
        return await open_stream(aiohttp_client, server, username)

    yield make


async def ring(rt: Runtime, *facts: CallProgress) -> None:
    for fact in facts:
        await rt.ingest.progress(fact)


async def ring_apart(rt: Runtime, *facts: CallProgress) -> None:
    """As a PBX sends a call's changes, apart: each one handled by the hub before the next
    arrives (changes that arrive together go out as one message, the last)."""
    hub = rt.extras["live_hub"]
    for fact in facts:
        before = hub.handled
        await rt.ingest.progress(fact)
        for _ in range(200):
            if hub.handled > before:
                break
            await asyncio.sleep(0.005)


# -- who gets the pop --------------------------------------------------------------------
async def test_only_the_rep_whose_phone_rings_gets_the_pop(rt: Runtime, streams: Any) -> None:
    alice, bob = await streams("alice"), await streams("bob")
    await ring(rt, progress(ringing=("101",)))
    pop = await alice.next_of("call_progress")
    assert pop["pop"] == "ringing" and pop["me"] == "ringing" and pop["linkedid"] == LINKEDID
    await bob.nothing()
    # the ring group reaches 102 too: now both
    await ring(rt, progress(ringing=("101", "102")))
    assert (await alice.next_of("call_progress"))["pop"] == "ringing"
    assert (await bob.next_of("call_progress"))["pop"] == "ringing"
    # 101 answers: bob's pop closes, alice's turns into "on call"
    await ring(rt, progress(ringing=(), answered_by=None), progress("answered", (), "101"))
    last_bob: dict[str, Any] = {}
    with pytest.raises(asyncio.TimeoutError):
        while True:
            last_bob = await bob.next_of("call_progress", 0.3)
    assert last_bob["pop"] is None and last_bob["listed"] is False
    answered: dict[str, Any] = {}
    while answered.get("state") != "answered":
        answered = await alice.next_of("call_progress")
    assert answered["pop"] == "on_call" and answered["answered_by"] == "101"
    # the call ends: alice's pop closes; bob hears nothing more about it
    await ring(rt, progress("ended", (), "101"))
    ended = await alice.next_of("call_progress")
    assert ended["state"] == "ended" and ended["pop"] is None
    await bob.nothing()


async def test_a_pop_arrives_within_200_ms_with_the_callers_details(
    rt: Runtime, people: People, streams: Any
) -> None:
    s = rt.service
    grace = await s.create_contact(
        "Grace Hopper", "Navy Computing", "", ["+14155550199"], owner_id=people.bob.id
    )
    await rt.ingest.record(inbound("+14155550199", answered_by="102", at=NOW - 3600))
    await rt.ingest.record(inbound("+14155550199", answered_by=None, at=NOW - 600))
    bob = await streams("bob")  # his customer rings his phone (another rep's: test_pop_privacy)
    started = time.perf_counter()
    await ring(rt, progress(ringing=("102",), linkedid="pop.1"))
    pop = await bob.next_of("call_progress")
    elapsed = time.perf_counter() - started
    assert elapsed < 0.2, f"the pop took {elapsed * 1000:.0f} ms"
    contact = pop["contact"]
    assert contact["id"] == grace.id and contact["name"] == "Grace Hopper"
    assert contact["company"] == "Navy Computing" and contact["owner"] == "Bob Rep"
    assert contact["is_lead"] is False
    assert pop["last_call"]["outcome"] == "missed" and pop["last_call"]["at"] == NOW - 600
    assert pop["open_callback"]["missed_count"] == 1 and pop["open_callback"]["owner"] == "Bob Rep"
    assert pop["number"] == "+14155550199" and pop["number_display"] == "(415) 555-0199"
    assert pop["can_open"] is True
    assert contact["url"] == f"/contacts/{grace.id}"  # the row the browser builds links it
    assert "row_html" not in pop  # built by the browser (web/static/live.js), not sent
    assert isinstance(pop["at"], float) and pop["at_iso"].endswith("Z")


async def test_an_unknown_caller_and_an_internal_call(rt: Runtime, streams: Any) -> None:
    alice, bob = await streams("alice"), await streams("bob")
    await ring(rt, progress(ringing=("101",), caller="+14155550777", linkedid="u.1"))
    pop = await alice.next_of("call_progress")
    assert pop["contact"] is None and pop["last_call"] is None and pop["details"] is True
    # alice calls bob: bob gets the pop, alice sees the call listed without a pop
    internal = progress(
        ringing=("102",), caller="101", direction="internal", callee="102", linkedid="i.1"
    )
    await ring(rt, internal)
    got = await bob.next_of("call_progress")
    assert got["pop"] == "ringing" and got["caller_user"] == "Alice Rep"
    mine = await alice.next_of("call_progress")
    while mine["linkedid"] != "i.1":
        mine = await alice.next_of("call_progress")
    assert mine["me"] == "caller" and mine["pop"] is None and mine["listed"] is True


async def test_managers_see_their_teams_live_calls_and_admins_all(
    rt: Runtime, people: People, streams: Any
) -> None:
    team = await rt.service.create_team("East", "test")
    for user in (people.manager, people.alice):
        await rt.service.set_team(user.id or 0, team.id, "test")
    maria, otto, admin = await streams("maria"), await streams("otto"), await streams("admin")
    await ring(rt, progress(ringing=("101",)))
    seen = await maria.next_of("call_progress")
    assert seen["listed"] is True and seen["pop"] is None
    assert (await admin.next_of("call_progress"))["listed"] is True
    await otto.nothing()
    await ring(rt, progress(ringing=("102",), linkedid="b.1", caller="+14155550100"))
    assert (await admin.next_of("call_progress"))["linkedid"] == "b.1"
    await maria.nothing()


async def test_a_new_connection_gets_the_calls_already_ringing(rt: Runtime, streams: Any) -> None:
    await streams("admin")  # the hub runs
    await ring(rt, progress(ringing=("101", "102")))
    await asyncio.sleep(0.05)
    alice = await streams("alice")  # e.g. she opened another page while it rings
    pop = await alice.next_of("call_progress")
    assert pop["linkedid"] == LINKEDID and pop["pop"] == "ringing"


async def test_finished_calls_and_callbacks_reach_who_may_see_them(
    rt: Runtime, people: People, streams: Any
) -> None:
    await rt.service.create_contact(
        "Grace Hopper", "", "", ["+14155550199"], owner_id=people.alice.id
    )
    alice, bob, admin = await streams("alice"), await streams("bob"), await streams("admin")
    result = await rt.ingest.record(inbound("+14155550199", answered_by=None, at=NOW - 60))
    got = await alice.next_of("call_recorded")
    assert got["call"]["id"] == result.call.id and got["call"]["outcome"] == "missed"
    assert f'data-call="{result.call.id}"' in got["row_html"] and "Grace Hopper" in got["row_html"]
    task = await alice.next_of("callback_opened")
    assert task["task"]["owner_id"] == people.alice.id and "data-task" in task["row_html"]
    assert (await admin.next_of("call_recorded"))["call"]["id"] == result.call.id
    await bob.nothing("call_recorded")
    await bob.nothing("callback_opened", 0.1)
    # bob's own call reaches bob, not alice
    mine = await rt.ingest.record(inbound("+14155550300", answered_by="102", at=NOW - 30))
    assert (await bob.next_of("call_recorded"))["call"]["id"] == mine.call.id
    await alice.nothing("call_recorded")


async def test_click_progress_goes_to_the_clicking_rep_only(
    rt: Runtime, people: People, streams: Any
) -> None:
    alice, bob = await streams("alice"), await streams("bob")
    payload = {
        "originate_id": "c2c-1",
        "state": "ringing_you",
        "reason": None,
        "number": "+14155550123",
        "extension": "101",
        "at": time.time(),
    }
    rt.bus.publish(Event("click_progress", payload, user_ids=frozenset({people.alice.id or 0})))
    assert (await alice.next_of("click_progress"))["originate_id"] == "c2c-1"
    await bob.nothing("click_progress")


# -- the stream itself -------------------------------------------------------------------
async def test_heartbeat_and_unsubscribe_on_disconnect(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = web_settings(tmp_path, server={"sse_heartbeat": 0.2})
    rt = await open_runtime(settings, with_link=False)
    try:
        await rt.service.create_user("alice", "Alice Rep", PASSWORD, "rep", ["101"])
        app = create_app(rt)
        client: TestClient = await aiohttp_client(app)
        await login(client, "alice")
        hub = app[LIVE_HUB]
        resp = await client.get("/events")
        stream = Stream(resp)
        with pytest.raises(asyncio.TimeoutError):
            await stream.next(0.7)
        assert ": ping" in stream.comments
        assert len(hub.clients) == 1
        resp.close()
        for _ in range(40):
            if not hub.clients:
                break
            await asyncio.sleep(0.1)
        assert not hub.clients
        # the hub's own bus subscription stays, one per web process
        assert rt.bus.subscriber_count >= 1
    finally:
        await rt.close()


async def test_events_need_a_login(client: TestClient) -> None:
    resp = await client.get("/events", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login")


async def test_a_slow_browser_never_blocks_the_ingest(rt: Runtime, people: People) -> None:
    hub = LiveHub(rt)
    await hub.start()
    try:
        assert people.alice.id is not None
        viewer = await hub.viewer_for(people.alice)
        client = hub.connect(viewer)  # never read
        started = time.perf_counter()
        for i in range(600):
            await rt.ingest.progress(progress(ringing=("101",), linkedid=f"flood.{i}"))
        assert time.perf_counter() - started < 5
        for _ in range(100):
            if hub.handled >= 600:
                break
            await asyncio.sleep(0.02)
        assert client.pending() <= client.maxsize and client.dropped > 0
    finally:
        await hub.close()


async def _drained(client: Client) -> list[dict[str, Any]]:
    """Every ``call_progress`` a connection got until it goes quiet."""
    out: list[dict[str, Any]] = []
    while lines := await client.wait(0.3):
        out += [m["data"] for m in map(json.loads, lines) if m["kind"] == "call_progress"]
    return out


async def test_changes_that_arrive_together_go_out_as_one_message(
    rt: Runtime, people: People
) -> None:
    """A call's changes that reach the hub together (read from the PBX at once, or while
    the hub was busy) go to each browser as one message: the last state, with the row as
    it now reads.  No call is lost, and the end of a call is never folded away."""
    hub = LiveHub(rt, make_env(rt.settings))
    await hub.start()
    try:
        alice = hub.connect(await hub.viewer_for(people.alice))  # 101
        admin = hub.connect(await hub.viewer_for(people.admin))
        calls = [f"together.{i}" for i in range(20)]
        for lid in calls:  # published in one go: rings 101, then 101 and 102, answered
            for fact in (
                progress(ringing=("101",), linkedid=lid),
                progress(ringing=("101", "102"), linkedid=lid),
                progress("answered", ringing=(), answered_by="101", linkedid=lid),
            ):
                rt.bus.publish(Event("call_progress", LiveCall(fact, None, None, "none")))
        got_alice, got_admin = await _drained(alice), await _drained(admin)
        assert sorted(d["linkedid"] for d in got_alice) == sorted(calls)  # once each
        assert sorted(d["linkedid"] for d in got_admin) == sorted(calls)
        for data in got_alice:
            assert (data["state"], data["me"], data["pop"]) == ("answered", "answered", "on_call")
            assert data["rung"] == ["101", "102"]  # who was rung is kept from every change
            assert data["listed"] and "row_html" not in data
        assert all(d["state"] == "answered" and d["listed"] for d in got_admin)
        assert len(hub.calls) == 20
        # a call that rang and ended at once still pops (then closes), and leaves no
        # pop and no row behind
        for fact in (progress(ringing=("101",), linkedid="brief"),
                     progress("ended", ringing=(), linkedid="brief")):  # fmt: skip
            rt.bus.publish(Event("call_progress", LiveCall(fact, None, None, "none")))
        # and the ends of the twenty arrive together with a last change each
        for lid in calls:
            for fact in (progress("answered", ringing=(), answered_by="101", linkedid=lid),
                         progress("ended", ringing=(), linkedid=lid)):  # fmt: skip
                rt.bus.publish(Event("call_progress", LiveCall(fact, None, None, "none")))
        ended = await _drained(alice)
        assert sorted(d["linkedid"] for d in ended if d["state"] == "ended") == sorted(
            [*calls, "brief"]
        )
        assert all(not d["listed"] and d["pop"] is None for d in ended if d["state"] == "ended")
        brief = [(d["state"], d["pop"]) for d in ended if d["linkedid"] == "brief"]
        assert brief == [("ringing", "ringing"), ("ended", None)]
        assert hub.calls == {}
        assert hub.live_calls_for(await hub.viewer_for(people.alice)) == []
    finally:
        await hub.close()


async def test_a_ring_that_arrives_with_its_answer_still_pops_for_every_rep_rung(
    rt: Runtime, people: People
) -> None:
    """Folding changes that arrive together never folds a rep's pop away: the ring group
    rang 101 and 102 and 101 answered, all before the hub got to the call; bob (102)
    still gets the pop (then its close), alice gets one message, the call on her
    phone; a call that rang and was answered, then ended, pops for alice too; and a
    ring group that stopped ringing before bob answered still pops for alice."""
    hub = LiveHub(rt, make_env(rt.settings))
    await hub.start()
    try:
        alice = hub.connect(await hub.viewer_for(people.alice))  # 101
        bob = hub.connect(await hub.viewer_for(people.bob))  # 102
        for fact in (progress(ringing=("101", "102"), linkedid="group"),
                     progress("answered", ringing=(), answered_by="101", linkedid="group"),
                     progress(ringing=("101", "102"), linkedid="short"),
                     progress("answered", ringing=(), answered_by="101", linkedid="short"),
                     progress("ended", ringing=(), linkedid="short"),
                     # the benchmark's ring group: both ring, then neither, bob answers
                     progress(ringing=("101",), linkedid="hunt"),
                     progress(ringing=("101", "102"), linkedid="hunt"),
                     progress(ringing=("101",), linkedid="hunt"),
                     progress(ringing=(), linkedid="hunt"),
                     progress("answered", ringing=(), answered_by="102",
                              linkedid="hunt")):  # fmt: skip
            rt.bus.publish(Event("call_progress", LiveCall(fact, None, None, "none")))
        got_alice, got_bob = await _drained(alice), await _drained(bob)
        seen_alice = [(d["linkedid"], d["state"], d["pop"]) for d in got_alice]
        seen_bob = [(d["linkedid"], d["state"], d["pop"], d["listed"]) for d in got_bob]
        assert [x for x in seen_alice if x[0] == "group"] == [("group", "answered", "on_call")]
        assert [x for x in seen_alice if x[0] == "short"] == [
            ("short", "answered", "on_call"),
            ("short", "ended", None),
        ]
        assert [x for x in seen_bob if x[0] == "group"] == [
            ("group", "ringing", "ringing", True),
            ("group", "answered", None, False),
        ]
        assert [x for x in seen_bob if x[0] == "short"] == [
            ("short", "ringing", "ringing", True),
            ("short", "ended", None, False),
        ]
        assert [x for x in seen_alice if x[0] == "hunt"] == [
            ("hunt", "ringing", "ringing"),  # rung, nobody answered yet: the pop shows
            ("hunt", "answered", None),
        ]
        assert [x[:3] for x in seen_bob if x[0] == "hunt"] == [("hunt", "answered", "on_call")]
        assert list(hub.calls) == ["group", "hunt"]
    finally:
        await hub.close()


async def test_calls_finished_together_read_their_contacts_at_once(
    rt: Runtime, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of finished calls reaches the hub at once: their contacts are read in one
    query, and each row still names its own contact."""
    names = [f"Customer {i}" for i in range(5)]
    ids = [
        (await rt.service.create_contact(name, "", "", [f"+1415555020{i}"])).id
        for i, name in enumerate(names)
    ]
    hub = LiveHub(rt, make_env(rt.settings))
    await hub.start()
    reads: list[list[int]] = []
    read_many = rt.store.contacts_by_ids

    async def counted(ids: Any) -> Any:
        reads.append(list(ids))
        return await read_many(ids)

    monkeypatch.setattr(rt.store, "contacts_by_ids", counted)
    try:
        admin = hub.connect(await hub.viewer_for(people.admin))
        hub.connect(await hub.viewer_for(people.alice))  # (the hub has read the users)
        recs = [inbound(f"+1415555020{i}", at=NOW - 60 + i) for i in range(5)]
        await rt.ingest.record_many(recs)
        rows: dict[str, str] = {}
        while len(rows) < 5 and (lines := await admin.wait(1.0)):
            for msg in map(json.loads, lines):
                if msg["kind"] == "call_recorded":
                    rows[msg["data"]["call"]["caller"]] = msg["data"]["row_html"]
        for i, name in enumerate(names):
            assert name in rows[f"+1415555020{i}"]
        assert len(reads) == 1 and sorted(reads[0]) == sorted(ids)
    finally:
        await hub.close()


def test_payloads_are_plain_json() -> None:
    fact = progress()
    data = jsonable(Event("x", fact))
    assert json.loads(json.dumps(data))["payload"]["ringing"] == ["101"]
    assert jsonable({"s": {"b", "a"}, "t": (1, 2)}) == {"s": ["a", "b"], "t": [1, 2]}
    assert jsonable(object()).startswith("<object")


async def test_client_queue_drops_the_oldest() -> None:
    from crm.access import Scope

    client = Client(Viewer(1, "rep", frozenset({"101"}), Scope(frozenset({1})), None), maxsize=3)
    for i in range(5):
        client.put("n", i)
    got = [json.loads(m)["data"] for m in await client.wait(0.01)]
    assert got == [2, 3, 4] and client.dropped == 2


async def test_home_page_lists_live_calls_on_load(
    client: TestClient, rt: Runtime, people: People
) -> None:
    await login(client, "alice")
    await ring(rt, progress(ringing=("101", "102")))
    await asyncio.sleep(0.05)
    html = await (await client.get("/")).text()
    assert f'data-linkedid="{LINKEDID}"' in html and 'id="live-count">1<' in html
    await ring(rt, progress(ringing=("102",), linkedid="other.1", caller="+14155550100"))
    await ring(rt, progress("answered", (), "102", linkedid="other.1", caller="+14155550100"))
    await asyncio.sleep(0.05)
    html = await (await client.get("/")).text()
    assert 'data-linkedid="other.1"' not in html


async def test_a_slow_lookup_sends_the_pop_first_and_the_details_after(
    rt: Runtime, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rt.service.create_contact("Grace Hopper", "Navy Computing", "", ["+14155550199"])
    hub = LiveHub(rt, info_budget=0.02)
    real = hub.details._fetch_info

    async def slow(*args: Any) -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return await real(*args)

    monkeypatch.setattr(hub.details, "_fetch_info", slow)
    await hub.start()
    try:
        client = hub.connect(await hub.viewer_for(people.alice))
        started = time.perf_counter()
        await rt.ingest.progress(progress(ringing=("101",)))
        first = [json.loads(m)["data"] for m in await client.wait(1.0)]
        assert time.perf_counter() - started < 0.2
        assert first[0]["pop"] == "ringing" and first[0]["details"] is False
        # known to the ingest, but whether alice may see it waits for the details
        assert first[0]["contact"]["pending"] is True and first[0]["contact"]["name"] == ""
        await rt.ingest.progress(progress(ringing=("101", "102")))  # no second wait
        later: list[dict[str, Any]] = []
        while not any(m["details"] for m in later):
            later += [json.loads(m)["data"] for m in await client.wait(1.0)]
        assert time.perf_counter() - started < 0.9
        assert later[-1]["contact"]["company"] == "Navy Computing"  # shared: she may
        assert later[-1]["contact"]["name"] == "Grace Hopper"
    finally:
        await hub.close()


async def _seen(stream: Stream, linkedid: str, wait: float = 0.5) -> list[tuple[Any, Any]]:
    """(``me``, ``pop``) of every word the stream got about a call until it goes quiet."""
    out: list[tuple[Any, Any]] = []
    with pytest.raises(asyncio.TimeoutError):
        while True:
            data = await stream.next_of("call_progress", wait)
            if data["linkedid"] == linkedid:
                out.append((data["me"], data["pop"]))
    return out


async def test_a_blind_transfer_pops_on_the_targets_screen(
    rt: Runtime, people: People, streams: Any
) -> None:
    """Recorded on Asterisk 22: the caller reaches 102 (Bob), who transfers blind to 103
    (Carol).  Carol's pop rings while her phone does and turns into "on call" when she
    answers; Bob's pop closes when the call leaves him (he still lists it); Alice, never
    rung, hears nothing."""
    await rt.service.create_user("carol", "Carol Rep", PASSWORD, "rep", ["103"])
    path = next(s for s in SCENARIOS if s.name.endswith("17-blind-transfer")) / "events.jsonl"
    facts = replay_facts(read_capture(path), pbx_profile(load_settings(env={})))
    live = [f for f in facts if isinstance(f, CallProgress)]
    assert live[-1].state == "ended"
    alice, bob, carol = await streams("alice"), await streams("bob"), await streams("carol")
    await ring_apart(rt, *live[:-1])
    linkedid = live[0].linkedid
    seen_bob, seen_carol = await _seen(bob, linkedid), await _seen(carol, linkedid)
    assert ("ringing", "ringing") in seen_carol
    assert seen_carol[-1] == ("answered", "on_call")
    assert seen_carol.index(("ringing", "ringing")) < seen_carol.index(("answered", "on_call"))
    assert ("answered", "on_call") in seen_bob
    assert seen_bob[-1] == ("transferred", None)
    took = seen_bob.index(("answered", "on_call"))
    after = seen_bob[took:]
    assert not [s for s in after if s[1] == "ringing"], "bob is never rung again"
    await alice.nothing()
    await ring(rt, live[-1])
    assert (await carol.next_of("call_progress"))["pop"] is None
