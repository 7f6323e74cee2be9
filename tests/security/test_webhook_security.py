"""Outgoing webhooks, the security side: the secret stays out of the log, the signature
covers the timestamp and the delivery id (a receiver refuses replays), a target without a
secret is a configuration error, and hooks never reach internal addresses (SSRF) unless
the admin allows it, not even through a redirect."""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from crm.errors import InvalidInput
from tests.crm import factories
from tests.web.test_webhooks import Receiver, receiver_factory, sending
from web.runtime import Runtime
from web.webhooks import (
    TOLERANCE,
    ForbiddenTarget,
    GuardedResolver,
    Options,
    Target,
    WebhookConfigError,
    forbidden_address,
    load_targets,
    start_webhooks,
    verify,
)

__all__ = ["receiver_factory"]  # the fixture, imported for these tests
SECRET = "whsec-Do-Not-Log-8c2f"


def strict() -> Options:
    """The defaults a real install runs with: no internal targets."""
    return Options(timeout=2.0, max_attempts=2, backoff_initial=0.01, backoff_max=0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the secret is not logged ------------------------------------------------------------------
async def test_no_webhook_secret_in_the_log_on_errors(
    rt: Runtime, receiver_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    failing = await receiver_factory(lambda n: 500)
    dead = f"http://127.0.0.1:{free_port()}/hook?token={SECRET}"
    with_credentials = f"http://hook:{SECRET}@127.0.0.1:{free_port()}/hook"
    wanted = frozenset({"call.ended"})
    async with sending(rt, Target(failing.url, SECRET, wanted), Target(dead, SECRET, wanted),
                       Target(with_credentials, SECRET, wanted)) as sender:  # fmt: skip
        await rt.ingest.record(factories.inbound("+14155550144", answered_by="101"))
        await failing.wait(lambda: sum(w.failed for w in sender.workers) == 3)
    # a broken entry in the settings is reported, by its URL
    rt.settings["webhooks"] = {"targets": [
        {"url": "https://hooks.example/x", "secret": SECRET, "events": ["call.exploded"]},
    ]}  # fmt: skip
    await load_targets(rt)
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "webhooks" in caplog.text and "https://hooks.example/x" in caplog.text
    assert "127.0.0.1" in caplog.text  # the URLs are named...
    assert SECRET not in logged  # ...never the secret, in the entry, the query or the userinfo
    assert SECRET not in repr(Target(failing.url, SECRET))


# -- signature and replay ------------------------------------------------------------------------
async def test_the_signature_covers_timestamp_and_delivery_id(
    rt: Runtime, receiver_factory: Any
) -> None:
    rec: Receiver = await receiver_factory()
    async with sending(rt, Target(rec.url, SECRET, frozenset({"call.ended"}))):
        await rt.ingest.record(factories.inbound("+14155550155", answered_by="101"))
        await rec.wait(lambda: len(rec.delivered()) == 1)
    [(headers, body, _)] = rec.hits
    assert verify(SECRET, headers, body)  # the documented receiver check accepts it
    assert not verify("another-secret", headers, body)
    assert not verify(SECRET, headers, body + b" ")
    sent = int(headers["X-CRM-Timestamp"])
    # a replay later than the tolerance is refused, even with the signature intact
    assert not verify(SECRET, headers, body, now=sent + TOLERANCE + 1)
    assert verify(SECRET, headers, body, now=sent + TOLERANCE - 1)
    # timestamp and delivery id cannot be swapped for fresh ones
    fresh = {**headers, "X-CRM-Timestamp": str(int(time.time()) + 60)}
    assert not verify(SECRET, fresh, body)
    other = {**headers, "X-CRM-Delivery": "00000000-0000-0000-0000-000000000000"}
    assert not verify(SECRET, other, body)
    assert not verify(SECRET, {}, body)


# -- an empty secret -----------------------------------------------------------------------------
async def test_a_target_without_a_secret_is_a_configuration_error(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    rt.settings["webhooks"] = {"targets": [{"url": "https://hooks.example/a", "secret": ""}]}
    with pytest.raises(WebhookConfigError, match="no secret"):
        await load_targets(rt)
    caplog.set_level(logging.ERROR)
    await start_webhooks(rt)  # returns: nothing is sent unsigned
    assert "webhooks not started" in caplog.text and "hooks.example/a" in caplog.text
    with pytest.raises(InvalidInput, match="needs a secret"):
        await rt.service.put_setting(
            "webhooks", {"targets": [{"url": "https://hooks.example/b", "secret": " "}]}, "admin"
        )
    assert await rt.service.get_setting("webhooks") == {}


# -- SSRF ---------------------------------------------------------------------------------------
def test_internal_addresses_are_recognised() -> None:
    for address in ("127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254",
                    "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "100.64.0.1",
                    "224.0.0.1", "not-an-ip"):  # fmt: skip
        assert forbidden_address(address), address
    for address in ("93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"):
        assert not forbidden_address(address), address


async def test_every_resolved_address_is_checked() -> None:
    class Inner:
        def __init__(self, addresses: list[str]) -> None:
            self.addresses = addresses

        async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[Any]:
            return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET,
                     "proto": 0, "flags": 0} for a in self.addresses]  # fmt: skip

        async def close(self) -> None:
            pass

    ok = GuardedResolver(Inner(["93.184.216.34"]))  # type: ignore[arg-type]
    assert [r["host"] for r in await ok.resolve("hooks.example", 443)] == ["93.184.216.34"]
    mixed = GuardedResolver(Inner(["93.184.216.34", "10.0.0.5"]))  # type: ignore[arg-type]
    with pytest.raises(ForbiddenTarget, match=r"10\.0\.0\.5"):
        await mixed.resolve("rebind.example", 443)


async def test_hooks_do_not_reach_loopback_unless_allowed(
    rt: Runtime, receiver_factory: Any
) -> None:
    rec: Receiver = await receiver_factory()
    by_name = rec.url.replace("127.0.0.1", "localhost")  # resolved, then refused
    wanted = frozenset({"call.ended"})
    async with sending(rt, Target(rec.url, SECRET, wanted), Target(by_name, SECRET, wanted),
                       opts=strict()) as sender:  # fmt: skip
        await rt.ingest.record(factories.inbound("+14155550166", answered_by="101"))
        await rec.wait(lambda: sum(w.failed for w in sender.workers) == 2)
    assert rec.hits == []
    # the admin's setting allows a receiver on the LAN
    rt.settings["webhooks"] = {"allow_private_targets": True}
    _, opts = await load_targets(rt)
    assert opts.allow_private is True
    async with sending(rt, Target(rec.url, SECRET, wanted), opts=replace(strict(),
                                                                         allow_private=True)):
        await rt.ingest.record(factories.inbound("+14155550167", answered_by="101"))
        await rec.wait(lambda: len(rec.delivered()) == 1)


async def test_redirects_are_not_followed(rt: Runtime, aiohttp_server: Any) -> None:
    """An allowed receiver answering 307 to an internal URL does not get us there."""
    reached: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        reached.append(request.path)
        if request.path == "/hook":
            raise web.HTTPTemporaryRedirect("/internal-admin")
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/internal-admin", hook)
    server = await aiohttp_server(app)
    async with sending(rt, Target(str(server.make_url("/hook")), SECRET,
                                  frozenset({"call.ended"}))) as sender:  # fmt: skip
        await rt.ingest.record(factories.inbound("+14155550177", answered_by="101"))
        await Receiver("").wait(lambda: sender.workers[0].failed == 1)
    assert reached == ["/hook"]
