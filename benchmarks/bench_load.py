"""Load: recorded Asterisk traffic, many times over with fresh ids, through the live link into
the CRM, on SQLite and PostgreSQL, at increasing speed.

    .venv/bin/python -m benchmarks.bench_load [--engine sqlite|postgresql|both]
        [--speeds 1,10,50] [--copies 25] [--loops 2] [--stagger 0.2]

The burst capture (20 overlapping calls) is overlapped ``--copies`` times, each copy
``--stagger`` seconds after the previous with its own uniqueids, channels and bridges,
so 25 copies put 500 calls up at once; the replay PBX plays that ``--loops`` times (fresh
ids per loop) at each speed.  The PBX runs in a child process, so its CPU is not the
bridge's; the bridge (AmiLink -> CallTracker -> Ingest -> store) runs here, as in the
CRM process.

Printed per run: events/s offered by the PBX and taken by the link, calls/s written,
the sink's backlog, the peak of live calls, write latency, memory over time, and the
exactly-once check (every call delivered once and one row per call).  The stage that
falls behind first is named: the PBX's send buffer growing means the receive path
(parsing + tracker) is the limit; the link's fact queue growing means the store is.

To add a stage (SSE clients, screen-pop latency): ``build_pipeline(...,
extra_sinks=[...])`` feeds every fact to more sinks, and ``pipeline.bus`` is the CRM's
event bus that the web layer's SSE handlers subscribe to; ``run_load`` takes a
``stage`` factory that gets the pipeline and returns counters to print.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ami_bridge.capture import read_capture  # noqa: E402
from ami_bridge.facts import CallRecord, Fact  # noqa: E402
from ami_bridge.link import AmiLink, LinkSettings  # noqa: E402
from ami_bridge.profile import PbxProfile  # noqa: E402
from ami_bridge.protocol import Message  # noqa: E402
from ami_bridge.replay import replay_facts  # noqa: E402
from ami_bridge.replay_pbx import IdAllocator, ReplayPbx  # noqa: E402
from ami_bridge.tracker import CallTracker  # noqa: E402
from ami_bridge.tracker_process import TrackerProcess  # noqa: E402
from benchmarks.harness import engines, play_on_cue  # noqa: E402
from crm.batching import MAX_CALLS, MAX_WAIT  # noqa: E402
from crm.events import EventBus  # noqa: E402
from crm.holding import HoldingSink  # noqa: E402
from crm.ingest import Ingest, LiveSnapshot  # noqa: E402
from crm.lanes import CallLanes  # noqa: E402
from crm.policy import LeadPolicy  # noqa: E402
from crm.store import Store, open_store  # noqa: E402

BURST = ROOT / "tests/fixtures/asterisk-22/11-burst-20-concurrent/raw.ami"
PG_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
Sink = Callable[[Fact], Awaitable[object] | object]


# --------------------------------------------------------------------------- traffic


def overlapped(path: Path, copies: int, stagger: float) -> list[tuple[Message, float]]:
    """``copies`` of a capture, each ``stagger`` s after the last, with fresh ids each."""
    events = [(m, at) for m, at in read_capture(path) if "Event" in m]
    alloc = IdAllocator()
    alloc.observe(m for m, _ in events)
    out: list[tuple[Message, float]] = []
    for n in range(copies):
        renamer = alloc.renamer() if n else None
        out += [(renamer.rename(m) if renamer else m, at + n * stagger) for m, at in events]
    out.sort(key=lambda item: item[1])  # stable: each copy keeps its own order
    return out


def peak_concurrency(items: Sequence[tuple[Message, float]]) -> int:
    """Most calls (linkedids with a live channel) up at once in the played traffic."""
    live: Counter[str] = Counter()
    chan_call: dict[str, str] = {}
    peak = 0
    for msg, _ in items:
        event = msg.get("Event")
        if event == "Newchannel":
            uid, lid = str(msg.get("Uniqueid")), str(msg.get("Linkedid"))
            chan_call[uid] = lid
            live[lid] += 1
        elif event == "Hangup":
            lid = chan_call.pop(str(msg.get("Uniqueid")), "")
            if lid:
                live[lid] -= 1
                if live[lid] <= 0:
                    del live[lid]
        peak = max(peak, len(live))
    return peak


def _pbx_child(conn: Connection, copies: int, stagger: float, speed: float, loops: int) -> None:
    """The replay PBX, in its own process: port out, "go" in, figures out."""

    async def main() -> None:
        items = overlapped(BURST, copies, stagger)
        pbx = ReplayPbx(items, speed=speed, loops=loops, paused=True, loop_gap=1.0)
        max_buffer = 0

        def watch() -> None:
            nonlocal max_buffer
            for s in list(pbx._sessions):
                if s.transport is not None:
                    max_buffer = max(max_buffer, s.transport.get_write_buffer_size())

        await play_on_cue(conn, pbx, lambda seconds: (pbx.played, seconds, max_buffer),
                          hello=(len(items),), step=0.02, watch=watch)  # fmt: skip

    asyncio.run(main())


# --------------------------------------------------------------------------- pipeline


# Alike in shape to crm.lead_stats.LeadFigures (a dataclass of zeroed counters): what it
# counts is the benchmark's own, so it stays here.
@dataclass
class Counters:
    facts: int = 0
    records: int = 0
    written: int = 0
    sink_errors: int = 0
    per_call: Counter[str] = field(default_factory=Counter)
    write_ms: list[float] = field(default_factory=list)
    first_write: float | None = None
    last_write: float | None = None


@dataclass
class Pipeline:
    """Everything between the PBX socket and the database, as the CRM process wires it."""

    store: Store
    bus: EventBus
    ingest: Ingest
    tracker: CallTracker
    link: AmiLink
    counters: Counters
    holding: HoldingSink
    sink: Sink
    """What the link hands every fact to (counting, then the holding sink)."""
    lanes: CallLanes | None = None

    async def close(self) -> None:
        await self.link.stop()
        if self.lanes is not None:
            await self.lanes.close()
        await self.holding.close()
        await self.store.close()
        status = self.holding.status  # read once, not per fact: it is not free
        self.counters.sink_errors = status.retries + status.live_dropped


async def build_pipeline(
    url: str,
    host: str,
    port: int,
    extra_sinks: Sequence[Sink] = (),
    *,
    batch: bool = True,
    batch_calls: int = MAX_CALLS,
    batch_wait: float = MAX_WAIT,
    tracker_process: bool = False,
) -> Pipeline:
    """Store + ingest + holding sink + tracker + link, wired as the link manager wires a
    PBX link (``web.linkmanager``): the link's row, calls in progress kept in
    ``live_calls``, finished calls through a journaled ``HoldingSink``, batched
    (``batch=False``: one transaction per call and per live snapshot, as before
    ``crm.batching``).  A call counts as written once its transaction committed.
    ``tracker_process``: the link's tracker runs in a process of its own
    (``ami_bridge.tracker_process``), as the ``[ami] tracker_process`` setting runs it.
    ``extra_sinks`` get every fact after the ingest (an SSE stage subscribes to
    ``pipeline.bus``)."""
    store = await open_store(url)
    bus = EventBus()
    row = await store.ensure_pbx_link("bench", None)
    policy = LeadPolicy(own_numbers=("5551000",))
    ingest = Ingest(store, policy, bus, pbx_link_id=row.id, keep_live=True)
    counters = Counters()
    tracker: Any = CallTracker(PbxProfile())
    if tracker_process:  # ``[ami] tracker_process``: read, parse and track on another core
        tracker = TrackerProcess(partial(CallTracker, PbxProfile()))
    accepted: dict[str, float] = {}

    def committed(recs: Sequence[CallRecord]) -> None:
        now = time.perf_counter()
        for rec in recs:
            counters.write_ms.append((now - accepted.pop(rec.linkedid, now)) * 1000)
        counters.written += len(recs)
        counters.first_write = counters.first_write or now
        counters.last_write = now

    async def handle(fact: Fact) -> None:
        await ingest.handle(fact)
        if isinstance(fact, CallRecord):
            committed([fact])

    async def write_many(recs: Sequence[CallRecord], live: Sequence[LiveSnapshot]) -> None:
        await ingest.record_many(recs, live)
        committed(recs)

    journal = Path(tempfile.mkdtemp(prefix="bench-held-")) / "held-calls-bench.jsonl"
    holding = HoldingSink(
        handle,
        journal=journal,
        write_many=write_many if batch else None,
        batch_calls=batch_calls,
        batch_wait=batch_wait,
    )
    if batch:
        ingest.defer_live = holding.defer_live
    lanes = CallLanes(holding, ingest.needs_lookup)  # as the link manager puts it in front

    async def sink(fact: Fact) -> None:
        counters.facts += 1
        if isinstance(fact, CallRecord):
            counters.records += 1
            counters.per_call[fact.linkedid] += 1
            accepted.setdefault(fact.linkedid, time.perf_counter())
        await lanes(fact)
        for extra in extra_sinks:
            result = extra(fact)
            if asyncio.iscoroutine(result):
                await result

    settings = LinkSettings(host=host, port=port, username="crm", secret="crmsecret")
    link = AmiLink(settings, tracker, sink)
    return Pipeline(store, bus, ingest, tracker, link, counters, holding, sink, lanes)


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextlib.asynccontextmanager
async def _database(engine: str) -> Any:
    """A fresh database: a temp SQLite file, or a throwaway schema on the local server."""
    if engine == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
            yield f"sqlite:///{tmp}/crm.db"
        return
    import asyncpg

    for base in PG_CANDIDATES:
        try:
            conn = await asyncpg.connect(base, timeout=3)
        except (OSError, asyncpg.PostgresError):
            continue
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        try:
            yield f"{base}?schema={schema}"
        finally:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()
        return
    raise SystemExit("no PostgreSQL answered on 127.0.0.1:5432 (db test)")


@dataclass
class Result:
    engine: str
    batch: bool
    speed: float
    calls_expected: int
    peak_calls_offered: int
    events_played: int
    asked_seconds: float
    """How long the PBX should have taken at this speed (its capture time / speed)."""
    pbx_seconds: float
    pbx_max_send_buffer: int
    link_events: int
    read_seconds: float
    write_seconds: float
    write_window: float
    """Seconds from the first call written to the last: the write rate's denominator."""
    total_seconds: float
    calls_written: int
    rows: int
    duplicates: int
    missing: int
    sink_errors: int
    max_queue: int
    max_live_calls: int
    write_ms_p50: float
    write_ms_p99: float
    rss: list[tuple[float, float]]
    stage: dict[str, object]


