"""PostgreSQL LISTEN/NOTIFY as a message channel between the web processes of one CRM.

``crm.fanout`` hands it text (a JSON event) and gets text back; everything
PostgreSQL-specific lives here:

* one channel per database schema (the tests run many CRMs in one database);
* NOTIFY payloads are limited to 8000 bytes, so a bigger message is kept in the
  ``event_spill`` table and only ``@<id>`` is notified; receivers read it back by id
  (rows older than a minute are deleted by senders);
* the listener has its own connection (LISTEN ties up a session) and reconnects with
  backoff when it drops; messages sent meanwhile are lost to this process, which is
  logged (the browsers recover on their next page load).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from .postgres import split_url

log = logging.getLogger(__name__)

NOTIFY_LIMIT = 7900
"""Bytes we notify inline (PostgreSQL refuses payloads of 8000 bytes and more)."""
SPILL_TTL = 60.0


def channel_name(schema: str | None) -> str:
    """``crm_events`` plus a short hash of the schema (channel names are per database)."""
    tag = hashlib.sha1((schema or "public").encode()).hexdigest()[:12]
    return f"crm_events_{tag}"


async def connect(url: str, application_name: str) -> asyncpg.Connection:
    """A dedicated connection to ``url`` (our ``?schema=`` honoured as search_path)."""
    dsn, schema = split_url(url)
    settings = {"application_name": application_name}
    if schema:
        settings["search_path"] = schema
    return await asyncpg.connect(dsn, server_settings=settings, timeout=10)


class PgChannel:
    """Send and receive text messages over LISTEN/NOTIFY."""

    def __init__(self, url: str, *, reconnect_max: float = 5.0) -> None:
        self.url = url
        self.channel = channel_name(split_url(url)[1])
        self.reconnect_max = reconnect_max
        self.sent = 0
        self.statements = 0
        """Round trips taken to send (a burst should take few)."""
        self.spilled = 0
        self.received = 0
        self.reconnects = 0
        self._send_conn: asyncpg.Connection | None = None
        self._last_cleanup = 0.0
        self.listening = asyncio.Event()
        """Set while the listener is connected (tests wait for it before sending)."""

    # -- sending -----------------------------------------------------------------------
    async def _sender(self) -> asyncpg.Connection:
        conn = self._send_conn
        if conn is None or conn.is_closed():
            conn = self._send_conn = await connect(self.url, "crm-fanout-send")
        return conn

    async def send(self, text: str) -> None:
        """NOTIFY ``text`` to every listener (this process's own included)."""
        try:
            await self._send(text)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
            await self._drop_sender()
            await self._send(text)  # one retry on a fresh connection

    async def send_many(self, texts: list[str]) -> None:
        """NOTIFY ``texts`` in order, in as few round trips as it can: a run of small
        ones in one statement.  A burst of calls is hundreds of events, and one round
        trip each queued them for seconds between the process holding the PBX link and
        the others (whose browsers then got their pops seconds late)."""
        try:
            await self._send_many(texts)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
            await self._drop_sender()
            await self._send_many(texts)  # one retry: a statement is all or nothing

    async def _send_many(self, texts: list[str]) -> None:
        run: list[str] = []
        in_run: set[str] = set()
        for text in texts:
            big = len(text.encode()) > NOTIFY_LIMIT
            # a big one is spilled on its own; PostgreSQL delivers identical payloads
            # notified in one transaction once, so a repeat starts a new statement
            # (``crm.fanout`` numbers its messages: it never repeats one)
            if big or text in in_run:
                await self._notify_all(run)
                run, in_run = [], set()
            if big:
                await self._send(text)
            else:
                run.append(text)
                in_run.add(text)
        await self._notify_all(run)

    async def _notify_all(self, texts: list[str]) -> None:
        if len(texts) == 1:
            await self._send(texts[0])
        elif texts:
            conn = await self._sender()
            await conn.execute(
                "SELECT pg_notify($1, t) FROM unnest($2::text[]) AS t", self.channel, texts
            )
            self.statements += 1
            self.sent += len(texts)

    async def _send(self, text: str) -> None:
        conn = await self._sender()
        self.statements += 1
        if len(text.encode()) <= NOTIFY_LIMIT:
            await conn.execute("SELECT pg_notify($1, $2)", self.channel, text)
        else:
            now = time.time()
            async with conn.transaction():
                spill_id = await conn.fetchval(
                    "INSERT INTO event_spill (body, created_at) VALUES ($1, $2) RETURNING id",
                    text,
                    now,
                )
                await conn.execute("SELECT pg_notify($1, $2)", self.channel, f"@{spill_id}")
            self.spilled += 1
            if now - self._last_cleanup > SPILL_TTL:
                self._last_cleanup = now
                await conn.execute("DELETE FROM event_spill WHERE created_at < $1", now - SPILL_TTL)
        self.sent += 1

    async def _drop_sender(self) -> None:
        conn, self._send_conn = self._send_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=1)

    # -- receiving ---------------------------------------------------------------------
    async def listen(self, on_message: Callable[[str], Any]) -> None:
        """Deliver every message, in order, to ``on_message`` until cancelled;
        reconnects on its own."""
        delay = 0.2
        while True:
            try:
                await self._listen_once(on_message)
                delay = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event listener on %s lost: %s", self.channel, exc)
            self.listening.clear()
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(self.reconnect_max, delay * 2)

    async def _listen_once(self, on_message: Callable[[str], Any]) -> None:
        conn = await connect(self.url, "crm-fanout-listen")
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            queue.put_nowait(payload)

        def terminated(_conn: Any) -> None:
            queue.put_nowait(None)

        conn.add_termination_listener(terminated)
        try:
            await conn.add_listener(self.channel, notified)
            self.listening.set()
            if self.reconnects:
                log.warning("event listener on %s back; events sent meanwhile were missed",
                            self.channel)  # fmt: skip
            while True:
                try:
                    async with asyncio.timeout(10.0):
                        payload = await queue.get()
                except TimeoutError:
                    await conn.fetchval("SELECT 1")  # a half-open socket fails here
                    continue
                if payload is None:
                    raise ConnectionError("listener connection closed")
                self.received += 1
                if payload.startswith("@"):
                    body = await conn.fetchval(
                        "SELECT body FROM event_spill WHERE id = $1", int(payload[1:])
                    )
                    if body is None:
                        log.warning("event %s expired before it was read", payload)
                        continue
                    payload = body
                try:
                    result = on_message(payload)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.exception("event listener callback failed; skipped")
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=1)

    async def close(self) -> None:
        await self._drop_sender()
