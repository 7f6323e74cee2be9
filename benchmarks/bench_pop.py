"""Screen-pop latency under load: the load benchmark's pipeline (replay PBX -> link ->
tracker -> ingest -> store, ``benchmarks.bench_load``) with the web application on top and
N logged-in reps connected to ``/events``, as in the CRM process.

    .venv/bin/python -m benchmarks.bench_pop [--engine sqlite|postgresql] [--clients 50]
        [--speed 10] [--copies 10] [--loops 2] [--stagger 0.2] [--client-procs 1]
        [--details]

Latency is measured from the replay PBX writing the ``DialBegin`` that makes a rep's
phone ring (stamped in the PBX's process) to an SSE client reading the ``call_progress``
message that pops the call (stamped in the clients' process).  PBX, server and clients run
in three processes, so no one's CPU is counted as another's wait; the stamps are
``time.monotonic()``, one clock for every process on the machine.

Where the clients live changes the figure.  ``--client-procs 1`` (the default, and how
every figure before stop 24 was taken) keeps all the SSE clients in one process: at 500
clients it reads the 250 tabs a pop goes to one after another, on the same 2 CPUs as the
server, and a tab it reads last is stamped late by the clients' own queue.  Browsers are
separate machines, so ``--client-procs 2`` (or more) spreading them over processes is a
fair measure too, but not the same one: say which was used with every figure (the last
line printed does).

``--details`` prints where the time went (``benchmarks.pop_stages``): each pop split into
stages by stamps taken in the server's process (PBX write -> fact -> link's consumer ->
ingest's lookup -> bus -> hub's lane -> audience -> flush -> socket write -> client read),
the latency by second of the run, the garbage collections and event-loop lateness of the
server and of the clients, and the SQLite pop readers' waits.

Printed: pops expected and delivered (each ringing rep's every tab should get each call,
in a message that shows the rep its pop: a call's end or a change seen without a pop
never counts),
latency p50/p99/max, and the pipeline's own figures (calls written, write p50/p99), so a
slow pop can be told from a slow store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ami_bridge.protocol import Message  # noqa: E402
from ami_bridge.replay_pbx import ReplayPbx  # noqa: E402
from benchmarks import harness  # noqa: E402
from benchmarks.bench_load import BURST, _database, build_pipeline, overlapped  # noqa: E402
from benchmarks.harness import percentile as _pct  # noqa: E402
from benchmarks.pop_stages import by_second  # noqa: E402
from web.eventloop import install  # noqa: E402

_EXT = re.compile(r"^[A-Z]+/(\d+)-")


def _first(value: Any) -> str:
    return value[0] if isinstance(value, list) else str(value or "")


class StampingPbx(ReplayPbx):
    """The replay PBX, noting per (linkedid, extension) when it wrote the call's first
    ``DialBegin`` to the extension (``rang_at``) and when it first wrote that the phone
    rings (``ring_at``: a ``Newstate`` Ringing of the phone's channel, a ``DialState``
    RINGING, or a ``DialBegin`` whose destination already rings).

    The CRM pops a call when the PBX says the phone rings, not when it starts dialling
    it (a phone that is offline never rings).  In a live PBX the two are a SIP round trip
    apart; in a replayed capture they can be a whole second apart, because a raw capture
    carries only whole-second times (``ami_bridge.capture.estimate_times``) and the
    ``Newstate`` may land on the next second.  Latency is therefore measured from
    ``ring_at``; the ``DialBegin`` figure is printed beside it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rang_at: dict[tuple[str, str], float] = {}
        self.ring_at: dict[tuple[str, str], float] = {}

    def _emit(self, msg: Message, at: float) -> None:
        super()._emit(msg, at)
        event = _first(msg.get("Event"))
        if event not in ("DialBegin", "DialState", "Newstate"):
            return
        now = time.monotonic()
        if event == "Newstate":
            m = _EXT.match(_first(msg.get("Channel")))
            ringing = _first(msg.get("ChannelStateDesc")) == "Ringing"
        else:
            m = _EXT.match(_first(msg.get("DestChannel")))
            ringing = (_first(msg.get("DestChannelStateDesc")) == "Ringing"
                       or _first(msg.get("DialStatus")) == "RINGING")  # fmt: skip
        if m is None:
            return
        lid = _first(msg.get("DestLinkedid" if event != "Newstate" else "Linkedid"))
        lid = lid or _first(msg.get("Linkedid"))
        key = (lid, m.group(1))
        if event == "DialBegin":
            self.rang_at.setdefault(key, now)
        if ringing:
            self.ring_at.setdefault(key, now)


