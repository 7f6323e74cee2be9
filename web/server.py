"""Process entry points behind ``run.py``: serve (with or without the demo), migrate and
rebuild-figures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

from aiohttp import web

from config.settings import redacted
from crm.closing import close_within

from .app import create_app
from .runtime import Runtime, open_runtime, sqlite_url_absolute, start_links
from .workers import run_hooks

log = logging.getLogger("crm")


def migrate(settings: dict[str, Any]) -> int:
    from crm.store import migrate as run_migrations

    url = sqlite_url_absolute(settings["database"]["url"])
    try:
        version = asyncio.run(run_migrations(url))
    except Exception as exc:  # shown to the admin, not a traceback
        print(f"run.py migrate: {exc}", file=sys.stderr)
        return 1
    print(f"database schema at version {version}")
    return 0


def rebuild_figures(settings: dict[str, Any]) -> int:
    """Recount the managers' figures from the calls in the display time zone
    (``crm.store.sql_figures``): after an upgrade, a change of ``server.display_tz``, a
    restore, or a bulk load that wrote calls behind the store's back.  Restart the web
    processes afterwards when the zone changed."""
    from crm.store import open_store

    zone = str(settings.get("server", {}).get("display_tz", "UTC"))

    async def run() -> tuple[int, int]:
        store = await open_store(sqlite_url_absolute(settings["database"]["url"]))
        try:
            return await store.rebuild_figures(zone)
        finally:
            await store.close()

    try:
        figures, hours = asyncio.run(run())
    except Exception as exc:  # shown to the admin, not a traceback
        print(f"run.py rebuild-figures: {exc}", file=sys.stderr)
        return 1
    print(f"figures recounted from the calls in {zone}: {figures} day rows, {hours} hour rows")
    return 0


async def start(settings: dict[str, Any], *, demo: bool) -> tuple[Runtime, web.AppRunner]:
    from .pages.admin import apply_stored_settings

    rt = await open_runtime(settings, with_link=False)
    await apply_stored_settings(rt)  # the admin's saved settings win over the file
    info: dict[str, Any] = {}
    if demo:
        from .demo import DEMO_PASSWORD, USERS, start_demo

        info = await start_demo(rt)
        log.info("demo: replay PBX on 127.0.0.1:%s", info["pbx_port"])
        names = ", ".join(u[0] for u in USERS)
        print(f"demo logins: {names} — password {DEMO_PASSWORD}", flush=True)
    else:
        url = sqlite_url_absolute(settings["database"]["url"])
        start_links(rt, url if rt.store.dialect == "postgres" else None)
    await run_hooks(rt)
    app = create_app(rt)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    server = settings.get("server", {})
    host, port = str(server.get("host", "127.0.0.1")), int(server.get("port", 8080))
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"Switchboard CRM on http://{host}:{port}/", flush=True)
    return rt, runner


async def _main(settings: dict[str, Any], demo: bool) -> int:
    rt, runner = await start(settings, demo=demo)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("shutting down", flush=True)
    # bounded, like every close path: open browser streams end when the hub closes them
    await close_within(runner.cleanup(), 15.0, "the web server")
    await rt.close()
    return 0


def serve(settings: dict[str, Any], demo: bool = False) -> int:
    logging.basicConfig(
        level=str(settings.get("server", {}).get("log_level", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosqlite logs every statement with its values at DEBUG: secrets and hashes included
    level = logging.getLogger().getEffectiveLevel()
    for noisy in ("aiosqlite", "asyncpg"):
        logging.getLogger(noisy).setLevel(max(level, logging.INFO))
    log.debug("settings: %s", redacted(settings))
    try:
        return asyncio.run(_main(settings, demo))
    except OSError as exc:
        print(f"run.py: cannot start: {exc}", file=sys.stderr)
        return 1
