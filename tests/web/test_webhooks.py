"""Outgoing webhooks against a real local HTTP receiver: what is sent for which call, the
signature a receiver can check, retries after a 500 that deliver exactly once, and a dead
target that holds up neither the CRM nor the other targets."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from ami_bridge.facts import CallProgress
from tests.crm import factories
from web.runtime import Runtime
from web.webhooks import Options, Target, WebhookSender, load_targets, start_webhooks

SECRET = "s3cret-for-tests"


@dataclass
class Receiver:
    url: str
    hits: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    answer: Callable[[int], int] = lambda n: 200
    """Status to answer for the n-th request (0-based)."""

    def delivered(self) -> list[dict[str, Any]]:
        """Bodies of the requests answered 2xx, one per delivery id."""
        seen: dict[str, dict[str, Any]] = {}
        for headers, body, status in self.hits:
            if 200 <= status < 300:
                seen.setdefault(headers["X-CRM-Delivery"], json.loads(body))
        return list(seen.values())

    async def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)


@pytest.fixture
async def receiver_factory(aiohttp_server: Any) -> Any:
    async def make(answer: Callable[[int], int] = lambda n: 200) -> Receiver:
        rec = Receiver("")
        rec.answer = answer

        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            status = rec.answer(len(rec.hits))
            rec.hits.append((dict(request.headers), body, status))
            return web.Response(status=status)

        app = web.Application()
        app.router.add_post("/hook", hook)
        server = await aiohttp_server(app)
        rec.url = str(server.make_url("/hook"))
        return rec

    return make


# the receivers listen on loopback: allowed explicitly (a real install refuses it)
FAST = Options(timeout=2.0, max_attempts=4, backoff_initial=0.01, backoff_max=0.05,
               allow_private=True)  # fmt: skip


@contextlib.asynccontextmanager
async def sending(rt: Runtime, *targets: Target,
                  opts: Options = FAST) -> AsyncIterator[WebhookSender]:  # fmt: skip
    sender = WebhookSender(rt.bus, list(targets), opts)
    task = asyncio.create_task(sender.run())
    async with asyncio.timeout(5):
        while not sender.workers:
            await asyncio.sleep(0.005)
    try:
        yield sender
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def ringing(linkedid: str, *exts: str) -> CallProgress:
    return CallProgress(linkedid, "ringing", "inbound", "+14155550199", None, "5551000",
                        "5551000", tuple(exts), None, factories.T0)  # fmt: skip


async def test_a_missed_call_sends_signed_ringing_ended_missed_and_lead_hooks(
    rt: Runtime, receiver_factory: Any
) -> None:
    rec = await receiver_factory()
    async with sending(rt, Target(rec.url, SECRET)):
        await rt.ingest.progress(ringing("L1", "101"))
        await rt.ingest.progress(ringing("L1", "101", "102"))  # the ring widens: no new hook
        await rt.ingest.record(factories.inbound("+14155550199", answered_by=None,
                                                 linkedid="L1"))  # fmt: skip
        await rec.wait(lambda: len(rec.delivered()) == 4)
    events = [b["event"] for b in rec.delivered()]
    assert events == ["call.ringing", "call.ended", "call.missed", "lead.created"]
    for headers, body, _ in rec.hits:
        signed = f"{headers['X-CRM-Timestamp']}.{headers['X-CRM-Delivery']}.".encode() + body
        expected = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-CRM-Signature"], expected)
        assert headers["X-CRM-Event"] == json.loads(body)["event"]
        assert headers["X-CRM-Timestamp"].isdigit()
    ended = rec.delivered()[1]["data"]["call"]
    assert (ended["linkedid"], ended["outcome"], ended["direction"]) == ("L1", "missed", "inbound")
    lead = rec.delivered()[3]["data"]["contact"]
    assert lead["phones"][0]["e164"] == "+14155550199" and lead["lead"]["status"] == "new"


async def test_an_answered_call_is_not_missed_and_a_replay_is_not_announced_twice(
    rt: Runtime, receiver_factory: Any
) -> None:
    rec = await receiver_factory()
    record = factories.inbound("+14155550111", answered_by="101", linkedid="L2")
    async with sending(rt, Target(rec.url, SECRET, frozenset({"call.ended", "call.missed"}))):
        await rt.ingest.record(record)
        await rt.ingest.record(record)  # a resync delivers the same call again
        await rec.wait(lambda: len(rec.delivered()) >= 1)
        await asyncio.sleep(0.1)  # give a wrong second hook the chance to arrive
    assert [b["event"] for b in rec.delivered()] == ["call.ended"]


async def test_a_500_is_retried_with_the_same_delivery_id_and_delivered_once(
    rt: Runtime, receiver_factory: Any
) -> None:
    rec = await receiver_factory(lambda n: 500 if n == 0 else 200)
    async with sending(rt, Target(rec.url, SECRET, frozenset({"call.ended"}))):
        await rt.ingest.record(factories.inbound("+14155550122", answered_by="101"))
        await rec.wait(lambda: len(rec.delivered()) == 1)
    assert [status for _, _, status in rec.hits] == [500, 200]
    first, second = (h for h, _, _ in rec.hits)
    assert first["X-CRM-Delivery"] == second["X-CRM-Delivery"]
    assert (first["X-CRM-Attempt"], second["X-CRM-Attempt"]) == ("1", "2")


async def test_a_dead_target_blocks_neither_ingest_nor_the_other_targets(
    rt: Runtime, receiver_factory: Any
) -> None:
    dead = await receiver_factory(lambda n: 503)
    good = await receiver_factory()
    opts = Options(timeout=2.0, max_attempts=1000, backoff_initial=0.05, backoff_max=0.05,
                   queue_size=5, allow_private=True)  # fmt: skip
    wanted = frozenset({"call.ended"})
    async with sending(rt, Target(dead.url, SECRET, wanted), Target(good.url, SECRET, wanted),
                       opts=opts) as sender:  # fmt: skip
        for i in range(20):
            await rt.ingest.record(factories.inbound(f"+1415555{i:04d}", answered_by="101",
                                                     at=factories.T0 + i))  # fmt: skip
        await good.wait(lambda: len(good.delivered()) == 20)
        dead_worker = next(w for w in sender.workers if w.target.url == dead.url)
        assert dead_worker.dropped >= 20 - 5 - 1  # its queue stayed bounded
    assert dead.delivered() == []


async def test_a_4xx_is_not_retried(rt: Runtime, receiver_factory: Any) -> None:
    rec = await receiver_factory(lambda n: 410)
    async with sending(rt, Target(rec.url, SECRET, frozenset({"call.ended"}))) as sender:
        await rt.ingest.record(factories.inbound("+14155550133", answered_by="101"))
        await rec.wait(lambda: sender.workers[0].failed == 1)
    assert len(rec.hits) == 1


async def test_targets_come_from_settings_and_the_stored_admin_setting(rt: Runtime) -> None:
    rt.settings["webhooks"] = {
        "max_attempts": 3,
        "targets": [
            {"url": "https://hooks.example/a", "secret": "a", "events": ["call.missed"]},
            {"url": "ftp://nope", "secret": "x"},
            {"url": "https://hooks.example/b", "secret": "b", "events": ["call.exploded"]},
        ],
    }
    await rt.service.put_setting(
        "webhooks",
        {"targets": [{"url": "https://hooks.example/c", "secret": "c"}], "timeout": 2.5},
        "admin",
    )
    targets, opts = await load_targets(rt)
    assert [t.url for t in targets] == ["https://hooks.example/a", "https://hooks.example/c"]
    assert targets[0].events == frozenset({"call.missed"})
    assert targets[1].wants("lead.created")
    assert (opts.max_attempts, opts.timeout) == (3, 2.5)


async def test_start_webhooks_without_targets_returns_at_once(rt: Runtime) -> None:
    async with asyncio.timeout(5):
        await start_webhooks(rt)


async def test_a_lead_made_through_the_api_is_announced(
    rt: Runtime, receiver_factory: Any, client: Any, people: Any
) -> None:
    rec = await receiver_factory()
    token = await rt.service.create_api_token(people.alice.id, "crm sync", "admin")
    async with sending(rt, Target(rec.url, SECRET, frozenset({"lead.created"}))):
        resp = await client.post(
            "/api/v1/contacts",
            json={"name": "Ivy Inbound", "lead_status": "new"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status == 201
        await rec.wait(lambda: len(rec.delivered()) == 1)
    [hook] = rec.delivered()
    assert hook["event"] == "lead.created" and hook["data"]["via"] == "manual"
    assert hook["data"]["contact"]["name"] == "Ivy Inbound"
