"""Screen-pop latency with several web processes on PostgreSQL: ``bench_pop``'s measure
(from the replay PBX saying a rep's phone rings to the SSE message read by the client)
with N real ``run.py serve`` processes on one database, as a large team runs the CRM.

    .venv/bin/python -m benchmarks.bench_pop_cluster [--processes 3] [--clients 500]
        [--speed 1] [--copies 5] [--loops 1] [--tabs 50] [--client-procs 1] [--details]

One PBX link (office ``east``: alice on 101, bob on 102) is consumed by whichever
process takes its lock; the SSE clients are spread evenly over every process, so most
pops cross processes (PostgreSQL LISTEN/NOTIFY, ``crm.fanout``) before reaching their
browser.  PBX, servers and clients are separate processes, as in ``bench_pop``; the
figures are split by whether the client sat on the link's process or another.
``--client-procs`` spreads the clients over processes as in ``bench_pop`` (say which
with every figure); ``--details`` prints the latency by second and the clients' pauses
(the servers are ``run.py`` processes: their stages are not stamped here).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from benchmarks import bench_pop, harness, pop_stages  # noqa: E402
from benchmarks.harness import percentile as _pct  # noqa: E402
from benchmarks.pop_stages import by_second  # noqa: E402
from crm.policy import LeadPolicy  # noqa: E402
from crm.services import CrmService  # noqa: E402
from crm.store import open_store  # noqa: E402
from crm.store.postgres import split_url  # noqa: E402
from tests.crm.pg import session_database  # noqa: E402
from tests.scale.cluster import EAST, Cluster, Office, Proc, link_holder  # noqa: E402
from web.eventloop import install  # noqa: E402

REPS = {"alice": "101", "bob": "102"}


async def start_servers(
    cluster: Cluster,
    processes: int,
    offices: Iterable[tuple[Office, Iterable[tuple[str, str]]]],
    password: str,
) -> list[Proc]:
    """The cluster's database migrated and seeded (each office's link, its reps in its
    team), then ``processes`` ``run.py serve`` processes, each answering its health check.
    Shared with ``bench_scale``."""
    cluster.migrate()
    store = await open_store(cluster.pg_url, migrate=False)
    try:
        service = CrmService(store, LeadPolicy())
        for office, reps in offices:
            link = await store.ensure_pbx_link(office.link, office.team)
            for username, ext in reps:
                await service.create_user(username, username.title(), password, "rep", [ext],
                                          team_id=link.team_id)  # fmt: skip
    finally:
        await store.close()
    procs = [cluster.spawn() for _ in range(processes)]
    for proc in procs:
        await cluster.wait_healthy(proc)
    return procs


async def _count_calls(url: str) -> int:
    dsn, schema = split_url(url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or "public"})
    try:
        return int(await conn.fetchval("SELECT count(*) FROM calls"))
    finally:
        await conn.close()


async def _written_pops(url: str) -> list[tuple[float, float]]:
    """A server's own figure of its pops (``crm_screen_pop_latency_seconds``: from its
    link reading the event, in whichever process, to the frame written to the browser's
    socket), as (bucket's upper bound in ms, pops at most that late): with the clients'
    figures it tells a server that wrote late from clients that read late."""
    import aiohttp

    name = "crm_screen_pop_latency_seconds_bucket"
    out = []
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(name + "{"):
                bound = line.split('le="', 1)[1].split('"', 1)[0]
                out.append((float(bound) * 1000, float(line.rsplit(" ", 1)[1])))
    return out


def _bucket_of(buckets: list[tuple[float, float]], share: float) -> float:
    """The upper bound of the bucket the ``share`` (0-1) of the pops falls in."""
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if count >= share * total:
            return bound
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (``/proc``)."""
    return harness.proc_cpu(Path(f"/proc/{pid}/stat"))


async def _wait_holder(url: str, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = await link_holder(url, EAST.link)
        if holder:
            return holder
        await asyncio.sleep(0.2)
    raise TimeoutError("no process took the PBX link")


def _stamp_servers(cluster: Cluster, work: Path) -> Path:
    """Start every server with ``pop_stages.SITE`` as its ``sitecustomize``: each writes
    its pops' stamps to ``work/stages/<pid>.json``."""
    site = work / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(pop_stages.SITE)
    out = work / "stages"
    out.mkdir()
    env = cluster._env

    def stamped() -> dict[str, str]:
        return {**env(), "PYTHONPATH": str(site), "POP_STAGES_OUT": str(out),
                "POP_STAGES_ROOT": str(ROOT)}  # fmt: skip

    cluster._env = stamped  # type: ignore[method-assign]
    return out


async def run(processes: int, clients: int, speed: float, copies: int, loops: int,
              stagger: float, tabs: int, db: str, readers: str = "raw",
              client_procs: int = 1, details: bool = False) -> dict[str, Any]:  # fmt: skip
    ctx = mp.get_context("spawn")
    pbx_conn, pbx = harness.spawn(ctx, bench_pop._pbx_child, copies, stagger, speed, loops)
    group: bench_pop.Clients | None = None
    url = f"{db}?schema=pop_{processes}_{int(time.time() * 1000) % 10**9}"
    work = Path(tempfile.mkdtemp(prefix="bench-pop-cluster-"))
    try:
        _, port = pbx_conn.recv()
        cluster = Cluster(work, url, [(EAST, port)], retry=1.0)
        stamps = _stamp_servers(cluster, work) if details else None
        try:
            offices = [(EAST, REPS.items())]
            procs = await start_servers(cluster, processes, offices, harness.PASSWORD)
            holder = await _wait_holder(url)
            users = [list(REPS)[i % len(REPS)] for i in range(clients)]
            bases = [proc.url for proc in procs]
            group = bench_pop.Clients(ctx, client_procs, bases, users, tabs, readers)
            await group.ready()
            expected_calls = 20 * copies * loops
            cpu0 = {p.pid: _cpu_seconds(p.pid) for p in procs}
            m0 = time.monotonic()
            t0 = time.perf_counter()
            group.go()
            pbx_conn.send("go")
            done: tuple[Any, ...] | None = None
            written = 0
            deadline = t0 + 120 + 40 * loops / max(speed, 0.1)
            while time.perf_counter() < deadline:
                await asyncio.sleep(0.25)
                if done is None and pbx_conn.poll():
                    done = pbx_conn.recv()
                if done is not None:
                    written = await _count_calls(url)
                    if written >= expected_calls:
                        break
            await asyncio.sleep(1.0)  # the last pops in flight
            elapsed = time.perf_counter() - t0
            m1 = time.monotonic()
            server_buckets = [await _written_pops(proc.url) for proc in procs]
            cpu = {p.pid: _cpu_seconds(p.pid) - cpu0[p.pid] for p in procs}
            got = await group.stop()
            receipts, clients_cpu = got["receipts"], got["cpu"]
            servers: list[Any] = []
            if stamps is not None:
                await asyncio.sleep(1.0)  # the servers' last stamps written
                servers = [pop_stages.load_server(str(stamps / f"{p.pid}.json")) for p in procs]
        finally:
            cluster.stop_all()
        pbx_conn.send("stop")
        shutil.rmtree(work, ignore_errors=True)  # kept (servers' logs) when a run fails
    finally:
        harness.reap(pbx, *(group.procs if group is not None else ()))
    ring_at: dict[tuple[str, str], float] = done[3] if done else {}
    tabs_of = {u: users.count(u) for u in set(users)}
    local, remote = [], []
    over_time = []
    split_in = []  # server, linkedid, extension, client port, read at
    holder_index = [p.pid for p in procs].index(holder) if holder in cpu else -1
    for i, user, lid, at in receipts:
        t = ring_at.get((lid, REPS[user]))
        if t is not None:
            (local if i % len(procs) == holder_index else remote).append((at - t) * 1000)
            over_time.append((t, (at - t) * 1000))
            split_in.append((i % len(procs), lid, REPS[user], got["ports"].get(i, -1), at))
    every = local + remote
    expected_pops = sum(tabs_of[u] for u in tabs_of for (_, ext) in ring_at if ext == REPS[u])
    return {
        "processes": processes, "clients": clients, "speed": speed, "seconds": elapsed,
        "calls_expected": expected_calls, "calls_written": written,
        "pops_expected": expected_pops, "pops_received": len(every),
        "p50": _pct(every, 50), "p99": _pct(every, 99), "max": max(every, default=float("nan")),
        "local": (len(local), _pct(local, 50), _pct(local, 99)),
        "remote": (len(remote), _pct(remote, 50), _pct(remote, 99)),
        "server_cpu": sum(cpu.values()), "holder_cpu": cpu.get(holder, 0.0),
        "clients_cpu": clients_cpu, "load": os.getloadavg()[0], "readers": readers,
        "client_procs": client_procs, "by_second": by_second(over_time, m0),
        "remote_split": _split_by_server(servers, split_in, ring_at, holder_index)
        if servers else None,
        "server_written": [
            (p.pid == holder, int(b[-1][1]) if b else 0, _bucket_of(b, 0.5), _bucket_of(b, 0.99))
            for p, b in zip(procs, server_buckets, strict=True)
        ],
        "client_pauses": bench_pop.client_pauses(got, m0, m1),
    }  # fmt: skip


def _split_by_server(servers: list[Any], split_in: list[Any], ring_at: dict[Any, float],
                     holder_index: int) -> dict[str, Any]:  # fmt: skip
    """The stages of the pops read from the link's process and from the others."""
    local = [r for r in split_in if r[0] == holder_index]
    others = [r for r in split_in if r[0] != holder_index]
    return {"the link's process": pop_stages.split_remote(servers, local, ring_at),
            "the others": pop_stages.split_remote(servers, others, ring_at),
            "the others, the fan-out's hop": pop_stages.split_hop(servers[holder_index],
                                                                 servers, others)}  # fmt: skip


def _fmt(r: dict[str, Any]) -> str:
    n_l, l50, l99 = r["local"]
    n_r, r50, r99 = r["remote"]
    return (
        (
            f"postgresql {r['speed']:>4g}x {r['clients']:>4} SSE clients on {r['processes']} "
            f"processes  pop p50/p99/max {r['p50']:.1f}/{r['p99']:.1f}/{r['max']:.1f} ms  pops "
            f"{r['pops_received']}/{r['pops_expected']}  calls {r['calls_written']}/"
            f"{r['calls_expected']}  in {r['seconds']:.1f} s\n"
            f"{'':16}on the link's process: {n_l} pops p50/p99 {l50:.1f}/{l99:.1f} ms; "
            f"on the others: {n_r} pops p50/p99 {r50:.1f}/{r99:.1f} ms\n"
            f"{'':16}CPU: servers {r['server_cpu']:.1f} s (the link's {r['holder_cpu']:.1f} s), "
            f"clients {r['clients_cpu']:.1f} s; "
        )
        + bench_pop.conditions(r)
        + " (servers: run.py serve)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--clients", type=int, default=500)
    bench_pop.add_replay_arguments(ap, speed=1.0, copies=5, loops=1, tabs=50)
    args = ap.parse_args(argv)
    install()
    with session_database() as db:
        result = asyncio.run(run(args.processes, args.clients, args.speed, args.copies,
                                 args.loops, args.stagger, args.tabs, db,
                                 args.readers, args.client_procs,
                                 args.details))  # fmt: skip
    print(_fmt(result), flush=True)
    if args.details:
        print(bench_pop.details(result), flush=True)
        for where, split in (result["remote_split"] or {}).items():
            print(f"{'':16}stages of the pops read from {where} (p50/p99/max ms; mean in the "
                  "slowest 1 %):")  # fmt: skip
            print("\n".join(pop_stages.table_lines(split)), flush=True)
        for link, n, p50, p99 in result["server_written"]:
            print(
                f"{'':16}{'the link' if link else 'another'}'s process wrote {n} pops, "
                f"read to written p50 <= {p50:g} ms, p99 <= {p99:g} ms (its histogram)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