def _pbx_child(conn: Connection, copies: int, stagger: float, speed: float, loops: int) -> None:
    from web.eventloop import install

    install()

    async def main() -> None:
        items = overlapped(BURST, copies, stagger)
        pbx = StampingPbx(items, speed=speed, loops=loops, paused=True, loop_gap=1.0)
        await harness.play_on_cue(conn, pbx, lambda _s: (pbx.played, pbx.rang_at, pbx.ring_at))

    asyncio.run(main())


# -- the SSE clients (own process) -----------------------------------------------------
_POP_START = b'data: {"kind":"call_progress"'
_POP_LINE = re.compile(rb'data: \{"kind":"call_progress","data":\{"linkedid":"([^"]+)"')


_POP_SHOWN = (b'"pop":"ringing"', b'"pop":"on_call"')


def _linkedid(line: bytes) -> str | None:
    """The linkedid of a ``call_progress`` line the quick pattern missed."""
    data = json.loads(line[6:]).get("data")
    return data.get("linkedid") if isinstance(data, dict) else None


def _shows_pop(frame: bytes) -> bool:
    """Whether a ``call_progress`` message shows the rep the pop (its ``pop`` is
    ``ringing``, or ``on_call`` once they have the call), not only a change of a call
    they see no pop of (it ended, somebody else answered): only such a message counts
    as the pop delivered.  The hub's JSON escapes quotes inside strings, so the key
    found here is the message's own."""
    return any(shown in frame for shown in _POP_SHOWN)


class _SseReader(asyncio.Protocol):
    """A browser's ``/events`` stream read as raw bytes: the request written by hand and
    each packet kept with the moment it was read (``data_received``); the packets are
    parsed after the run (``pops``).  No HTTP client, no task per connection, no parsing
    while the server runs: a real browser runs on its own machine, and the readers of
    500 connections share this box's 2 CPUs with the server, so every microsecond they
    spend per message is taken from the server being measured (500 aiohttp readers
    queued behind each other for tens of ms; parsing each packet as it came cost the
    readers more CPU than the server spent on the pops).  The hub writes every SSE frame
    whole inside one HTTP chunk, so splitting the raw bytes at blank lines finds every
    frame's ``data:`` line intact."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.status: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.head = b""
        self.reads: list[tuple[float, bytes]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.status.done():
            self.reads.append((time.monotonic(), data))
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end >= 0:
            self.status.set_result(self.head[:end].split(b"\r\n", 1)[0])
            self.reads.append((time.monotonic(), self.head[end + 4 :]))

    def pops(self) -> list[tuple[str, float]]:
        """Each call this connection was shown the pop of, once, with when the packet
        that completed the pop's frame was read."""
        out: list[tuple[str, float]] = []
        seen: set[str] = set()
        buf = b""
        for now, data in self.reads:
            *frames, buf = (buf + data).split(b"\n\n")
            for frame in frames:
                at = frame.find(_POP_START)
                if at < 0 or not _shows_pop(frame):
                    continue
                m = _POP_LINE.match(frame, at)
                lid = m.group(1).decode() if m else _linkedid(frame[at:])
                if lid and lid not in seen:
                    seen.add(lid)
                    out.append((lid, now))
        return out

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.status.done():
            self.status.set_exception(exc or ConnectionError("closed before the headers"))


