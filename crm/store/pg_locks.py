"""Session-level advisory locks on a dedicated PostgreSQL connection: "exactly one
process does this at a time", released by the server itself when the holder dies.

``web.linkmanager`` takes one per PBX link.  The lock lives as long as the connection,
so the connection is watched: if it drops (network, server restart), ``lost`` is set at
once and the holder must stop the work it guards, because another process may already
have taken the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import asyncpg

from .pg_notify import connect

log = logging.getLogger(__name__)

KEY_SQL = "hashtextextended(current_schema() || ':' || $1, 0)"
"""The lock key: a 64-bit hash of the schema and the name (one database can hold
several CRMs in separate schemas, as the tests do)."""


class SessionLock:
    def __init__(
        self, url: str, name: str, *, check_interval: float = 2.0, release_timeout: float = 2.0
    ) -> None:
        self.url = url
        self.name = name
        self.check_interval = check_interval
        self.release_timeout = release_timeout
        """Seconds ``release`` waits for the unlock before closing the connection."""
        self.lost = asyncio.Event()
        self.held = False
        self._conn: asyncpg.Connection | None = None
        self._watch: asyncio.Task[None] | None = None

    async def try_acquire(self) -> bool:
        """True when this process now holds the lock (a connection error is False)."""
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await connect(self.url, f"crm-lock:{self.name}:{os.getpid()}")
                self._conn.add_termination_listener(self._terminated)
            got = bool(
                await self._conn.fetchval(f"SELECT pg_try_advisory_lock({KEY_SQL})", self.name)
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("lock %s: %s", self.name, exc)
            await self._drop()
            return False
        if got:
            self.held = True
            self.lost.clear()
            self._watch = asyncio.create_task(self._watchdog(), name=f"lock-{self.name}")
        return got

    def _terminated(self, _conn: Any) -> None:
        if self.held:
            log.error("lock %s: connection lost; giving the work up", self.name)
        self.held = False
        self.lost.set()

    async def _watchdog(self) -> None:
        """A half-open connection never says it is gone: ask it something now and then."""
        while self.held:
            await asyncio.sleep(self.check_interval)
            conn = self._conn
            try:
                assert conn is not None
                async with asyncio.timeout(self.check_interval * 2):
                    await conn.fetchval("SELECT 1")
            except Exception as exc:
                if self.held:
                    log.error("lock %s: connection not answering (%s); giving up", self.name, exc)
                self.held = False
                self.lost.set()
                await self._drop()
                return

    async def release(self) -> None:
        self.held = False
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
            self._watch = None
        conn = self._conn
        if conn is not None and not conn.is_closed():
            try:
                async with asyncio.timeout(self.release_timeout):
                    await conn.fetchval(f"SELECT pg_advisory_unlock({KEY_SQL})", self.name)
            except Exception as exc:
                # Not known to be released (the connection is busy, or the server slow):
                # end the session, which releases it for certain, rather than wait on.
                log.warning("lock %s: unlock failed (%s); closing its connection",
                            self.name, _text(exc))  # fmt: skip
                await self._end()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()

    async def _end(self) -> None:
        """Close the session, which releases its locks: politely (a busy connection's
        query is cancelled and the server ends the session at once), but in bounded
        time; past that the socket is simply dropped."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                async with asyncio.timeout(self.release_timeout + 1):
                    await conn.close(timeout=self.release_timeout)
            except Exception:
                conn.terminate()

    async def close(self) -> None:
        await self.release()
        await self._end()


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
