"""A CRM cluster on loopback for the scale-out test and benchmark: ``run.py serve``
subprocesses on one PostgreSQL schema, replay PBXes playing the burst capture with fresh
ids (and, per office, their own extensions and callers), and SSE clients logged in as
reps."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from ami_bridge.capture import read_capture
from ami_bridge.facts import CallRecord
from ami_bridge.protocol import Message
from ami_bridge.replay import replay_facts
from ami_bridge.replay_pbx import IdAllocator
from config.settings import DEMO_FILE
from crm.store.pg_locks import KEY_SQL
from crm.store.postgres import split_url

ROOT = Path(__file__).resolve().parents[2]
BURST = ROOT / "tests" / "fixtures" / "asterisk-22" / "11-burst-20-concurrent" / "events.jsonl"
PASSWORD = "scale-out-pass-1"
SECRET_KEY = "scale-out-test-secret-key-0123456789abcdef"
CSRF_RE = re.compile(r'name="_csrf" value="([^"]+)"')
Timed = tuple[Message, float]


# -- the PBX side ----------------------------------------------------------------------
@dataclass(frozen=True)
class Office:
    """One PBX: its link and team names, and how its numbers differ from the capture's."""

    link: str
    team: str
    extensions: dict[str, str]
    """The capture's extension -> this office's (``101`` -> ``201``)."""
    caller_prefix: str
    """Replaces ``41555502`` in callers' numbers, so each office has its own callers."""


EAST = Office("east", "East", {"101": "101", "102": "102"}, "41555502")
WEST = Office("west", "West", {"101": "201", "102": "202"}, "41555503")
"""The two offices the scale tests and benchmark run: west renumbers the capture's phones
and callers so each PBX has its own."""
REPS = {"east": [("alice", "101"), ("bob", "102")], "west": [("carol", "201"), ("dave", "202")]}


def _rewrite(value: str, office: Office) -> str:
    for old, new in office.extensions.items():
        if old != new:
            value = re.sub(rf"(?<![\d.]){old}(?![\d.])", new, value)
    return value.replace("41555502", office.caller_prefix)


def office_timeline(
    office: Office, copies: int, alloc: IdAllocator, gap: float = 1.0
) -> list[Timed]:
    """``copies`` back-to-back plays of the burst with ids no other timeline made by
    ``alloc`` uses (a Linkedid is unique across both PBXes, as the calls table needs)."""
    base = [(m, at) for m, at in read_capture(BURST) if "Event" in m]
    span = base[-1][1] - base[0][1] + gap
    out: list[Timed] = []
    for n in range(copies):
        renamer = alloc.renamer()
        for msg, at in base:
            fresh = renamer.rename(msg)
            rewritten: Message = {}
            for key, value in fresh.items():
                if isinstance(value, list):
                    rewritten[key] = [_rewrite(v, office) for v in value]
                else:
                    rewritten[key] = _rewrite(value, office)
            out.append((rewritten, at + n * span))
    return out


def expected_calls(timeline: Iterable[Timed]) -> list[CallRecord]:
    """What the tracker makes of the timeline played without interruption."""
    return [f for f in replay_facts(timeline) if isinstance(f, CallRecord)]


def shared_allocator() -> IdAllocator:
    alloc = IdAllocator()
    alloc.observe(m for m, _ in read_capture(BURST))
    return alloc


# The [pbx] lines of the lab PBX the captures were recorded on (its trunk, its own numbers):
# config/demo.toml, since the defaults name no PBX's.
LAB_PBX = [f"{k} = {json.dumps(v)}" for k, v in tomllib.loads(DEMO_FILE.read_text())["pbx"].items()]


