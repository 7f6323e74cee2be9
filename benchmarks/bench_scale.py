"""Scale-out on PostgreSQL: calls/s and screen-pop latency with 1 and with 3 web processes.

    .venv/bin/python -m benchmarks.bench_scale [--copies 10] [--speed 5]

Real ``run.py serve`` processes on loopback against the local PostgreSQL (a throwaway
database), two replay PBXes (offices ``east`` and ``west``: the 20-call burst capture,
fresh ids per copy), and SSE clients logged in as the four reps on every process.

* calls/s: both PBXes play ``--copies`` bursts as fast as they can; from the first event
  on the wire until every call is in the store.
* pop latency: both PBXes play at ``--speed``; for each (client, call) pop, from the
  wire time of the call's latest AMI event sent before the pop arrived, to the SSE
  message at the client.  With 3 processes most clients sit on a process that does not
  hold the link, so their pops cross processes through LISTEN/NOTIFY.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from ami_bridge.protocol import Message, first
from ami_bridge.replay_pbx import ReplayPbx
from benchmarks.bench_pop_cluster import _count_calls, start_servers
from tests.crm.pg import session_database
from tests.scale.cluster import (
    EAST,
    PASSWORD,
    REPS,
    WEST,
    Cluster,
    SseClient,
    expected_calls,
    link_holder,
    office_timeline,
    shared_allocator,
)


class WiredPbx(ReplayPbx):
    """A replay PBX that notes when each call's events went out on the wire."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.wire: dict[str, list[float]] = defaultdict(list)
        self.first_at: float | None = None

    def _emit(self, msg: Message, at: float) -> None:
        super()._emit(msg, at)
        now = time.time()
        if self.first_at is None:
            self.first_at = now
        linkedid = msg.get("Linkedid")
        if linkedid:
            self.wire[first(linkedid)].append(now)


async def _until(predicate, timeout: float, step: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(step)


async def run(processes: int, copies: int, speed: float, db: str, with_clients: bool) -> dict:
    url = f"{db}?schema=b_{processes}_{int(time.time() * 1000) % 10**9}_{speed:g}"
    alloc = shared_allocator()
    timelines = {o.link: office_timeline(o, copies, alloc) for o in (EAST, WEST)}
    total = sum(len(expected_calls(tl)) for tl in timelines.values())
    pbxes = {
        link: WiredPbx(tl, speed=speed, loops=1, paused=True) for link, tl in timelines.items()
    }
    for pbx in pbxes.values():
        await pbx.start()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    cluster = Cluster(work, url, [(EAST, pbxes["east"].port), (WEST, pbxes["west"].port)],
                      retry=1.0)  # fmt: skip
    clients: list[SseClient] = []
    try:
        offices = [(office, REPS[office.link]) for office in (EAST, WEST)]
        procs = await start_servers(cluster, processes, offices, PASSWORD)
        await _until(lambda: all(p.clients == 1 for p in pbxes.values()), 30)
        holders = {link: await link_holder(url, link) for link in pbxes}
        if with_clients:
            for proc in procs:
                for office in (EAST, WEST):
                    for username, ext in REPS[office.link]:
                        clients.append(SseClient(username, ext, proc))
            await asyncio.gather(*(c.start() for c in clients))
        for pbx in pbxes.values():
            pbx.resume()
        done_at = 0.0

        async def all_in() -> bool:
            nonlocal done_at
            if await _count_calls(url) >= total:
                done_at = time.time()
                return True
            return False

        await _until(all_in, 600, step=0.05)
        start = min(p.first_at or time.time() for p in pbxes.values())
        result: dict = {
            "processes": processes,
            "calls": total,
            "seconds": done_at - start,
            "calls_per_s": total / (done_at - start),
            "holders": sorted({pid for pid in holders.values() if pid}),
            "pids": [p.pid for p in procs],
        }
        if with_clients:
            await asyncio.sleep(1.0)
            result["latency_ms"] = _latencies(clients, pbxes, procs, holders)
        return result
    finally:
        for client in clients:
            await client.close()
        cluster.stop_all()
        for pbx in pbxes.values():
            await pbx.close()


def _latencies(clients, pbxes, procs, holders) -> dict:  # type: ignore[no-untyped-def]
    local, remote = [], []
    wire: dict[str, list[float]] = {}
    for pbx in pbxes.values():
        wire.update(pbx.wire)
    for client in clients:
        link = "east" if client.extension in ("101", "102") else "west"
        seen: set[str] = set()
        for arrived, msg in client.messages:
            data = msg["data"]
            if msg["kind"] != "call_progress" or not data.get("pop"):
                continue
            lid = data["linkedid"]
            if lid in seen or lid not in wire:
                continue
            seen.add(lid)
            times = wire[lid]
            i = bisect.bisect_right(times, arrived)
            if i == 0:
                continue
            ms = (arrived - times[i - 1]) * 1000
            (local if client.proc.pid == holders[link] else remote).append(ms)

    def stats(xs: list[float]) -> dict:
        if not xs:
            return {"n": 0}
        xs = sorted(xs)
        return {
            "n": len(xs),
            "p50": round(statistics.median(xs), 1),
            "p95": round(xs[int(0.95 * (len(xs) - 1))], 1),
            "max": round(xs[-1], 1),
        }

    return {"same_process": stats(local), "other_process": stats(remote)}


async def main_async(args: argparse.Namespace, db: str) -> None:
    for n in (1, 3):
        tput = await run(n, args.copies, 0.0, db, with_clients=False)
        print(f"{n} process(es): {tput['calls']} calls in {tput['seconds']:.2f} s = "
              f"{tput['calls_per_s']:.1f} calls/s (link holders: {len(tput['holders'])})",
              flush=True)  # fmt: skip
        lat = await run(n, args.latency_copies, args.speed, db, with_clients=True)
        for where, st in lat["latency_ms"].items():
            if st["n"]:
                print(f"{n} process(es): pop latency ({where}) n={st['n']} p50={st['p50']} ms "
                      f"p95={st['p95']} ms max={st['max']} ms", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=10, help="bursts per PBX for calls/s")
    ap.add_argument("--latency-copies", type=int, default=2, help="bursts per PBX for latency")
    ap.add_argument("--speed", type=float, default=5.0, help="replay speed for latency")
    args = ap.parse_args()
    with session_database() as db:
        asyncio.run(main_async(args, db))


if __name__ == "__main__":
    main()