def _clients_child(conn: Connection, base: str | list[str], users: list[str], tabs: int,
                   readers: str = "raw", indices: list[int] | None = None) -> None:  # fmt: skip
    """One SSE connection per entry of ``users`` (a username may repeat); every ``tabs``
    connections of one user share one login (tabs of one browser), so 500 connections
    need not mean 500 argon2 password checks before the run.  Several ``base`` URLs
    (web processes): connection ``i`` goes to ``base[i % len(base)]``.  ``indices``: the
    connections' numbers in the whole run when the clients are spread over several
    processes (``spawn_clients``), else 0, 1, 2...

    Sent back at "stop": the receipts (connection, user, linkedid, read at), the CPU
    used, each connection's local port (the server's stamps name a socket by it:
    ``benchmarks.pop_stages``) and this process's pauses (GCs, its loop's lateness).

    A reader only stamps and finds the linkedid of the messages it gets: 500 connections
    in one process on a 2-core box are 500 browsers on 500 machines, and decoding every
    message in full here would count this process's own queue as the server's latency.
    ``readers``: ``raw`` (``_SseReader``, the default) or ``aiohttp`` (an aiohttp
    client per connection, as the benchmark measured before: slower to read)."""
    import aiohttp

    from web.eventloop import install

    install()

    from benchmarks.pop_stages import Pauses

    numbers = indices if indices is not None else list(range(len(users)))

    async def main() -> None:
        receipts: list[tuple[int, str, str, float]] = []  # client, user, linkedid, at
        ports: dict[int, int] = {}
        ready = 0
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        logins: dict[tuple[str, str, int], dict[str, str]] = {}

        bases = [base] if isinstance(base, str) else list(base)

        async def cookies(username: str, url: str) -> dict[str, str]:
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as s:
                await harness.login(s, url, username)
                return {c.key: c.value for c in jar}

        seq: dict[tuple[str, str], int] = {}
        keys = []
        for i, username in zip(numbers, users, strict=True):
            url = bases[i % len(bases)]
            n = seq[username, url] = seq.get((username, url), -1) + 1
            keys.append((username, url, n // max(1, tabs)))
        for key in dict.fromkeys(keys):
            logins[key] = await cookies(key[0], key[1])

        async def raw_client(i: int, username: str, cookies: dict[str, str]) -> None:
            nonlocal ready
            host, _, port = bases[i % len(bases)].removeprefix("http://").partition(":")
            cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
            request = (
                f"GET /events HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Accept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
            ).encode()

            loop = asyncio.get_running_loop()
            transport, reader = await loop.create_connection(
                lambda: _SseReader(request), host, int(port)
            )
            ports[i] = int(transport.get_extra_info("sockname")[1])
            try:
                status = await reader.status
                assert b" 200 " in status + b" ", status
                ready += 1
                await asyncio.Event().wait()  # until cancelled: the protocol reads
            finally:
                transport.close()
                receipts.extend((i, username, lid, at) for lid, at in reader.pops())

        async def aiohttp_client(i: int, username: str, cookies: dict[str, str]) -> None:
            nonlocal ready
            jar = aiohttp.CookieJar(unsafe=True)
            session = aiohttp.ClientSession(cookie_jar=jar, cookies=cookies, timeout=timeout)
            url = bases[i % len(bases)]
            async with session as s, s.get(f"{url}/events") as resp:
                assert resp.status == 200, resp.status
                if resp.connection is not None and resp.connection.transport is not None:
                    ports[i] = int(resp.connection.transport.get_extra_info("sockname")[1])
                ready += 1
                seen: set[str] = set()
                lines = harness.SseLines()
                while True:
                    chunk = await resp.content.readany()
                    if not chunk:
                        break
                    now = time.monotonic()
                    for line in lines.feed(chunk):
                        if not line.startswith(_POP_START) or not _shows_pop(line):
                            continue
                        m = _POP_LINE.match(line)
                        lid = m.group(1).decode() if m else _linkedid(line)
                        if lid and lid not in seen:
                            seen.add(lid)
                            receipts.append((i, username, lid, now))

        client = raw_client if readers == "raw" else aiohttp_client
        tasks = [asyncio.create_task(client(i, u, logins[k]))
                 for i, u, k in zip(numbers, users, keys, strict=True)]  # fmt: skip
        await harness.until_ready(tasks, lambda: ready >= len(users))
        conn.send(("ready", len(users)))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # "go"
        pauses = Pauses()
        pauses.start()
        # A browser's garbage collector is not the server's latency: this process's
        # collections (one of 40 ms in its 500 readers' heap) stamped whole bursts of
        # pops late.  What the readers keep is their reads: nothing to collect.
        gc.freeze()
        gc.disable()
        cpu0 = time.process_time()
        await loop.run_in_executor(None, conn.recv)  # "stop"
        cpu = time.process_time() - cpu0
        gc.enable()
        pauses.stop()
        await harness.cancel_all(tasks)
        conn.send(("receipts", receipts, cpu, ports, pauses.gcs, pauses.late))

    asyncio.run(main())


class Clients:
    """The SSE clients spread over ``processes`` processes (``_clients_child`` each):
    connection ``i`` lives in process ``i % processes``.  Browsers are separate
    machines; one process reading 500 sockets on this 2-CPU box reads the 250 tabs a
    pop goes to one after another, and stamps the last of them late by as long as that
    takes (the clients' own queue, not the server's), so the benchmark can spread them."""

    def __init__(self, ctx: Any, processes: int, base: str | list[str], users: list[str],
                 tabs: int, readers: str) -> None:  # fmt: skip
        self.processes = max(1, processes)
        self.children: list[tuple[Connection, Any]] = []
        for p in range(self.processes):
            indices = list(range(p, len(users), self.processes))
            mine = [users[i] for i in indices]
            self.children.append(harness.spawn(ctx, _clients_child, base, mine, tabs, readers,
                                               indices))  # fmt: skip

    @property
    def procs(self) -> list[Any]:
        return [proc for _, proc in self.children]

    async def ready(self) -> None:
        for conn, _ in self.children:
            await harness.reply(conn)

    def go(self) -> None:
        for conn, _ in self.children:
            conn.send("go")

    async def stop(self) -> dict[str, Any]:
        """Every process's receipts, ports and pauses together; CPU summed."""
        out: dict[str, Any] = {"receipts": [], "cpu": 0.0, "ports": {}, "gcs": [], "late": []}
        for conn, _ in self.children:
            conn.send("stop")
        for conn, _ in self.children:
            _, receipts, cpu, ports, gcs, late = await harness.reply(conn)
            out["receipts"].extend(receipts)
            out["cpu"] += cpu
            out["ports"].update(ports)
            out["gcs"].extend(gcs)
            out["late"].extend(late)
        return out


def client_pauses(got: dict[str, Any], t0: float, t1: float) -> dict[str, Any]:
    """The clients' processes' pauses in the run (``Pauses.summary``), all together."""
    from benchmarks.pop_stages import Pauses

    pauses = Pauses()
    pauses.gcs, pauses.late = got["gcs"], got["late"]
    return pauses.summary(t0, t1)


# -- the server: the load benchmark's pipeline with the web app on it ---------------------
async def _serve(pipe: Any, work: Path, reps: dict[str, str]) -> tuple[Any, Any, int]:
    users = [(username, "rep", [ext]) for username, ext in reps.items()]
    return await harness.serve_pipeline(pipe, work, users)


async def run(engine: str, clients: int, speed: float, copies: int, loops: int,
              stagger: float, tabs: int = 1, profile: str | None = None,
              readers: str = "raw", client_procs: int = 1,
              tracker_process: bool = False) -> dict[str, Any]:  # fmt: skip
    from benchmarks.pop_stages import Stages

    ctx = mp.get_context("spawn")
    pbx_conn, pbx = harness.spawn(ctx, _pbx_child, copies, stagger, speed, loops)
    group: Clients | None = None
    stages = Stages()
    try:
        _, port = pbx_conn.recv()
        expected_calls = 20 * copies * loops
        reps = {"alice": "101", "bob": "102"}
        users = [list(reps)[i % len(reps)] for i in range(clients)]
        async with _database(engine) as url:
            pipe = await build_pipeline(url, "127.0.0.1", port, tracker_process=tracker_process)
            with tempfile.TemporaryDirectory(prefix="bench-pop-") as tmp:
                rt, runner, web_port = await _serve(pipe, Path(tmp), reps)
                hub = rt.extras.get("live_hub")
                stages.install(pipe.link, pipe.bus, pipe.ingest, hub)
                await pipe.link.start()
                await pipe.link.wait_state("connected", timeout=10)
                base = f"http://127.0.0.1:{web_port}"
                group = Clients(ctx, client_procs, base, users, tabs, readers)
                await group.ready()
                profiler = start_profiler(profile)
                stages.pauses.start()
                m0 = time.monotonic()
                t0 = time.perf_counter()
                cpu0 = time.process_time()
                group.go()
                pbx_conn.send("go")
                done: tuple[Any, ...] | None = None
                deadline = t0 + 120 + 40 * loops / max(speed, 0.1)
                while time.perf_counter() < deadline:
                    await asyncio.sleep(0.05)
                    if done is None and pbx_conn.poll():
                        done = pbx_conn.recv()
                    if done is not None and pipe.counters.written >= expected_calls:
                        break
                await asyncio.sleep(1.0)  # the last pops in flight
                elapsed = time.perf_counter() - t0
                server_cpu = time.process_time() - cpu0
                m1 = time.monotonic()
                stages.pauses.stop()
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(profile)
                hub = rt.extras.get("live_hub")  # counted while the browsers are connected
                dropped = sum(getattr(c, "dropped", 0) for c in getattr(hub, "clients", ()))
                got = await group.stop()
                receipts, clients_cpu = got["receipts"], got["cpu"]
                counters = pipe.counters
                await harness.close_pipeline(runner, pipe)
        pbx_conn.send("stop")
    finally:
        stages.uninstall()
        harness.reap(pbx, *(group.procs if group is not None else ()))
    rang_at: dict[tuple[str, str], float] = done[2] if done else {}
    ring_at: dict[tuple[str, str], float] = done[3] if done else {}
    tabs = {u: users.count(u) for u in set(users)}
    latencies = []  # from the PBX saying the phone rings
    from_dial = []  # from the DialBegin to it (the replayed timeline's gap included)
    over_time = []  # (rang at, ms)
    split_in = []  # (linkedid, extension, client port, read at)
    for client, user, lid, at in receipts:
        t = ring_at.get((lid, reps[user]))
        if t is not None:
            latencies.append((at - t) * 1000)
            over_time.append((t, (at - t) * 1000))
            split_in.append((lid, reps[user], got["ports"].get(client, -1), at))
        t = rang_at.get((lid, reps[user]))
        if t is not None:
            from_dial.append((at - t) * 1000)
    expected_pops = sum(tabs[u] for u in tabs for (lid, ext) in ring_at if ext == reps[u])
    gaps = [(ring_at[k] - t) * 1000 for k, t in rang_at.items() if k in ring_at]
    write_ms = sorted(counters.write_ms) or [0.0]
    return {
        "engine": engine, "speed": speed, "clients": clients, "seconds": elapsed,
        "calls_expected": expected_calls, "calls_written": counters.written,
        "pops_expected": expected_pops, "pops_received": len(latencies),
        "pop_p50_ms": _pct(latencies, 50), "pop_p99_ms": _pct(latencies, 99),
        "pop_max_ms": max(latencies, default=float("nan")), "dropped_by_hub": dropped,
        "dial_p50_ms": _pct(from_dial, 50), "dial_p99_ms": _pct(from_dial, 99),
        "dial_max_ms": max(from_dial, default=float("nan")),
        "gap_late": sum(1 for g in gaps if g > 100), "gap_count": len(gaps),
        "write_p50_ms": _pct(write_ms, 50), "write_p99_ms": _pct(write_ms, 99),
        "server_cpu_s": server_cpu, "clients_cpu_s": clients_cpu,
        "load": os.getloadavg()[0], "readers": readers, "client_procs": client_procs,
        **stages.split(split_in, ring_at),
        "by_second": by_second(over_time, m0),
        "server_pauses": stages.pauses.summary(m0, m1),
        "client_pauses": client_pauses(got, m0, m1),
    }  # fmt: skip


def _loop_name() -> str:
    """The event loop ``asyncio.run`` uses here (and in the children: ``install``)."""
    return type(asyncio.get_event_loop_policy()).__module__.split(".")[0]


def how_measured(readers: str, client_procs: int = 1) -> str:
    """One line saying how the clients read the pops (printed with the figures)."""
    how = ("raw asyncio protocol, each read stamped and kept, parsed after the run"
           if readers == "raw" else "one aiohttp client each, SSE parsed per line")  # fmt: skip
    where = "one process" if client_procs == 1 else f"spread over {client_procs} processes"
    return f"clients: {where}, {how}; server and clients on {_loop_name()}"


def start_profiler(path: str | None) -> Any:
    """cProfile of this (the server's) event loop for the replay, when asked (started)."""
    if not path:
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _fmt(r: dict[str, Any]) -> str:
    return (
        f"{r['engine']:10} {r['speed']:>4g}x {r['clients']:>4} SSE clients  pop p50/p99/max "
        f"{r['pop_p50_ms']:.1f}/{r['pop_p99_ms']:.1f}/{r['pop_max_ms']:.1f} ms  "
        f"pops {r['pops_received']}/{r['pops_expected']} ({r['dropped_by_hub']} messages "
        f"dropped for browsers that did not read)  calls "
        f"{r['calls_written']}/{r['calls_expected']}  write p50/p99 "
        f"{r['write_p50_ms']:.1f}/{r['write_p99_ms']:.1f} ms  in {r['seconds']:.1f} s\n"
        f"{'':16}from DialBegin instead: p50/p99/max {r['dial_p50_ms']:.1f}/"
        f"{r['dial_p99_ms']:.1f}/{r['dial_max_ms']:.1f} ms ({r['gap_late']} of "
        f"{r['gap_count']} dials rang > 100 ms after their DialBegin in the replayed timeline)\n"
        f"{'':16}CPU: server {r['server_cpu_s']:.1f} s, clients {r['clients_cpu_s']:.1f} s "
        f"({1000 * r['server_cpu_s'] / max(1, r['pops_received']):.2f} / "
        f"{1000 * r['clients_cpu_s'] / max(1, r['pops_received']):.2f} ms per pop); "
    ) + conditions(r)


def conditions(r: dict[str, Any]) -> str:
    """The last of a run's figures: the machine's load and how the clients read (the end
    of ``bench_pop_cluster``'s too)."""
    return f"load average {r['load']:.1f} on {os.cpu_count()} CPUs\n{'':16}" + how_measured(
        r["readers"], r.get("client_procs", 1)
    )


def details(r: dict[str, Any], server: str = "server") -> str:
    """Where the time went (``benchmarks.pop_stages``): the stages when the server's
    process was stamped, the latency by second of the run, every process's pauses."""
    from benchmarks.pop_stages import format_pauses, format_seconds, format_split

    out = []
    if "split" in r:
        out.append(format_split(r))
    out.append(format_seconds(r["by_second"]))
    if "server_pauses" in r:
        out.append(format_pauses(server, r["server_pauses"]))
    out.append(format_pauses("clients", r["client_pauses"]))
    return "\n".join(out)


def add_replay_arguments(
    ap: argparse.ArgumentParser, *, speed: float, copies: int, loops: int, tabs: int
) -> None:
    """The replayed traffic and how the clients connect and read, as this benchmark and
    ``bench_pop_cluster`` take them (each with its own defaults)."""
    ap.add_argument("--speed", type=float, default=speed)
    ap.add_argument("--copies", type=int, default=copies,
                    help="overlapped burst copies (x20 calls)")  # fmt: skip
    ap.add_argument("--loops", type=int, default=loops)
    ap.add_argument("--stagger", type=float, default=0.2)
    ap.add_argument("--tabs", type=int, default=tabs,
                    help="SSE connections sharing one login (tabs of one browser)")  # fmt: skip
    ap.add_argument("--client-procs", type=int, default=1,
                    help="processes the SSE clients are spread over (browsers are separate "
                         "machines; 1: all in one, as measured before stop 24)")  # fmt: skip
    ap.add_argument(
        "--details",
        action="store_true",
        help="print the pop's stages, the latency by second and the pauses",
    )
    ap.add_argument(
        "--readers",
        choices=("raw", "aiohttp"),
        default="raw",
        help="how the clients read their streams (raw: as cheaply as possible)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="sqlite")
    ap.add_argument("--clients", default="10,50,200", help="SSE clients, comma-separated runs")
    add_replay_arguments(ap, speed=10.0, copies=10, loops=2, tabs=1)
    ap.add_argument("--profile", help="write a cProfile of the server's replay to this file")
    ap.add_argument("--tracker-process", action="store_true",
                    help="run the link's tracker in a process of its own ([ami] tracker_process)")
    args = ap.parse_args(argv)
    install()
    for engine in harness.engines(args.engine):
        for n in (int(x) for x in args.clients.split(",")):
            with contextlib.suppress(KeyboardInterrupt):
                r = asyncio.run(run(engine, n, args.speed, args.copies, args.loops,
                                    args.stagger, args.tabs, args.profile, args.readers,
                                    args.client_procs, args.tracker_process))  # fmt: skip
                print(_fmt(r), flush=True)
                if args.details:
                    print(details(r), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
