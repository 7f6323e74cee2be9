"""Click-to-call latency: from the UI's request (HTTP ``POST /dial`` on a live server) to
the ``Originate`` action arriving at the PBX over TCP.

    .venv/bin/python -m benchmarks.bench_click [--clicks 300]

The web server (app, CRM on a temporary SQLite file, AMI link) runs on the main event
loop; the replay PBX and the HTTP client run on a second loop in another thread, as a
browser and an Asterisk would run elsewhere, so neither steals the server's loop.  Times
are ``time.perf_counter`` in one process, so the two sides compare directly.  Each click
dials a different number (a repeated number inside five seconds is a double click and is
not sent again); the per-user rate limit is lifted for the run; the PBX answers every
Originate with "your phone did not answer", so the server also ingests that outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from ami_bridge.protocol import Message
from ami_bridge.replay_pbx import OriginateScript, ReplayPbx
from config.settings import load_settings
from web.app import create_app
from web.runtime import open_runtime, start_link

T = TypeVar("T")
SECRET = "bench-secret"
PASSWORD = "bench-password-1"
CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


class TimedPbx(ReplayPbx):
    """The replay PBX, noting when each Originate's bytes were parsed off the socket."""

    def __init__(self) -> None:
        super().__init__(None, speed=0, secret=SECRET)
        self.arrived: dict[str, float] = {}

    def _handle_action(self, session: Any, msg: Message) -> None:
        if str(msg.get("Action", "")).lower() == "originate":
            self.arrived[str(msg.get("ActionID", ""))] = time.perf_counter()
        super()._handle_action(session, msg)


class Side:
    """An event loop in a thread (the PBX's and the browser's side)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def clicks(base: str, pbx: TimedPbx, n: int,
                 first: int = 0) -> tuple[list[float], list[float]]:  # fmt: skip
    to_wire: list[float] = []
    round_trip: list[float] = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        page = await (await http.get(f"{base}/login")).text()
        token = CSRF.search(page)
        assert token
        resp = await http.post(
            f"{base}/login",
            data={"username": "rep", "password": PASSWORD, "_csrf": token.group(1), "next": "/"},
        )
        token = CSRF.search(await resp.text())
        assert token, "login failed"
        headers = {"X-CSRF-Token": token.group(1), "Accept": "application/json"}
        for i in range(n):
            body = {"number": f"+1415{5550000 + first + i:07d}", "request_key": uuid.uuid4().hex}
            t0 = time.perf_counter()
            async with http.post(f"{base}/dial", json=body, headers=headers) as r:
                answer = await r.json()
            t1 = time.perf_counter()
            assert r.status == 202, answer
            oid = answer["originate_id"]
            while oid not in pbx.arrived:
                await asyncio.sleep(0.0005)
            to_wire.append(pbx.arrived[oid] - t0)
            round_trip.append(t1 - t0)
    return to_wire, round_trip


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report(name: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(f"{name:<34} p50 {pct(ms, 50):6.2f} ms   p99 {pct(ms, 99):6.2f} ms   "
          f"mean {statistics.fmean(ms):6.2f} ms   max {max(ms):6.2f} ms")  # fmt: skip


async def main(n: int) -> None:
    side = Side()
    pbx = TimedPbx()
    # every Originate is answered (the rep's phone does not pick up), as a PBX would
    pbx.script_originate(OriginateScript.failure(reason=3), times=None)
    await side.run(pbx.start())
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(env={}, demo=True)
        settings["database"]["url"] = f"sqlite:///{Path(tmp) / 'crm.db'}"
        settings["server"]["key_file"] = str(Path(tmp) / "secret.key")
        settings["ami"].update(host="127.0.0.1", port=pbx.port, username="crm", secret=SECRET)
        settings["dial"] = {"per_user_per_minute": 1_000_000}
        rt = await open_runtime(settings, with_link=False)
        runner: web.AppRunner | None = None
        try:
            await rt.service.create_user("rep", "Rep", PASSWORD, "rep", ["103"])
            await start_link(rt).wait_state("connected")
            runner = web.AppRunner(create_app(rt), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            base = f"http://127.0.0.1:{port}"
            await side.run(clicks(base, pbx, 20, first=n))  # warm-up, other numbers
            to_wire, round_trip = await side.run(clicks(base, pbx, n))
        finally:
            if runner is not None:
                await runner.cleanup()
            await rt.close()
            await side.run(pbx.close())
            side.stop()
    print(f"click-to-call, {n} clicks, one rep, SQLite store, replay PBX over TCP")
    report("POST /dial -> Originate on the wire", to_wire)
    report("POST /dial round trip (202)", round_trip)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=300)
    asyncio.run(main(parser.parse_args().clicks))
