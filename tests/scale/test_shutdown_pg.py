"""Closing the PostgreSQL parts never hangs: a pool with a connection that is never
given back, and an advisory lock whose connection is busy, both close within their
bound, and the lock is free for the next process afterwards.

(The twelve-minute hang of ``test_holder_dies_before_answering`` under CPU load: a
holder that could not unlock kept its lock and its close waited on.)
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from crm.store import open_store
from crm.store.pg_locks import SessionLock
from crm.store.postgres import PostgresStore


async def _sessions(url: str, app: str) -> int:
    base = url.split("?", 1)[0]
    conn = await asyncpg.connect(base)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app))  # fmt: skip
    finally:
        await conn.close()


async def test_a_pool_with_a_stuck_connection_closes_within_its_bound(pg_url: str) -> None:
    store = await open_store(pg_url)
    assert isinstance(store, PostgresStore)
    taken = asyncio.Event()

    async def stuck() -> None:
        async with store._pool.acquire() as conn:  # a task that never gives it back
            await conn.execute("SET application_name = 'crm-stuck-test'")
            taken.set()
            await asyncio.Event().wait()

    holder = asyncio.create_task(stuck())
    await asyncio.wait_for(taken.wait(), 10)
    assert await _sessions(pg_url, "crm-stuck-test") == 1
    started = time.monotonic()
    await asyncio.wait_for(store.close(timeout=0.5), 10)  # the old close waited for ever
    assert time.monotonic() - started < 3
    # terminated: the server has no session of it left
    for _ in range(50):
        if await _sessions(pg_url, "crm-stuck-test") == 0:
            break
        await asyncio.sleep(0.1)
    assert await _sessions(pg_url, "crm-stuck-test") == 0
    holder.cancel()
    await asyncio.gather(holder, return_exceptions=True)


async def test_a_lock_whose_connection_is_busy_is_still_given_up(pg_url: str) -> None:
    """Releasing while the lock's connection is busy (its watchdog query being
    cancelled, a slow server): the unlock cannot run, so the connection is ended
    (which frees the lock) rather than left open holding it."""
    store = await open_store(pg_url)  # creates the test's schema (part of the lock key)
    await store.close()
    lock = SessionLock(pg_url, "busy-test", check_interval=60, release_timeout=0.5)
    assert await lock.try_acquire()
    conn = lock._conn
    assert conn is not None
    busy = asyncio.create_task(conn.execute("SELECT pg_sleep(30)"))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await asyncio.wait_for(lock.close(), 10)
    assert time.monotonic() - started < 5
    # the next process gets it at once (the old release left it held by this one)
    other = SessionLock(pg_url, "busy-test", check_interval=60)
    try:
        got = False
        for _ in range(30):
            got = await other.try_acquire()
            if got:
                break
            await asyncio.sleep(0.1)
        assert got, "the lock stayed held after close"
    finally:
        await other.close()
        busy.cancel()
        await asyncio.gather(busy, return_exceptions=True)


class FreezingProxy:
    """A TCP proxy to PostgreSQL that can stop forwarding (a network cut with no FIN:
    both sockets stay open, nothing gets through)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.frozen = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            while self.frozen:
                await asyncio.sleep(0.05)
            writer.write(data)
            await writer.drain()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)  # fmt: skip

    async def close(self) -> None:
        for w in self._writers:
            w.close()
        if self._server is not None:
            self._server.close()


async def test_a_lock_on_a_connection_that_stopped_answering_closes_in_time(
    pg_url: str,
) -> None:
    """The unlock on a half-open connection would wait for ever: the close gives up on
    it after ``release_timeout`` and ends the session instead."""
    from urllib.parse import urlsplit, urlunsplit

    store = await open_store(pg_url)
    await store.close()
    parts = urlsplit(pg_url)
    proxy = FreezingProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    user = f"{parts.username}@" if parts.username else ""
    via_proxy = urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))
    lock = SessionLock(via_proxy, "frozen-test", check_interval=60, release_timeout=0.5)
    try:
        assert await lock.try_acquire()
        proxy.frozen = True
        started = time.monotonic()
        await asyncio.wait_for(lock.close(), 10)  # the old unlock had no time limit
        assert time.monotonic() - started < 5
        assert not lock.held
    finally:
        await proxy.close()
