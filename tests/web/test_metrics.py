"""``GET /metrics`` after real traffic, and who may read it.

The replay PBX plays a recorded inbound call over TCP to the running product: the link
reads it, the ingest writes it, the rep whose phone rang gets the screen pop over SSE.
Then Prometheus scrapes and every figure says what happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ami_bridge.replay_pbx import ReplayPbx
from tests.paths import ASTERISK22
from web.app import create_app
from web.metrics import is_local
from web.runtime import Runtime, open_runtime, start_link

from .conftest import PASSWORD, login, web_settings
from .test_live import Stream, open_stream

INBOUND = ASTERISK22 / "01-inbound-answered" / "events.jsonl"
SECRET = "metrics-test"


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by its name and labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
async def live(aiohttp_client: Any, aiohttp_server: Any,
               tmp_path: Path) -> AsyncIterator[tuple[Runtime, ReplayPbx, Any]]:  # fmt: skip
    # At ten times real speed: a real PBX sends the ring and the answer seconds apart (at
    # speed 0 they arrive in one loop turn, and the hub sends only the answered state).
    pbx = ReplayPbx(INBOUND, speed=10, paused=True, secret=SECRET)
    await pbx.start()
    settings = web_settings(
        tmp_path,
        ami={"host": "127.0.0.1", "port": pbx.port, "username": "crm", "secret": SECRET},
        pbx={"finish_grace": 0.05},
    )
    rt = await open_runtime(settings, with_link=False)
    try:
        await rt.service.create_user("alice", "Alice Rep", PASSWORD, "rep", ["101"])
        await rt.service.create_user("admin", "Ada Admin", PASSWORD, "admin")
        await start_link(rt).wait_state("connected")
        server = await aiohttp_server(create_app(rt))
        yield rt, pbx, server
    finally:
        await rt.close()
        await pbx.close()


async def test_metrics_after_a_real_call(aiohttp_client: Any,
                                         live: tuple[Runtime, ReplayPbx, Any]) -> None:  # fmt: skip
    rt, pbx, server = live
    alice: Stream = await open_stream(aiohttp_client, server, "alice")
    await alice.next_of("link_status")
    pbx.resume()
    pop = await alice.next_of("call_progress", timeout=5)
    assert pop["pop"] == "ringing"
    await pbx.wait_done(timeout=5)
    recorded = await alice.next_of("call_recorded", timeout=5)
    assert recorded["call"]["answered_by"] == "101"

    scraper: TestClient = await aiohttp_client(server)
    resp = await scraper.get("/metrics")  # from this machine: no token needed
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await resp.text()
    assert SECRET not in text
    m = scrape(text)
    link = (("link", "default"),)
    assert m[("crm_link_up", link)] == 1
    assert m[("crm_link_state", (("link", "default"), ("state", "connected")))] == 1
    assert m[("crm_link_state", (("link", "default"), ("state", "disconnected")))] == 0
    assert rt.link is not None
    events = rt.link.status.events_total
    assert events > 30  # the whole capture and the resync went over the wire
    assert m[("crm_link_events_total", link)] == events
    assert m[("crm_link_reconnects_total", link)] == 0
    assert m[("crm_link_backlog", link)] == 0
    assert m[("crm_link_backlog_max", link)] == 100000
    assert m[("crm_link_backlog_full", link)] == 0
    assert m[("crm_link_behind", link)] == 0
    assert m[("crm_link_merged_updates_total", link)] == 0
    assert m[("crm_link_tracker_restarts_total", link)] == 0  # no tracker process here
    assert m[("crm_calls_written_total", ())] == 1
    assert m[("crm_calls_held", ())] == 0
    assert m[("crm_sse_clients", ())] == 1
    # one pop (alice's phone rang once), measured from reading DialBegin to writing it
    assert m[("crm_screen_pop_latency_seconds_count", ())] == 1
    latency = m[("crm_screen_pop_latency_seconds_sum", ())]
    assert 0 < latency < 5
    assert m[("crm_screen_pop_latency_seconds_bucket", (("le", "10.0"),))] == 1

    # the PBX drops the connection: the link comes back, the scrape counts the reconnect
    pbx.drop_clients()
    await asyncio.sleep(0.05)
    await rt.link.wait_state("connected", timeout=10)
    m = scrape(await (await scraper.get("/metrics")).text())
    assert m[("crm_link_reconnects_total", link)] == 1
    assert m[("crm_calls_written_total", ())] == 1  # the resync wrote nothing twice


async def test_who_may_read_the_metrics(client: TestClient, rt: Runtime) -> None:
    admin = await rt.service.create_user("admin", "Ada Admin", PASSWORD, "admin")
    rep = await rt.service.create_user("alice", "Alice Rep", PASSWORD, "rep", ["101"])
    assert admin.id is not None and rep.id is not None
    admin_token = await rt.service.create_api_token(admin.id, "prometheus", "admin")
    rep_token = await rt.service.create_api_token(rep.id, "sync", "admin")
    outside = {"X-Forwarded-For": "203.0.113.9"}  # relayed by a proxy: not this machine

    assert (await client.get("/metrics")).status == 200  # this machine
    resp = await client.get("/metrics", headers=outside)
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
    assert "crm_" not in await resp.text()
    bad = await client.get("/metrics", headers={**outside, "Authorization": "Bearer nope"})
    assert bad.status == 401
    resp = await client.get("/metrics", headers={**outside, "Authorization": f"Bearer {rep_token}"})
    assert resp.status == 403 and "crm_" not in await resp.text()
    as_admin = {**outside, "Authorization": f"Bearer {admin_token}"}
    resp = await client.get("/metrics", headers=as_admin)
    assert resp.status == 200 and "crm_calls_written_total" in await resp.text()
    # a browser session from outside, even the admin's, is not a token
    await login(client, "admin")
    assert (await client.get("/metrics", headers=outside)).status == 403
    # a token even from this machine, when the settings say so
    rt.settings["metrics"]["loopback"] = False
    client.session.cookie_jar.clear()
    assert (await client.get("/metrics")).status == 401
    rt.settings["metrics"]["enabled"] = False
    assert (await client.get("/metrics",
                             headers={"Authorization": f"Bearer {admin_token}"})).status == 404


def test_only_loopback_without_a_proxy_is_local() -> None:
    assert is_local("127.0.0.1", False) and is_local("::1", False)
    assert not is_local("127.0.0.1", True)  # a proxy on this machine relays outsiders
    assert not is_local("10.0.0.5", False) and not is_local("192.0.2.1", False)
    assert not is_local(None, False) and not is_local("garbage", False)



async def test_every_link_the_process_consumes_is_listed(client: TestClient, rt: Runtime) -> None:
    """With ``[[pbx_links]]`` (the link manager), one series per link this process runs;
    links it stands by for are not its to report."""
    from types import SimpleNamespace

    from ami_bridge.link import AmiLink, LinkSettings
    from crm.holding import HoldingStatus
    from tests.test_link import RecordingTracker

    east = AmiLink(LinkSettings(host="10.0.1.5", queue_max=500), RecordingTracker())
    west = AmiLink(LinkSettings(host="10.0.2.5"), RecordingTracker())
    idle = SimpleNamespace(status=HoldingStatus(held=0, held_since=None, last_error=None,
                                                retries=0, written_late=0, lost=0,
                                                live_dropped=0))  # fmt: skip
    rt.extras["link_manager"] = SimpleNamespace(running={
        "east": SimpleNamespace(link=east, sink=idle),
        "west": SimpleNamespace(link=west, sink=idle)})  # fmt: skip
    m = scrape(await (await client.get("/metrics")).text())
    assert m[("crm_link_backlog_max", (("link", "east"),))] == 500
    assert m[("crm_link_backlog_max", (("link", "west"),))] == 100000
    assert m[("crm_link_up", (("link", "east"),))] == 0
    assert m[("crm_link_state", (("link", "west"), ("state", "disconnected")))] == 1
    health = await (await client.get("/healthz")).json()
    assert health["backlog_max"] == 100500 and health["ok"] is True


async def test_events_another_process_never_got_are_counted(
    client: TestClient, rt: Runtime
) -> None:
    """Several web processes: an event lost between them (a listener reconnecting) is a
    pop some rep never saw, so the operator must be able to see that it happened."""
    from crm.events import Event, EventBus
    from crm.fanout import Fanout
    from tests.fanout_wire import Wire

    wire = Wire()
    other = Fanout(EventBus(), wire.channel())
    mine = Fanout(rt.bus, wire.channel())
    await other.start()
    await mine.start()
    rt.extras["fanout"] = mine
    try:
        await asyncio.sleep(0)
        wire.lose = lambda text: '"9.2"' in text
        for i in (1, 2, 3):
            other.bus.publish(Event("note", {"call": f"9.{i}"}))
        await other.drain()
        m = scrape(await (await client.get("/metrics")).text())
        assert m[("crm_fanout_events_total", (("outcome", "received"),))] == 2
        assert m[("crm_fanout_events_total", (("outcome", "missed"),))] == 1
        assert m[("crm_fanout_events_total", (("outcome", "sent"),))] == 0
    finally:
        await mine.close()
        await other.close()


def test_pops_written_together_scrape_as_prometheus_would_count_them_one_by_one() -> None:
    """The hub hands the metrics the pops of one write at once (hundreds sharing their
    event's time): the histogram scraped is the one ``prometheus_client`` would give
    for the same pops observed one at a time."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from web.metrics import POP_BUCKETS, Metrics

    batches = [([100.0] * 250 + [99.8] * 3, 100.004), ([90.0, 99.0, 99.5], 100.0), ([101.0], 100.0)]
    metrics = Metrics()
    registry = CollectorRegistry()
    reference = Histogram("crm_screen_pop_latency_seconds", "", buckets=POP_BUCKETS,
                          registry=registry)  # fmt: skip
    for received, now in batches:
        metrics.observe_pops(received, now)
        for at in received:
            reference.observe(max(0.0, now - at))
    ours = scrape(generate_latest(metrics.registry).decode())
    theirs = scrape(generate_latest(registry).decode())
    keys = [k for k in theirs if k[0].startswith("crm_screen_pop_latency_seconds_")
            and not k[0].endswith("_created")]  # fmt: skip
    assert len(keys) == len(POP_BUCKETS) + 3  # the buckets, +Inf, count and sum
    for key in keys:
        assert ours[key] == pytest.approx(theirs[key]), key
    assert ours[("crm_screen_pop_latency_seconds_count", ())] == 257