async def run_load(
    engine: str,
    speed: float,
    copies: int,
    loops: int,
    stagger: float,
    stage: Callable[[Pipeline], Callable[[], dict[str, object]]] | None = None,
    batch: bool = True,
    batch_calls: int = MAX_CALLS,
) -> Result:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_pbx_child, args=(child, copies, stagger, speed, loops))
    proc.start()
    try:
        _, port, per_loop = parent.recv()
        items = overlapped(BURST, copies, stagger)
        span = items[-1][1] - items[0][1]
        expected = 20 * copies * loops
        async with _database(engine) as url:
            pipe = await build_pipeline(
                url, "127.0.0.1", port, batch=batch, batch_calls=batch_calls
            )
            stage_counters = stage(pipe) if stage else (lambda: {})
            await pipe.link.start()
            await pipe.link.wait_state("connected", timeout=10)
            rss: list[tuple[float, float]] = []
            max_queue = max_live = 0
            pbx_done: tuple[Any, ...] | None = None
            t0 = time.perf_counter()
            read_done: float | None = None
            parent.send("go")
            deadline = t0 + 120 + 40 * loops / max(speed, 0.1)
            last_sample = 0.0
            while time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
                now = time.perf_counter() - t0
                pending = pipe.holding.batcher.pending if pipe.holding.batcher else 0
                max_queue = max(max_queue, pipe.link._facts.qsize() + pending)
                max_live = max(max_live, pipe.tracker.live_calls)
                if now - last_sample >= 1.0:
                    rss.append((now, _rss_mb()))
                    last_sample = now
                if pbx_done is None and parent.poll():
                    pbx_done = parent.recv()
                caught_up = pbx_done is not None and pipe.link.status.events_total >= pbx_done[1]
                if read_done is None and caught_up:
                    read_done = now
                if read_done is not None and pipe.counters.written >= expected:
                    break
            total = time.perf_counter() - t0
            rss.append((total, _rss_mb()))
            c = pipe.counters
            rows = await pipe.store.count_calls()
            link_events = pipe.link.status.events_total
            extra = stage_counters()
            await pipe.close()
        parent.send("stop")
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    per_call = c.per_call
    write_ms = sorted(c.write_ms) or [0.0]
    played = pbx_done[1] if pbx_done else 0
    return (
        Result(
            engine=engine,
            batch=batch,
            speed=speed,
            calls_expected=expected,
            peak_calls_offered=0,
            events_played=played,
            asked_seconds=loops * (span + 1.0) / speed if speed > 0 else 0.0,
            pbx_seconds=pbx_done[2] if pbx_done else float("nan"),
            pbx_max_send_buffer=pbx_done[3] if pbx_done else 0,
            link_events=link_events,
            read_seconds=read_done if read_done is not None else float("nan"),
            write_seconds=(c.last_write or 0) - t0 if c.last_write else float("nan"),
            write_window=(c.last_write or 0) - (c.first_write or 0),
            total_seconds=total,
            calls_written=c.written,
            rows=rows,
            duplicates=sum(1 for n in per_call.values() if n > 1),
            missing=max(0, expected - len(per_call)),
            sink_errors=c.sink_errors,
            max_queue=max_queue,
            max_live_calls=max_live,
            write_ms_p50=statistics.median(write_ms),
            write_ms_p99=write_ms[min(len(write_ms) - 1, int(len(write_ms) * 0.99))],
            rss=rss,
            stage=extra,
        )
        if per_loop
        else _empty(engine, speed)
    )


