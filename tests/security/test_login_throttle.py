"""Guessing passwords is slowed down per (username, address) with growing delays, never
by locking the account for everybody (ASVS 2.2.1); behind the reverse proxy the client's
address comes from ``X-Forwarded-For``, believed only from the configured proxies."""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestClient

from tests.web.conftest import PASSWORD, People, csrf_of
from web.runtime import Runtime
from web.security import LoginLimiter, client_address, trusted_networks


async def _attempt(c: TestClient, username: str, password: str,
                   forwarded: str | None = None) -> aiohttp.ClientResponse:  # fmt: skip
    token = await csrf_of(c)
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return await c.post("/login", data={"username": username, "password": password,
                                        "_csrf": token, "next": "/"},
                        headers=headers, allow_redirects=False)  # fmt: skip


def test_delays_grow_with_each_failure_and_are_capped() -> None:
    lim = LoginLimiter(attempts=5, window=900, delay=5, max_delay=60)
    t = 1000.0
    for _ in range(4):
        lim.failed("alice", "203.0.113.5", t)
    assert lim.retry_after("alice", "203.0.113.5", t) == 0  # a few typos are free
    waits = []
    for _ in range(6):
        lim.failed("alice", "203.0.113.5", t)
        waits.append(lim.retry_after("alice", "203.0.113.5", t))
    assert waits == [5, 10, 20, 40, 60, 60]
    assert lim.retry_after("alice", "198.51.100.7", t) == 0  # another address: not slowed
    assert lim.retry_after("ALICE", "203.0.113.5", t + 59) > 0
    assert lim.retry_after("alice", "203.0.113.5", t + 60) == 0  # a delay, not a lock
    assert lim.retry_after("alice", "203.0.113.5", t + 60 + 900) == 0
    lim.failed("alice", "203.0.113.5", t + 2000)  # long after: the count started over
    assert lim.retry_after("alice", "203.0.113.5", t + 2000) == 0
    lim.succeeded("alice", "203.0.113.5")
    assert lim.retry_after("alice", "203.0.113.5", t + 2000) == 0


def test_the_client_address_through_trusted_proxies_only() -> None:
    proxies = trusted_networks(["127.0.0.1", "10.0.0.0/8"])
    # a trusted proxy: the rightmost address it did not add itself
    assert client_address("127.0.0.1", ["203.0.113.5"], proxies) == "203.0.113.5"
    assert client_address("10.1.2.3", ["198.51.100.1, 203.0.113.5, 10.9.9.9"],
                          proxies) == "203.0.113.5"  # fmt: skip
    assert client_address("127.0.0.1", ["1.1.1.1", "203.0.113.5"], proxies) == "203.0.113.5"
    # the client cannot choose its address: what it wrote left of the proxy's entry is ignored
    assert client_address("127.0.0.1", ["6.6.6.6, 203.0.113.5"], proxies) == "203.0.113.5"
    # not a trusted peer: the header is ignored altogether
    assert client_address("203.0.113.9", ["6.6.6.6"], proxies) == "203.0.113.9"
    assert client_address("203.0.113.9", ["6.6.6.6"], ()) == "203.0.113.9"
    # garbage or nothing in the header: the proxy itself
    assert client_address("127.0.0.1", ["not-an-ip"], proxies) == "127.0.0.1"
    assert client_address("127.0.0.1", [], proxies) == "127.0.0.1"
    assert client_address("::1", ["2001:db8::5"], trusted_networks(["::1"])) == "2001:db8::5"


async def test_behind_the_proxy_one_guesser_does_not_lock_out_everyone(
    client: TestClient, rt: Runtime, people: People
) -> None:
    """Every browser comes through the proxy at 127.0.0.1: a guesser at 203.0.113.5 is
    slowed down; alice at 198.51.100.7 logs in, and so does bob."""
    rt.settings["server"]["trusted_proxies"] = ["127.0.0.1"]
    for _ in range(rt.limiter.attempts):
        assert (await _attempt(client, "alice", "wrong", "203.0.113.5")).status == 401
    assert (await _attempt(client, "alice", PASSWORD, "203.0.113.5")).status == 429
    assert (await _attempt(client, "alice", PASSWORD, "198.51.100.7")).status == 302
    client.session.cookie_jar.clear()
    assert (await _attempt(client, "bob", PASSWORD, "203.0.113.5")).status == 302


async def test_without_a_trusted_proxy_a_forged_header_changes_nothing(
    client: TestClient, rt: Runtime, people: People
) -> None:
    """The guesser writes a new X-Forwarded-For on every try: still one address."""
    rt.settings["server"]["trusted_proxies"] = []
    for i in range(rt.limiter.attempts):
        assert (await _attempt(client, "alice", "wrong", f"203.0.113.{i + 1}")).status == 401
    assert (await _attempt(client, "alice", PASSWORD, "198.51.100.99")).status == 429


async def test_the_session_row_records_the_client_address(
    client: TestClient, rt: Runtime, people: People
) -> None:
    rt.settings["server"]["trusted_proxies"] = ["127.0.0.1"]
    assert (await _attempt(client, "alice", PASSWORD, "198.51.100.7")).status == 302
    assert people.alice.id is not None
    [row] = await rt.store.list_web_sessions(people.alice.id)
    assert row.address == "198.51.100.7"
