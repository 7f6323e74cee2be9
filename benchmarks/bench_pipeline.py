"""The whole pipeline, sustained: replay PBX -> TCP -> link -> tracker -> holding sink
(batched writes) -> store -> event bus -> live hub -> SSE -> a browser, at a rate of
calls per second, with every call exactly once at the end.

    .venv/bin/python -m benchmarks.bench_pipeline [--engine sqlite|postgresql|both]
        [--rates 100,300,400] [--seconds 20] [--modes single,batched] [--reps 10]
        [--tracker-process] [--profile FILE]

The burst capture (20 overlapping calls, 116 AMI events a call) is overlapped with fresh
ids as many times as it takes to offer ``rate`` finished calls per second for
``seconds`` seconds.  Three processes, so no stage's CPU is counted as another's wait:

* the PBX: a replay PBX whose timeline is prepared before the clock starts, every frame
  encoded and the frames due within a millisecond joined into one write (the Python
  replay PBX of ``bench_load`` spends about 50 us of its own CPU per event renaming and
  encoding, which caps it near 18 k events/s = 160 calls/s; a write per event still cost
  1.4 ms a call); it stamps when it wrote each call's last event;
* the CRM: ``bench_load.build_pipeline`` (the link manager's wiring: link row,
  ``live_calls``, journaled holding sink, batched or one transaction per call) with the
  web application on top, as in the CRM process; ``--tracker-process`` runs the link's
  tracker in a process of its own, as ``[ami] tracker_process`` does; on a PostgreSQL
  server with autovacuum off (the local test server) ``harness.autovacuum_stand_in``
  analyses the tables as autovacuum's rule would, every naptime: a production database
  has autovacuum, and without statistics the lookups of a batch's calls scanned every
  call of the link (printed when it ran);
* the browsers: an admin's ``/events`` stream (every call's ``call_recorded``) plus
  ``--reps`` reps' streams (their screen pops).  The admin's reads are kept with their
  time and parsed after the run, the reps' only counted: on the CRM's own two CPUs,
  parsing every message as it came cost the simulated browsers 1 ms a call.

Printed per run: calls/s offered by the PBX and delivered to the admin's browser (from
the first call delivered to the last), the same two over the middle 80 % of the calls
("steady": the first and last second ramp up and down, since a copy's 20 calls end
over about a second, so even a PBX and a CRM that keep up exactly show about 274 over
the whole of a 10 s run at 300 asked; the PBX offered what was asked when it played
the timeline in the time scheduled, also printed), the CPU seconds each process spent per call
(what counts on a shared machine: the CRM's must stay below one core), the lag from
the PBX writing a call's last event to the browser reading that it was recorded
(p50/p99/max), the link's largest backlog, and the exactly-once check: every call
delivered to the browser once, and one row each; then the CRM process's CPU by thread
(its event loop, the SQLite connections' threads) and how busy its event loop was.
"Sustained" means the lag stays flat (the p99 is not the length of the run) and nothing
is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ami_bridge.capture import read_capture  # noqa: E402
from ami_bridge.protocol import Message, encode_action  # noqa: E402
from ami_bridge.replay_pbx import ReplayPbx  # noqa: E402
from benchmarks import bench_pop, harness  # noqa: E402
from benchmarks.bench_load import BURST, _database, build_pipeline, overlapped  # noqa: E402
from benchmarks.harness import percentile as _pct  # noqa: E402
from crm.batching import MAX_CALLS  # noqa: E402
from web.eventloop import install  # noqa: E402

CALLS_PER_COPY = 20


def cpu_seconds() -> float:
    """This process's CPU time, every thread (the SQLite driver's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int | None) -> float:
    """Another process's CPU seconds so far (the tracker process), from /proc."""
    if pid is None:
        return 0.0
    try:
        return harness.proc_cpu(Path(f"/proc/{pid}/stat"))
    except OSError:
        return 0.0


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads, by name (/proc; threads of one name summed)."""
    import re
    import threading

    names = {t.native_id: re.sub(r"[_-]?\d+", "", t.name) for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            cpu = harness.proc_cpu(task / "stat")
        except OSError:
            continue
        name = names.get(int(task.name), "other")
        out[name] = out.get(name, 0.0) + cpu
    return out


def steady_rate(times: Sequence[float], share: float = 0.8) -> float:
    """Calls a second over the middle ``share`` of the calls, by time: the rate held
    once the first copies are through and before the last ones wind down."""
    ordered = sorted(times)
    if len(ordered) < 10:
        return 0.0
    lo = int(len(ordered) * (1 - share) / 2)
    hi = len(ordered) - 1 - lo
    span = ordered[hi] - ordered[lo]
    return (hi - lo) / span if span > 0 else 0.0


def copies_for(rate: float, seconds: float) -> int:
    return max(1, round(rate * seconds / CALLS_PER_COPY))


def timeline(rate: float, seconds: float) -> tuple[list[tuple[Message, float]], int, float]:
    """Copies of the burst with fresh ids, started so that ``rate`` calls a second end
    for ``seconds`` seconds (once the first copies are through); the items, the number
    of calls, and the speed to play them at (capture time runs ``speed`` times faster)."""
    events = [(m, at) for m, at in read_capture(BURST) if "Event" in m]
    span = events[-1][1] - events[0][1]
    # A copy's 20 calls end over about its span: play at a speed where a copy takes ~1 s
    # and start copies 20/rate seconds apart.
    speed = max(1.0, span / 1.0)
    copies = copies_for(rate, seconds)
    stagger = CALLS_PER_COPY / rate * speed  # in capture seconds
    return overlapped(BURST, copies, stagger), copies * CALLS_PER_COPY, speed


Group = tuple[float, bytes, int, list[str]]


class EncodedPbx(ReplayPbx):
    """The replay PBX with its timeline prepared up front: every frame encoded, and the
    frames due within the same millisecond joined into one write, stamping when each
    call's last event was written.  A real PBX is another machine; this one shares the
    CRM's two CPUs, so it is made as cheap as it can be (a write and a timeline step per
    event cost it 1.4 ms of CPU a call, about a fifth of what the CRM spends); the CRM
    reads the same bytes in the same order at the same times, to the millisecond."""

    GROUP = 0.001

    def __init__(self, items: list[tuple[Message, float]], **kwargs: Any) -> None:
        super().__init__(items, **kwargs)
        self.last_event: dict[str, float] = {}
        self.cpu_at_go = cpu_seconds()
        self._groups = self._prepare([(m, at) for m, at in self._timeline_items()])

    def _prepare(self, timed: list[tuple[Message, float]]) -> list[Group]:
        """(seconds after the start, the frames' bytes, how many, the linkedids in them)."""
        groups: list[Group] = []
        if not timed:
            return groups
        first_at = timed[0][1]
        frames: list[bytes] = []
        linkedids: list[str] = []
        due = 0.0
        for msg, at in timed:
            offset = (at - first_at) / self.speed
            if frames and offset - due >= self.GROUP:
                groups.append((due, b"".join(frames), len(frames), linkedids))
                frames, linkedids = [], []
            if not frames:
                due = offset
            frames.append(encode_action(msg))
            linkedid = msg.get("Linkedid")
            if isinstance(linkedid, str):
                linkedids.append(linkedid)
        groups.append((due, b"".join(frames), len(frames), linkedids))
        return groups

    def resume(self) -> None:
        self.cpu_at_go = cpu_seconds()  # the replay's own CPU, not the encoding's
        super().resume()

    async def _timeline(self) -> None:
        loop = asyncio.get_running_loop()
        await self._running.wait()
        start = loop.time()
        for due, data, count, linkedids in self._groups:
            delay = start + due - loop.time()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            for session in tuple(self._sessions):
                if session.logged_in and session.events_on and not session.muted:
                    session.send_bytes(data)
            self.played += count
            now = time.monotonic()
            for linkedid in linkedids:
                self.last_event[linkedid] = now
        self._done.set()


def _pbx_child(conn: Connection, rate: float, seconds: float) -> None:
    install()

    async def main() -> None:
        items, _calls, speed = timeline(rate, seconds)
        pbx = EncodedPbx(items, speed=speed, loops=1, paused=True)
        scheduled = (items[-1][1] - items[0][1]) / speed if items else 0.0
        await harness.play_on_cue(
            conn, pbx, lambda seconds: (pbx.played, seconds, pbx.last_event,
                                        cpu_seconds() - pbx.cpu_at_go, scheduled),
            step=0.02)  # fmt: skip

    asyncio.run(main())


RECORDED = b'"kind":"call_recorded"'
PROGRESS = b'"kind":"call_progress"'


class _Counter:
    """Counts a marker in a stream read in chunks (one cut across two reads too)."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.count = 0
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        data = self._tail + chunk
        self.count += data.count(self.marker)
        self._tail = data[-(len(self.marker) - 1) :]


def recorded_calls(reads: list[tuple[float, bytes]]) -> list[tuple[str, float]]:
    """The admin's ``call_recorded`` messages, each with the time of the read that
    completed it (parsed after the run, as ``bench_pop``'s readers do: parsing while
    reading cost the simulated browsers more CPU than the server spent, on the same
    two CPUs)."""
    out: list[tuple[str, float]] = []
    lines = harness.SseLines()
    for at, chunk in reads:
        for line in lines.feed(chunk):
            if line.startswith(b"data: ") and RECORDED in line:
                call = (json.loads(line[6:]).get("data") or {}).get("call") or {}
                out.append((str(call.get("linkedid")), at))
    return out


def _clients_child(conn: Connection, base: str, users: list[str]) -> None:
    """One SSE stream per user; the first is the admin's, whose reads are kept with their
    time and parsed after the run; the reps' streams count their pops."""
    import aiohttp

    install()

    async def main() -> None:
        reads: list[tuple[float, bytes]] = []
        recorded = _Counter(RECORDED)
        pops = [_Counter(PROGRESS) for _ in users]
        stop = asyncio.Event()
        ready = 0

        async def client(i: int, username: str) -> None:
            nonlocal ready
            jar = aiohttp.CookieJar(unsafe=True)
            timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
            async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as s:
                await harness.login(s, base, username)
                async with s.get(f"{base}/events") as resp:
                    assert resp.status == 200, resp.status
                    ready += 1
                    while not stop.is_set():
                        try:
                            async with asyncio.timeout(0.5):
                                chunk = await resp.content.readany()
                        except TimeoutError:
                            continue
                        if not chunk:
                            break
                        if i == 0:
                            reads.append((time.monotonic(), chunk))
                            recorded.feed(chunk)
                        else:
                            pops[i].feed(chunk)

        tasks = [asyncio.create_task(client(i, u)) for i, u in enumerate(users)]
        await harness.until_ready(tasks, lambda: ready >= len(users))
        conn.send(("ready", len(users)))
        cpu0 = cpu_seconds()
        loop = asyncio.get_running_loop()
        while not conn.poll():
            await asyncio.sleep(0.1)
            conn.send(("count", recorded.count))
        await loop.run_in_executor(None, conn.recv)  # "stop"
        stop.set()
        await harness.cancel_all(tasks)
        cpu = cpu_seconds() - cpu0
        conn.send(("recorded", recorded_calls(reads), sum(c.count for c in pops), cpu))

    asyncio.run(main())


async def _serve(pipe: Any, work: Path, reps: int) -> tuple[Any, int, list[str]]:
    names = ("alice", "bob", "carol")  # the capture's phones 101, 102, 103
    made = [("boss", "admin", []), *((name, "rep", [str(101 + n)]) for n, name in enumerate(names))]
    _rt, runner, port = await harness.serve_pipeline(pipe, work, made)
    users = ["boss", *(names[n % len(names)] for n in range(reps))]  # tabs
    return runner, port, users


async def run(
    engine: str, rate: float, seconds: float, batch: bool, reps: int,
    batch_calls: int = MAX_CALLS, profile: str | None = None, tracker_process: bool = False,
) -> dict[str, Any]:  # fmt: skip
    ctx = mp.get_context("spawn")
    pbx_conn, pbx = harness.spawn(ctx, _pbx_child, rate, seconds)
    cl_proc = None
    try:
        _, port = pbx_conn.recv()
        expected = copies_for(rate, seconds) * CALLS_PER_COPY
        async with _database(engine) as url, harness.autovacuum_stand_in(url) as analysed:
            pipe = await build_pipeline(
                url, "127.0.0.1", port, batch=batch, batch_calls=batch_calls,
                tracker_process=tracker_process,
            )  # fmt: skip
            with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
                runner, web_port, users = await _serve(pipe, Path(tmp), reps)
                await pipe.link.start()
                await pipe.link.wait_state("connected", timeout=10)
                base = f"http://127.0.0.1:{web_port}"
                cl_conn, cl_proc = harness.spawn(ctx, _clients_child, base, users)
                await harness.reply(cl_conn)  # ready
                worker = getattr(pipe.tracker, "worker", None)
                t0, cpu0, main0 = time.perf_counter(), cpu_seconds(), time.thread_time()
                threads0 = thread_cpu()
                wcpu0 = process_cpu(worker.pid) if worker is not None else 0.0
                profiler = bench_pop.start_profiler(profile)
                pbx_conn.send("go")
                done: tuple[Any, ...] | None = None
                delivered = 0
                max_backlog = 0
                deadline = t0 + 60 + 3 * seconds
                while time.perf_counter() < deadline:
                    await asyncio.sleep(0.05)
                    pending = pipe.holding.batcher.pending if pipe.holding.batcher else 0
                    max_backlog = max(max_backlog, pipe.link._facts.qsize() + pending)
                    while cl_conn.poll():
                        msg = cl_conn.recv()
                        if msg[0] == "count":
                            delivered = msg[1]
                    if done is None and pbx_conn.poll():
                        done = pbx_conn.recv()
                    if done is not None and delivered >= expected:
                        break
                crm_cpu = cpu_seconds() - cpu0
                main_cpu, wall = time.thread_time() - main0, time.perf_counter() - t0
                threads = {k: v - threads0.get(k, 0.0) for k, v in thread_cpu().items()}
                tracker_cpu = process_cpu(worker.pid) - wcpu0 if worker is not None else 0.0
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(profile)
                await asyncio.sleep(0.5)  # anything late, or twice
                cl_conn.send("stop")
                result: tuple[Any, ...] = ("",)
                while result[0] != "recorded":
                    result = await asyncio.get_running_loop().run_in_executor(None, cl_conn.recv)
                _, recorded, pops, clients_cpu = result
                rows = await pipe.store.count_calls()
                counters = pipe.counters
                await harness.close_pipeline(runner, pipe)
        pbx_conn.send("stop")
    finally:
        harness.reap(pbx, cl_proc)
    last_event: dict[str, float] = done[3] if done else {}
    per_call = Counter(lid for lid, _ in recorded)
    lags = [(at - last_event[lid]) * 1000 for lid, at in recorded if lid in last_event]
    times = sorted(at for _, at in recorded)
    window = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "engine": engine, "batch": batch, "rate": rate, "expected": expected,
        "offered": expected / done[2] if done and done[2] else 0.0,
        "events": done[1] if done else 0, "pbx_seconds": done[2] if done else float("nan"),
        "scheduled": done[5] if done else float("nan"),
        "delivered": len(per_call), "twice": sum(1 for n in per_call.values() if n > 1),
        "rows": rows, "written": counters.written,
        "calls_s": (len(times) - 1) / window if window else 0.0,
        "offered_steady": steady_rate(list(last_event.values())),
        "steady": steady_rate(times),
        "crm_cpu_ms": crm_cpu * 1000 / max(1, len(per_call)),
        "tracker_cpu_ms": tracker_cpu * 1000 / max(1, len(per_call)),
        "main_cpu_ms": main_cpu * 1000 / max(1, len(per_call)),
        "main_busy": main_cpu / wall if wall else 0.0,
        "threads": {k: v * 1000 / max(1, len(per_call)) for k, v in threads.items() if v},
        "tracker_process": tracker_process,
        "pbx_cpu_ms": (done[4] if done else 0.0) * 1000 / expected,
        "clients_cpu_ms": clients_cpu * 1000 / expected,
        "lag_p50": _pct(lags, 50), "lag_p99": _pct(lags, 99), "lag_max": max(lags, default=0.0),
        "backlog": max_backlog, "pops": pops, "reps": reps, "analysed": Counter(analysed),
    }  # fmt: skip