def _empty(engine: str, speed: float) -> Result:
    raise SystemExit(f"{engine} {speed}x: the PBX had no events to play")


def bottleneck(r: Result) -> str:
    """Which stage fell behind first (see the module docstring)."""
    if r.missing or r.duplicates or r.sink_errors:
        return "CORRECTNESS: calls missing/duplicated/failed"
    offered = r.events_played / r.pbx_seconds if r.pbx_seconds else 0.0
    notes = ""
    if r.asked_seconds and r.pbx_seconds > 1.2 * r.asked_seconds + 0.5:
        asked = r.events_played / r.asked_seconds
        notes = f" (the replay PBX itself offered only {offered:,.0f} of {asked:,.0f} ev/s asked)"
    read_lag = r.read_seconds - r.pbx_seconds
    write_lag = r.write_seconds - r.read_seconds
    if r.pbx_max_send_buffer > 1_000_000 or read_lag > 0.25 * r.pbx_seconds + 1:
        return (
            f"receive path (parse+tracker): reads {read_lag:.1f} s behind at "
            f"{offered:,.0f} ev/s{notes}"
        )
    if r.max_queue > 500 or write_lag > 2.5:  # 1 s grace + 1 s tick are not lag
        return (
            f"store writes: {r.max_queue} facts queued, writes end {write_lag:.1f} s "
            f"after reads{notes}"
        )
    return "none: kept up" + notes


