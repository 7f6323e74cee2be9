"""The plumbing the process-level benchmarks share, so each file keeps only what it
measures: child processes cued over a pipe, the web application on loopback, a login
through the form, the engines asked for, and one percentile.

Heavy imports (aiohttp's server, the web app, the services) stay inside the functions: the
benchmarks' children are spawned and import their module afresh, and a child that only
replays a PBX should not pay for the web application.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Any

PASSWORD = "bench-password-1"
"""Every benchmark user's password."""
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


def engines(choice: str) -> tuple[str, ...]:
    """The engines an ``--engine`` value asks for (``both``: SQLite, then PostgreSQL)."""
    return ("sqlite", "postgresql") if choice == "both" else (choice,)


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (NaN when there is nothing to rank), the same
    rank every benchmark's figures were printed with."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# -- child processes -----------------------------------------------------------------------
def spawn(
    ctx: SpawnContext, target: Callable[..., None], *args: Any
) -> tuple[Connection, SpawnProcess]:
    """``target(conn, *args)`` started in a daemon child; the parent's end of the pipe."""
    conn, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    return conn, proc


async def reply(conn: Connection, step: float = 0.05) -> Any:
    """The child's next message, polled for so the parent's event loop keeps running."""
    while not conn.poll():
        await asyncio.sleep(step)
    return conn.recv()


def reap(*procs: SpawnProcess | None) -> None:
    """Give each child 10 s to finish after its "stop", then kill it."""
    for proc in procs:
        if proc is not None:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


def proc_cpu(stat: Path) -> float:
    """User + system CPU seconds from a ``/proc`` stat file (a process's or a thread's)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def play_on_cue(
    conn: Connection,
    pbx: Any,
    done: Callable[[float], tuple[Any, ...]],
    *,
    hello: tuple[Any, ...] = (),
    step: float = 0.05,
    watch: Callable[[], None] | None = None,
) -> None:
    """A replay PBX child's life, in the parent's time: its port out (``hello`` after it),
    "go" in, the whole replay (``watch()`` every ``step`` s meanwhile), ``done(seconds
    played)`` out, then held open until "stop" so the link is not cut mid-measure."""
    async with pbx:
        conn.send(("port", pbx.port, *hello))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # "go"
        started = time.perf_counter()
        pbx.resume()
        while not pbx._done.is_set():
            if watch is not None:
                watch()
            await asyncio.sleep(step)
        await pbx.drain()
        conn.send(("done", *done(time.perf_counter() - started)))
        await loop.run_in_executor(None, conn.recv)  # "stop"


async def until_ready(tasks: Collection[asyncio.Task[Any]], ready: Callable[[], bool]) -> None:
    """Wait for ``ready()``, raising the first client task that failed meanwhile (a
    refused login would otherwise leave the benchmark waiting for ever)."""
    while not ready():
        await asyncio.sleep(0.05)
        for t in tasks:
            if t.done() and t.exception():
                raise t.exception()  # type: ignore[misc]


async def cancel_all(tasks: Collection[asyncio.Task[Any]]) -> None:
    """Stop the clients, waiting until each has let go of its connection."""
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def autovacuum_stand_in(url: str) -> AsyncIterator[list[str]]:
    """Analyse the benchmark schema's tables as autovacuum would, if the server has it off.

    A production PostgreSQL runs autovacuum (the CRM warns at start when it does not), and
    the planner picks its plans from the statistics autovacuum keeps.  The local test
    server has it off.  Without statistics, the store's lookups of a batch's calls by
    linkedid scan every call of the link: a fixed 300 calls/s fell behind after a minute.
    So, with autovacuum off, the rule autovacuum follows runs here instead: every
    ``autovacuum_naptime``, each table changed by more than
    ``autovacuum_analyze_threshold`` + ``autovacuum_analyze_scale_factor`` x its rows is
    analysed.  Yields the list of what was analysed, for the report.  SQLite URLs and a
    server with autovacuum on yield an empty list and do nothing."""
    done: list[str] = []
    if not url.startswith("postgres"):
        yield done
        return
    import asyncpg

    from crm.store.postgres import split_url

    dsn, schema = split_url(url)
    conn = await asyncpg.connect(dsn)
    settings = {
        r["name"]: r["setting"]
        for r in await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', "
            "'autovacuum_naptime', 'autovacuum_analyze_threshold', "
            "'autovacuum_analyze_scale_factor')"
        )
    }

    async def sweep() -> None:
        base, scale = float(settings["autovacuum_analyze_threshold"]), float(
            settings["autovacuum_analyze_scale_factor"]
        )
        while True:
            await asyncio.sleep(float(settings["autovacuum_naptime"]))
            for r in await conn.fetch(
                "SELECT s.relname, s.n_mod_since_analyze, c.reltuples FROM pg_stat_user_tables s "
                "JOIN pg_class c ON c.oid = s.relid WHERE s.schemaname = $1",
                schema or "public",
            ):
                if r["n_mod_since_analyze"] > base + scale * max(r["reltuples"], 0):
                    await conn.execute(f'ANALYZE "{schema or "public"}"."{r["relname"]}"')
                    done.append(r["relname"])

    task = None if settings["autovacuum"] == "on" else asyncio.create_task(sweep())
    try:
        yield done
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await conn.close()


class SseLines:
    """An SSE stream's bytes in as they are read, the lines of each whole frame out (a
    frame cut between two reads waits for its end)."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        *frames, self.buf = (self.buf + chunk).split(b"\n\n")
        return [line for frame in frames for line in frame.split(b"\n")]


# -- the web application -------------------------------------------------------------------
async def serve(app: Any) -> tuple[Any, int]:
    """``app`` on a free loopback port, without an access log: its runner and port."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def serve_pipeline(
    pipe: Any, work: Path, users: Sequence[tuple[str, str, list[str]]]
) -> tuple[Any, Any, int]:
    """The web application on ``bench_load``'s pipeline, as the CRM process runs it, with
    ``users`` (username, role, extensions) made first: its runtime, runner and port."""
    from config.settings import load_settings
    from crm.services import CrmService
    from web.app import create_app
    from web.runtime import Runtime
    from web.security import Signer, load_secret_key

    settings = load_settings(env={}, demo=True)
    settings["server"]["key_file"] = str(work / "key")
    settings["recordings"]["directory"] = str(work / "monitor")
    service = CrmService(pipe.store, pipe.ingest.policy)
    for username, role, extensions in users:
        await service.create_user(username, username.title(), PASSWORD, role, extensions)
    key = load_secret_key("", work / "key")
    rt = Runtime(settings, pipe.store, service, pipe.bus, pipe.ingest, Signer(key))
    runner, port = await serve(create_app(rt))
    return rt, runner, port


async def close_pipeline(runner: Any, pipe: Any) -> None:
    """``serve_pipeline`` undone: the web application first, then the pipeline under it."""
    await runner.cleanup()
    await pipe.close()


async def login(session: Any, base: str, username: str, **form: str) -> None:
    """Log ``session`` in as ``username`` through the login form, as a browser does
    (``form``: more fields, such as ``next``).  ``session`` is an aiohttp client session,
    or a test client with ``base`` empty."""
    html = await (await session.get(f"{base}/login")).text()
    m = CSRF_RE.search(html)
    assert m, "no CSRF token on /login"
    data = {"username": username, "password": PASSWORD, "_csrf": m.group(1), **form}
    resp = await session.post(f"{base}/login", data=data, allow_redirects=False)
    assert resp.status == 302, f"login as {username}: {resp.status}"