def _fmt(r: dict[str, Any]) -> str:
    ok = r["delivered"] == r["expected"] == r["rows"] and not r["twice"]
    mode = "batched" if r["batch"] else "one per call"
    return (
        f"{r['engine']:10} {mode:>12}  asked {r['rate']:>4g} calls/s: offered "
        f"{r['offered']:>5.0f}, delivered to the browser {r['calls_s']:>5.0f} calls/s; "
        f"lag p50/p99/max {r['lag_p50']:.0f}/{r['lag_p99']:.0f}/{r['lag_max']:.0f} ms; "
        f"backlog<= {r['backlog']}\n"
        f"{'':12}steady (middle 80 %): offered {r['offered_steady']:.0f}, delivered "
        f"{r['steady']:.0f} calls/s; CPU per call: CRM {r['crm_cpu_ms']:.2f} ms (its event "
        f"loop {r['main_cpu_ms']:.2f} ms, busy {100 * r['main_busy']:.0f} % of the run)"
        + (f" + its tracker process {r['tracker_cpu_ms']:.2f} ms" if r["tracker_process"] else "")
        + f", PBX {r['pbx_cpu_ms']:.2f} ms, browsers {r['clients_cpu_ms']:.2f} ms\n"
        f"{'':12}{r['events']:,} events in {r['pbx_seconds']:.2f} s (scheduled "
        f"{r['scheduled']:.2f} s: the PBX kept up if these agree); exactly once: "
        f"{'OK' if ok else 'FAIL'} (calls {r['expected']}, in the browser {r['delivered']}, "
        f"twice {r['twice']}, rows {r['rows']}); {r['reps']} reps read {r['pops']} pops; "
        f"every process on {r['loop']}\n"
        f"{'':12}the CRM's threads, CPU ms a call: "
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["threads"].items(), key=lambda kv: -kv[1]))
        + (
            f"\n{'':12}the server's autovacuum is off: analysed as its rule says (tables x "
            "times): " + ", ".join(f"{k} x{n}" for k, n in sorted(r["analysed"].items()))
            if r["analysed"]
            else ""
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--rates", default="300", help="calls per second asked, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long each rate is held")
    ap.add_argument("--modes", default="batched", help="single, batched, or both")
    ap.add_argument("--reps", type=int, default=10, help="reps' SSE streams besides the admin")
    ap.add_argument("--batch-calls", type=int, default=MAX_CALLS, help="calls per transaction")
    ap.add_argument("--profile", help="write a cProfile of the CRM's event loop to this file")
    ap.add_argument("--tracker-process", action="store_true",
                    help="run the link's tracker in a process of its own ([ami] tracker_process)")
    args = ap.parse_args(argv)
    modes = [m.strip() == "batched" for m in args.modes.split(",") if m.strip()]
    loop = install()  # the CRM's loop as ``run.py serve`` runs it
    for engine in harness.engines(args.engine):
        for rate in (float(x) for x in args.rates.split(",")):
            for batch in modes:
                with contextlib.suppress(KeyboardInterrupt):
                    job = run(engine, rate, args.seconds, batch, args.reps, args.batch_calls,
                              args.profile, args.tracker_process)  # fmt: skip
                    result = asyncio.run(job)
                    result["loop"] = loop
                    print(_fmt(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