def _fmt(r: Result) -> str:
    offered = r.events_played / r.pbx_seconds if r.pbx_seconds else 0.0
    taken = r.link_events / r.read_seconds if r.read_seconds else 0.0
    calls_s = r.calls_written / r.write_window if r.write_window > 0 else 0.0
    mem = " ".join(f"{t:.0f}s:{m:.0f}" for t, m in _thin(r.rss, 8))
    ok = "OK" if not r.duplicates and not r.missing and r.rows == r.calls_expected else "FAIL"
    return (
        f"{r.engine:10} {_mode(r.batch):>12} {r.speed:>5g}x  offered {offered:>9,.0f} ev/s"
        f"  taken {taken:>9,.0f} ev/s"
        f"  calls/s {calls_s:>7,.1f}  live<= {r.max_live_calls:>4}  queue<= {r.max_queue:>5}"
        f"  write p50/p99 {r.write_ms_p50:.1f}/{r.write_ms_p99:.1f} ms\n"
        f"{'':17}played {r.events_played:,} events in {r.pbx_seconds:.1f} s; read by "
        f"{r.read_seconds:.1f} s; written by {r.write_seconds:.1f} s; "
        f"PBX send buffer<= {r.pbx_max_send_buffer / 1e6:.1f} MB\n"
        f"{'':17}exactly once: {ok} (calls {r.calls_expected}, delivered "
        f"{r.calls_written}, rows {r.rows}, dup {r.duplicates}, missing {r.missing}, "
        f"sink errors {r.sink_errors})\n"
        f"{'':17}RSS MB over time: {mem}\n"
        f"{'':17}first bottleneck: {bottleneck(r)}"
        + (f"\n{'':17}stage: {r.stage}" if r.stage else "")
    )


