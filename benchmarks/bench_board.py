"""Supervisor board latency: an AMI event on the wire to the SSE message on every board.

    .venv/bin/python -m benchmarks.bench_board [--reps 50] [--queues 10] [--boards 20]
        [--events 300] [--engine sqlite|postgresql]

A replay PBX (in this process) describes ``--reps`` registered handsets, members of
``--queues`` queues (5 members each); the CRM (``web.server.start``, in a second process,
so its CPU is its own) connects to it, resyncs, and serves ``--boards`` logged-in admin
boards (``GET /board/events``, clients in this process).  Then, one at a time, the PBX
writes a ``QueueMemberPause`` (pause / unpause in turn, every rep in turn) and each board
is timed from the moment the PBX wrote the event to the moment it read the rep's new
state.  Stamps are ``time.monotonic()`` in this one process.

Printed: messages expected and delivered, latency p50 / p99 / max (the issue's goal:
within 500 ms of the AMI event).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import re
import socket
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ami_bridge.replay_pbx import ReplayPbx  # noqa: E402

PASSWORD = "bench-password-1"
SECRET = "bench-secret"
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(conn: Connection, pbx_port: int, web_port: int, db_url: str, folder: str) -> None:
    """The CRM process: the server as ``run.py serve`` starts it, plus one admin."""

    async def main() -> None:
        from config.settings import load_settings
        from web.server import start

        settings = load_settings(env={})
        settings["database"]["url"] = db_url
        settings["server"].update(port=web_port, host="127.0.0.1", key_file=f"{folder}/secret.key")
        settings["ami"] = {
            "host": "127.0.0.1",
            "port": pbx_port,
            "username": "crm",
            "secret": SECRET,
            "tls": False,
        }
        settings.setdefault("pbx", {})["extension_pattern"] = r"\d{3}"
        rt, runner = await start(settings, demo=False)
        await rt.service.create_user("boss", "Board Boss", PASSWORD, "admin")
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await runner.cleanup()
        await rt.close()

    asyncio.run(main())


def seed_events(reps: list[str], queues: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for ext in reps:
        out.append(
            {
                "Event": "DeviceStateChange",
                "Privilege": "call,all",
                "Device": f"PJSIP/{ext}",
                "State": "NOT_INUSE",
            }
        )
    for q in range(queues):
        for k in range(5):
            ext = reps[(q * 5 + k) % len(reps)]
            out.append(
                {
                    "Event": "QueueMemberAdded",
                    "Privilege": "agent,all",
                    "Queue": f"q{q:02d}",
                    "MemberName": f"Rep {ext}",
                    "Interface": f"PJSIP/{ext}",
                    "StateInterface": f"PJSIP/{ext}",
                    "Status": "1",
                    "Paused": "0",
                    "PausedReason": "",
                    "InCall": "0",
                }
            )
    return out


class Board:
    """One logged-in board: reads the SSE stream, notes when each rep's state arrived."""

    def __init__(self, base: str) -> None:
        import aiohttp

        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.seen: dict[tuple[str, str], float] = {}
        self.changed = asyncio.Event()
        self.connected = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def login(self) -> None:
        page = await (await self.http.get(f"{self.base}/login")).text()
        token = CSRF_RE.search(page)
        assert token
        form = {"username": "boss", "password": PASSWORD, "_csrf": token.group(1), "next": "/"}
        r = await self.http.post(f"{self.base}/login", data=form, allow_redirects=False)
        assert r.status in (302, 303), r.status
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async with self.http.get(f"{self.base}/board/events") as resp:
            buf = b""
            async for chunk in resp.content.iter_any():
                at = time.monotonic()
                buf += chunk
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    for line in block.split(b"\n"):
                        if line.startswith(b": connected"):
                            self.connected.set()
                        if not line.startswith(b"data: "):
                            continue
                        msg = json.loads(line[6:])
                        if msg["kind"] == "board":
                            for rep in msg["data"]["reps"]:
                                self.seen[(rep["extension"], rep["state"])] = at
                        if msg["kind"] == "rep":
                            rep = msg["data"]
                            self.seen[(rep["extension"], rep["state"])] = at
                            self.changed.set()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        await self.http.close()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def run(args: argparse.Namespace) -> None:
    reps = [str(200 + i) for i in range(args.reps)]
    pbx = ReplayPbx(None, secret=SECRET, speed=0, paused=True)
    await pbx.start()
    for msg in seed_events(reps, args.queues):
        pbx.inject(msg)
    web_port = _free_port()
    folder = tempfile.mkdtemp(prefix="bench-board-")
    db_url = args.database or f"sqlite:///{folder}/crm.db"
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=_serve, args=(child, pbx.port, web_port, db_url, folder)
    )
    proc.start()
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 120
    while not await loop.run_in_executor(None, parent.poll, 1.0):
        if not proc.is_alive() or time.monotonic() > deadline:
            raise SystemExit(f"the CRM process did not start (exit code {proc.exitcode})")
    assert parent.recv() == "ready"
    base = f"http://127.0.0.1:{web_port}"
    boards = [Board(base) for _ in range(args.boards)]
    latencies: list[float] = []
    missing = 0
    try:
        for b in boards:
            await b.login()
        async with asyncio.timeout(30):
            await asyncio.gather(*(b.connected.wait() for b in boards))
        member_of = {}
        for q in range(args.queues):
            for k in range(5):
                member_of.setdefault(reps[(q * 5 + k) % len(reps)], f"q{q:02d}")
        targets = [r for r in reps if r in member_of]
        # every board has the seeded state before timing starts
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(
            all((r, "available") in b.seen for r in targets) for b in boards
        ):
            await asyncio.sleep(0.1)
        print(
            f"  seeded: {sum(len(b.seen) for b in boards)} states seen, {len(targets)} members",
            flush=True,
        )
        paused = dict.fromkeys(targets, False)
        for i in range(args.events):
            ext = targets[i % len(targets)]
            paused[ext] = not paused[ext]
            state = "paused" if paused[ext] else "available"
            for b in boards:
                b.seen.pop((ext, state), None)
            msg = {
                "Event": "QueueMemberPause",
                "Privilege": "agent,all",
                "Queue": member_of[ext],
                "MemberName": f"Rep {ext}",
                "Interface": f"PJSIP/{ext}",
                "StateInterface": f"PJSIP/{ext}",
                "Status": "1",
                "InCall": "0",
                "Paused": "1" if paused[ext] else "0",
                "PausedReason": "bench" if paused[ext] else "",
            }
            t0 = time.monotonic()
            pbx.inject(msg)
            end = t0 + 2.0
            while time.monotonic() < end and not all((ext, state) in b.seen for b in boards):
                for b in boards:
                    b.changed.clear()
                await asyncio.sleep(0.001)
            for b in boards:
                at = b.seen.get((ext, state))
                if at is None:
                    missing += 1
                else:
                    latencies.append(at - t0)
            await asyncio.sleep(args.gap)
    finally:
        for b in boards:
            await b.close()
        parent.send("stop")
        await loop.run_in_executor(None, proc.join, 30)
        await pbx.close()
    expected = args.events * args.boards
    print(
        f"bench_board: {args.reps} reps, {args.queues} queues, {args.boards} boards, "
        f"{args.events} AMI events ({db_url.split(':')[0]})"
    )
    print(f"  board messages: {expected - missing}/{expected} delivered")
    print(
        f"  AMI event -> SSE message: p50 {pct(latencies, 50) * 1000:.1f} ms, "
        f"p99 {pct(latencies, 99) * 1000:.1f} ms, max {max(latencies or [0]) * 1000:.1f} ms"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--queues", type=int, default=10)
    p.add_argument("--boards", type=int, default=20)
    p.add_argument("--events", type=int, default=300)
    p.add_argument("--gap", type=float, default=0.01, help="seconds between events")
    p.add_argument("--database", default=None, help="a database URL (default: temp SQLite)")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