# -- the processes ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, pg_url: str, links: list[tuple[Office, int]], retry: float) -> None:
    lines = [
        "[server]",
        f'secret_key = "{SECRET_KEY}"',
        f"link_retry_seconds = {retry}",
        'log_level = "INFO"',
        "[database]",
        f'url = "{pg_url}"',
        "[ami]",
        "ping_interval = 2.0",
        "ping_timeout = 2.0",
        "backoff_initial = 0.1",
        "backoff_max = 1.0",
        "[pbx]",
        "finish_grace = 0.3",
        *LAB_PBX,  # the lab PBX the captures were recorded on (config/demo.toml)
        "[recordings]",
        f'directory = "{path.parent / "monitor"}"',
        f'media_dir = "{path.parent / "media"}"',
    ]
    for office, port in links:
        lines += [
            "[[pbx_links]]",
            f'name = "{office.link}"',
            f'team = "{office.team}"',
            'host = "127.0.0.1"',
            f"port = {port}",
            'username = "crm"',
            'secret = "crmsecret"',
        ]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Proc:
    port: int
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Cluster:
    def __init__(self, workdir: Path, pg_url: str, links: list[tuple[Office, int]],
                 retry: float = 0.25) -> None:  # fmt: skip
        self.workdir = workdir
        self.pg_url = pg_url
        self.config = workdir / "crm.toml"
        write_config(self.config, pg_url, links, retry)
        self.procs: list[Proc] = []

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM__")}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, str(ROOT / "run.py"), "--config", str(self.config), "migrate"],
            check=True, capture_output=True, env=self._env(), cwd=ROOT, timeout=120,
        )  # fmt: skip

    def spawn(self) -> Proc:
        port = free_port()
        log = self.workdir / f"serve-{port}.log"
        cmd = [sys.executable, str(ROOT / "run.py"), "--config", str(self.config),
               "serve", "--port", str(port), "--host", "127.0.0.1"]  # fmt: skip
        with log.open("wb") as out:
            popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     env=self._env(), cwd=ROOT)  # fmt: skip
        proc = Proc(port, popen, log)
        self.procs.append(proc)
        return proc

    async def wait_healthy(self, proc: Proc, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"serve on {proc.port} exited:\n{proc.log.read_text()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(proc.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"serve on {proc.port} not up:\n{proc.log.read_text()}")
                await asyncio.sleep(0.1)

    def kill(self, proc: Proc) -> None:
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(15)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(5)


async def link_holder(pg_url: str, link: str) -> int | None:
    """The pid of the process holding ``link``'s advisory lock in this test's schema (the
    key, as ``crm.store.pg_locks`` computes it, tells it apart from other runs sharing the
    database), from the lock connection's application_name; None when nobody holds it."""
    dsn, schema = split_url(pg_url)
    settings = {"search_path": schema} if schema else None
    conn = await asyncpg.connect(dsn, server_settings=settings)
    try:
        name = await conn.fetchval(
            f"WITH k AS (SELECT {KEY_SQL} AS key) "
            "SELECT a.application_name FROM k, pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid = ((k.key >> 32) & 4294967295)::oid "
            "AND l.objid = (k.key & 4294967295)::oid",
            f"crm-link:{link}",
        )
    finally:
        await conn.close()
    return int(name.rsplit(":", 1)[1]) if name else None


# -- the browsers ----------------------------------------------------------------------
@dataclass
class SseClient:
    """One logged-in rep's ``/events`` stream, every message kept with its arrival time."""

    username: str
    extension: str
    proc: Proc
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    _session: aiohttp.ClientSession | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        self._session = aiohttp.ClientSession(cookie_jar=jar)
        base = self.proc.url
        async with self._session.get(base + "/login") as resp:
            token = CSRF_RE.search(await resp.text())
        assert token, "no CSRF token on /login"
        data = {"username": self.username, "password": PASSWORD, "_csrf": token.group(1),
                "next": "/"}  # fmt: skip
        async with self._session.post(base + "/login", data=data, allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.connected.wait(), 20)

    async def _read(self) -> None:
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        try:
            async with self._session.get(self.proc.url + "/events", timeout=timeout) as resp:
                assert resp.status == 200
                async for raw in resp.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith(": connected"):
                        self.connected.set()
                    elif line.startswith("data: "):
                        self.messages.append((time.time(), json.loads(line[6:])))
        except (aiohttp.ClientError, OSError, asyncio.CancelledError):
            pass
        finally:
            self.closed = True

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m["data"] for _, m in self.messages if m["kind"] == kind]

    def popped(self) -> set[str]:
        """Linkedids this rep got a screen pop for."""
        return {d["linkedid"] for d in self.of_kind("call_progress") if d.get("pop")}

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._session is not None:
            await self._session.close()