@dataclass
class WriteResult:
    engine: str
    batch: bool
    facts: int
    calls: int
    seconds: float
    rows: int
    live_left: int
    duplicates: int
    errors: int
    batches: int
    largest: int
    write_ms_p50: float
    write_ms_p99: float

    @property
    def calls_s(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


def tracked_facts(copies: int, stagger: float) -> list[Fact]:
    """The facts the tracker makes of ``copies`` overlapped bursts (fresh ids each)."""
    return replay_facts(overlapped(BURST, copies, stagger))


async def run_writes(
    engine: str, facts: Sequence[Fact], batch: bool, batch_calls: int = MAX_CALLS
) -> WriteResult:
    """The store stage alone: the tracker's facts (screen pops, live snapshots, finished
    calls) handed to the link's sink as fast as it takes them, no PBX and no socket:
    how many calls per second the CRM can write, once the wire is not the limit."""
    calls = sum(1 for f in facts if isinstance(f, CallRecord))
    async with _database(engine) as url:
        pipe = await build_pipeline(url, "127.0.0.1", 9, batch=batch, batch_calls=batch_calls)
        t0 = time.perf_counter()
        for fact in facts:
            await pipe.sink(fact)
        if pipe.lanes is not None:
            await pipe.lanes.drain()
        await pipe.holding.drain()
        seconds = time.perf_counter() - t0
        rows = await pipe.store.count_calls()
        live_left = len(await pipe.store.live_calls_for_link(pipe.ingest.pbx_link_id))
        batcher = pipe.holding.batcher
        c = pipe.counters
        await pipe.close()
    write_ms = sorted(c.write_ms) or [0.0]
    return WriteResult(
        engine=engine,
        batch=batch,
        facts=len(facts),
        calls=calls,
        seconds=seconds,
        rows=rows,
        live_left=live_left,
        duplicates=sum(1 for n in c.per_call.values() if n > 1),
        errors=c.sink_errors,
        batches=batcher.batches if batcher else c.written,
        largest=batcher.largest if batcher else 1,
        write_ms_p50=statistics.median(write_ms),
        write_ms_p99=write_ms[min(len(write_ms) - 1, int(len(write_ms) * 0.99))],
    )


def _fmt_writes(r: WriteResult, before: WriteResult | None) -> str:
    ok = "OK" if r.rows == r.calls and not r.duplicates and not r.live_left else "FAIL"
    ratio = f"  ({r.calls_s / before.calls_s:.1f}x one per call)" if before else ""
    return (
        f"{r.engine:10} writes {_mode(r.batch):>12}  calls/s {r.calls_s:>7,.0f}{ratio}  "
        f"{r.calls} calls + {r.facts - r.calls:,} live facts in {r.seconds:.1f} s; "
        f"{r.batches} transactions (largest {r.largest} calls); write p50/p99 "
        f"{r.write_ms_p50:.1f}/{r.write_ms_p99:.1f} ms\n"
        f"{'':17}exactly once: {ok} (rows {r.rows}, dup {r.duplicates}, live rows left "
        f"{r.live_left}, errors {r.errors})"
    )


def _mode(batch: bool) -> str:
    return "batched" if batch else "one per call"


def _thin(points: list[tuple[float, float]], n: int) -> Iterator[tuple[float, float]]:
    if len(points) <= n:
        yield from points
        return
    step = (len(points) - 1) / (n - 1)
    for i in range(n):
        yield points[round(i * step)]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--speeds", default="1,10,50")
    ap.add_argument("--copies", type=int, default=25, help="overlapped burst copies (x20 calls)")
    ap.add_argument("--loops", type=int, default=2, help="times the PBX plays them")
    ap.add_argument("--stagger", type=float, default=0.2, help="seconds between copies")
    ap.add_argument(
        "--modes",
        default="single,batched",
        help="single (one transaction per call, as before), batched, or both",
    )
    ap.add_argument(
        "--stages",
        default="writes,replay",
        help="writes (the store alone, facts as fast as it takes them), "
        "replay (through the replay PBX at each speed), or both",
    )
    ap.add_argument("--batch-calls", type=int, default=MAX_CALLS, help="calls per transaction")
    args = ap.parse_args(argv)
    modes = [m.strip() == "batched" for m in args.modes.split(",") if m.strip()]
    stages = {x.strip() for x in args.stages.split(",")}
    speeds = [float(s) for s in args.speeds.split(",") if s.strip()]
    items = overlapped(BURST, args.copies, args.stagger)
    print(
        f"traffic: burst x{args.copies} copies (stagger {args.stagger} s) x{args.loops} loops"
        f" = {len(items) * args.loops:,} events, {20 * args.copies * args.loops} calls, "
        f"peak {peak_concurrency(items)} calls up at once; capture span "
        f"{items[-1][1] - items[0][1]:.1f} s per loop; cpu {os.cpu_count()}"
    )
    facts = tracked_facts(args.copies * args.loops, args.stagger) if "writes" in stages else []
    for engine in engines(args.engine):
        if "writes" in stages:
            before: WriteResult | None = None
            for batch in modes:
                w = asyncio.run(run_writes(engine, facts, batch, args.batch_calls))
                print(_fmt_writes(w, before if batch else None), flush=True)
                before = before or (w if not batch else None)
        if "replay" not in stages:
            continue
        for speed in speeds:
            for batch in modes:
                result = asyncio.run(
                    run_load(
                        engine,
                        speed,
                        args.copies,
                        args.loops,
                        args.stagger,
                        batch=batch,
                        batch_calls=args.batch_calls,
                    )
                )
                print(_fmt(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
