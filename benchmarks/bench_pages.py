"""Page timings at scale: a store with a million contacts and five million calls, the app
on loopback in its own process, C concurrent logged-in clients hammering one page at a
time for D seconds; p50/p99 per page.

    .venv/bin/python -m benchmarks.bench_pages [--contacts 1000000] [--calls 5000000]
        [--clients 16] [--seconds 10] [--engine sqlite|postgresql] [--reuse]
        [--db /tmp/crm-bench-pages.db] [--pg-db bench_pages] [--explain]
        [--old] [--save FILE] [--baseline FILE] [--writes N] [--managers K]

The data (``crm.store.bulk``) is 90 days of calls over 40 reps in 4 teams, most of them
with the caller's own rep, missed calls with their callback tasks.  Loading the full size
takes a while; ``--reuse`` keeps the database (SQLite file under /tmp, or the PostgreSQL
database ``bench_pages``) and reuses it when it already holds the asked-for counts.

The server runs in a child process so the clients' CPU is not the server's.  Each page is
measured as the user who would open it (a manager sees their team of 10, the admin all,
a rep their own).  ``--explain`` then replays one request per page in-process with the
SQL traced, and prints each statement's time and the slowest one's plan (SQLite's
EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN ANALYZE), to say *why* it is slow.

``--old`` serves the reports from the calls as before the figures kept by ingest
(``crm.store.sql_figures``); ``--save`` and ``--baseline`` keep one run's figures and print
another's ratio to them, so old and new are measured on the same data and machine.

``--writes N``: a third process ingests N finished calls a second (each its own
transaction, as the link's process does) while the pages are measured, so figures kept
per state of the database (``crm.figures_memo``) are measured as a live call centre sees
them, not only on a store nobody writes to.  The calls are the bulk contacts' (no new
leads), so the store stays reusable; the server says how many times it computed figures.
``--managers K`` deals the manager pages' clients round the managers of K teams (each sees
their own team's figures) instead of all logging in as m1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from benchmarks.harness import PASSWORD, login, percentile, serve  # noqa: E402
from config.settings import load_settings  # noqa: E402
from crm.services import encode_cursor  # noqa: E402
from crm.store import open_store  # noqa: E402
from crm.store.bulk import (  # noqa: E402
    BulkSpec,
    Rep,
    contact_number,
    load_postgres,
    load_sqlite,
    owner_index,
)

TEAMS, REPS_PER_TEAM = 4, 10
PG_ADMIN_URL = "postgresql://127.0.0.1:5432/test"
PG_DB = "bench_pages"


def settings_for(url: str, work: Path) -> dict[str, Any]:
    settings = load_settings(env={}, demo=True)
    settings["database"]["url"] = url
    settings["server"]["key_file"] = str(work / "bench-pages.key")
    settings["recordings"]["directory"] = str(work / "monitor")
    return settings


# -- the data ----------------------------------------------------------------------------
async def _counts(url: str) -> tuple[int, int]:
    store = await open_store(url)
    try:
        if store.dialect == "postgres":
            import asyncpg

            con = await asyncpg.connect(url)
            try:
                c = await con.fetchval("SELECT count(*) FROM contacts")
                k = await con.fetchval("SELECT count(*) FROM calls")
            finally:
                await con.close()
            return int(c), int(k)
    finally:
        await store.close()
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        c = con.execute("SELECT count(*) FROM contacts").fetchone()[0]
        k = con.execute("SELECT count(*) FROM calls").fetchone()[0]
    finally:
        con.close()
    return int(c), int(k)


async def _pg_fresh(reuse: bool, name: str) -> None:
    import asyncpg

    con = await asyncpg.connect(PG_ADMIN_URL)
    try:
        exists = await con.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and not reuse:
            await con.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            await con.execute(f'CREATE DATABASE "{name}"')
    finally:
        await con.close()


async def prepare(args: argparse.Namespace, work: Path) -> str:
    """The store URL, loaded (or reused) to the asked-for size."""
    if args.engine == "postgresql":
        await _pg_fresh(args.reuse, args.pg_db)
        url = f"postgresql://127.0.0.1:5432/{args.pg_db}"
    else:
        path = Path(args.db)
        if not args.reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    from web.runtime import open_runtime

    rt = await open_runtime(settings_for(url, work), with_link=False)
    try:
        users = await rt.service.list_users()
        if not users:
            await rt.service.create_user("admin", "Bench Admin", PASSWORD, "admin")
            for t in range(1, TEAMS + 1):
                team = await rt.service.create_team(f"Team {t}", "bench")
                m = await rt.service.create_user(f"m{t}", f"Manager {t}", PASSWORD, "manager")
                assert m.id is not None
                await rt.service.set_team(m.id, team.id, "bench")
                for r in range(REPS_PER_TEAM):
                    n = (t - 1) * REPS_PER_TEAM + r + 1
                    u = await rt.service.create_user(f"r{n:02d}", f"Rep {n}", PASSWORD, "rep",
                                                     [str(200 + n)])  # fmt: skip
                    assert u.id is not None
                    await rt.service.set_team(u.id, team.id, "bench")
    finally:
        await rt.close()
    have = await _counts(url)
    # ``--writes`` runs add a few thousand live calls to a reused store
    if have[0] == args.contacts and args.calls <= have[1] <= args.calls * 1.01:
        print(f"reusing {url}: {have[0]:,} contacts, {have[1]:,} calls")
        return url
    if have != (0, 0):
        raise SystemExit(f"{url} holds {have[0]:,} contacts and {have[1]:,} calls; "
                         "run without --reuse to rebuild it")  # fmt: skip
    spec = BulkSpec(args.contacts, args.calls, await _reps(url))
    started = time.perf_counter()

    def progress(what: str, n: int) -> None:
        print(f"  {time.perf_counter() - started:7.1f} s  {what}: {n:,}", flush=True)

    print(f"loading {args.contacts:,} contacts and {args.calls:,} calls into {url} ...")
    if args.engine == "postgresql":
        counts = await load_postgres(url, spec, progress)
    else:
        counts = await asyncio.to_thread(load_sqlite, url.removeprefix("sqlite:///"), spec,
                                         progress)  # fmt: skip
    print(f"loaded in {time.perf_counter() - started:.0f} s: {counts}")
    # The bulk load writes the calls behind the store's back: the figures the reports read
    # are computed from them once, as ``run.py rebuild-figures`` does.
    store = await open_store(url)
    try:
        t0 = time.perf_counter()
        rows = await store.rebuild_figures(settings_for(url, work)["server"]["display_tz"])
        print(f"figures rebuilt in {time.perf_counter() - t0:.0f} s: {rows}")
    finally:
        await store.close()
    return url


async def _reps(url: str) -> list[Rep]:
    store = await open_store(url)
    try:
        users = await store.list_users(include_inactive=False)
    finally:
        await store.close()
    reps = sorted((u for u in users if u.role == "rep"), key=lambda u: u.username)
    return [Rep(u.id, u.extensions[0]) for u in reps if u.id is not None]


# -- the server --------------------------------------------------------------------------
def _serve(url: str, work: str, conn: Connection, old: bool = False) -> None:
    if old:
        # The reports read the calls as before the figures existed (``--old``).
        from crm.store.sql_figures import FigureQueries

        async def none(*args: Any) -> None:
            return None

        FigureQueries.figure_days = none  # type: ignore[assignment,method-assign]
        # ... and computes them for every request, as before the memo
        from crm.figures_memo import FiguresMemo

        async def every_time(self: Any, key: Any, compute: Any) -> Any:
            self.computed += 1
            return await compute()

        FiguresMemo.get = every_time  # type: ignore[method-assign]

    async def main() -> None:
        from web.app import create_app
        from web.runtime import open_runtime

        rt = await open_runtime(settings_for(url, Path(work)), with_link=False)
        runner, port = await serve(create_app(rt))
        conn.send(port)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        # (None: code from before the memo, when measuring "before" with this script)
        memo = getattr(rt.service, "figures_memo", None)
        conn.send(None if memo is None else memo.computed)
        await runner.cleanup()
        await rt.close()

    asyncio.run(main())


def _write_calls(url: str, rate: float, contacts: int, conn: Connection) -> None:
    """``rate`` finished inbound calls a second, ingested one transaction each until told
    to stop; sends back how many."""
    from ami_bridge.facts import CallRecord
    from crm.ingest import Ingest
    from crm.policy import LeadPolicy

    async def main() -> None:
        store = await open_store(url)
        reps = await _reps(url)
        ingest = Ingest(store, LeadPolicy(own_numbers=("5551000",)))
        rng = random.Random(7)
        stop = asyncio.get_running_loop().run_in_executor(None, conn.recv)
        written, started = 0, time.monotonic()
        while not stop.done():
            now = time.time()
            ext = rng.choice(reps).extension
            answered = rng.random() < 0.7
            caller = contact_number(rng.randrange(1, contacts + 1))
            await ingest.handle(CallRecord(
                linkedid=f"bench-write-{now:.6f}", direction="inbound", caller=caller,
                caller_raw=caller, caller_name=None, callee="5551000", callee_e164=None,
                did="5551000", rang=(ext,), answered=answered,
                answered_by=ext if answered else None, final_agent=ext if answered else None,
                transfers=(), outcome="answered" if answered else "missed",
                hangup_by="caller" if answered else "pbx", started_at=now - 40,
                answered_at=now - 30 if answered else None, ended_at=now,
                ring_seconds=10.0, talk_seconds=30.0 if answered else 0.0,
                recordings=(), originate_id=None,
            ))  # fmt: skip
            written += 1
            await asyncio.sleep(max(0.0, started + written / rate - time.monotonic()))
        await store.close()
        conn.send(written)

    asyncio.run(main())


# -- the clients -------------------------------------------------------------------------
@dataclass
class Page:
    name: str
    user: str
    path: Callable[[random.Random], str]
    team_bound: bool = False
    """The path names m1's own reps: never spread over other managers (``--managers``)."""

    def user_of(self, client: int, managers: int) -> str:
        """Client ``client``'s login: with ``managers`` > 1 the manager pages' clients are
        dealt round the managers of that many teams, each seeing their own team (so the
        figures are not all one team's)."""
        if self.user != "m1" or self.team_bound or managers <= 1:
            return self.user
        return f"m{client % managers + 1}"


@dataclass
class Timing:
    page: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    alone: float = 0.0
    """The first request, with no other client: the page's own cost."""

    def pct(self, p: float) -> float:
        return percentile(self.latencies, p) * 1000

    def line(self) -> str:
        n = len(self.latencies)
        mean = statistics.fmean(self.latencies) * 1000 if n else float("nan")
        return (
            f"{self.page:44s} {self.alone * 1000:8.1f} {n / self.seconds:8.1f} "
            f"{self.pct(50):8.1f} {self.pct(99):8.1f} {mean:8.1f} {self.errors:6d}"
        )


def pages(contacts: int, now: float, team1: Sequence[int]) -> list[Page]:
    """The pages measured; ``team1`` is the user ids of m1's reps."""
    reps = TEAMS * REPS_PER_TEAM
    deep = encode_cursor((now - 60 * 86400, 2**62))

    def own_contact(rng: random.Random) -> str:
        # r02 is rep index 1: contacts i with owner_index(i) == 1
        while True:
            i = rng.randrange(1, contacts + 1)
            if owner_index(i, reps) == 1:
                return f"/contacts/{i}"

    def fragment(rng: random.Random, digits: int) -> str:
        # the last digits of a random contact's number: what a rep types from a note
        number = contact_number(rng.randrange(1, contacts + 1))
        return number[-digits:]

    return [
        Page("calls, first page (manager, team)", "m1", lambda r: "/calls"),
        Page("calls, first page (admin, all)", "admin", lambda r: "/calls"),
        Page("calls, filtered missed inbound (manager)", "m1",
             lambda r: "/calls?direction=inbound&outcome=missed"),
        Page("calls, filtered one rep (manager)", "m1",
             lambda r: f"/calls?rep={r.choice(team1)}", team_bound=True),
        Page("calls, deep keyset page -60 d (manager)", "m1",
             lambda r: f"/calls?cursor={deep}"),
        Page("calls, own (rep)", "r02", lambda r: "/calls"),
        Page("contact card (admin, random)", "admin",
             lambda r: f"/contacts/{r.randrange(1, contacts + 1)}"),
        Page("contact card (rep, own customer)", "r02", own_contact),
        Page("missed-calls audit (manager)", "m1", lambda r: "/missed"),
        Page("missed-calls audit (admin)", "admin", lambda r: "/missed"),
        Page("reports (manager)", "m1", lambda r: "/reports"),
        Page("reports (admin)", "admin", lambda r: "/reports"),
        Page("lead statistics (manager)", "m1", lambda r: "/reports/leads"),
        Page("lead statistics (admin)", "admin", lambda r: "/reports/leads"),
        Page("calls, part of a number, 7 digits (manager)", "m1",
             lambda r: f"/calls?number={fragment(r, 7)}"),
        Page("calls, part of a number, 4 digits (admin)", "admin",
             lambda r: f"/calls?number={fragment(r, 4)}"),
        Page("header search, part of a number (manager)", "m1",
             lambda r: f"/search?q={fragment(r, 7)}"),
        Page("header search, a name (rep)", "r02",
             lambda r: f"/search?q=Smith+{r.randrange(1, contacts + 1)}"),
    ]  # fmt: skip


async def measure(base: str, page: Page, clients: int, seconds: float,
                  timeout: float, managers: int = 1) -> Timing:  # fmt: skip
    """``clients`` sessions requesting the page back to back for ``seconds``; a request
    that takes longer than ``timeout`` counts as an error (a user would have given up)."""
    timing = Timing(page.name)
    sessions = []
    limit = aiohttp.ClientTimeout(total=timeout)
    for i in range(clients):
        s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=limit)
        sessions.append(s)
        for attempt in range(5):
            # the server may still be busy with the previous page's timed-out requests
            try:
                await login(s, base, page.user_of(i, managers), next="/")
                break
            except TimeoutError:
                if attempt == 4:
                    raise
    try:
        t0 = time.perf_counter()
        first = await sessions[0].get(base + page.path(random.Random(0)))
        if first.status != 200:
            raise SystemExit(f"{page.name}: {first.status} {(await first.text())[:300]}")
        await first.read()
        timing.alone = time.perf_counter() - t0
        deadline = time.perf_counter() + seconds

        async def worker(i: int, s: aiohttp.ClientSession) -> None:
            rng = random.Random(i)
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                resp = None
                try:
                    async with s.get(base + page.path(rng)) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except TimeoutError:
                    ok = False
                if ok:
                    timing.latencies.append(time.perf_counter() - t0)
                else:
                    timing.errors += 1
                    if timing.errors == 1:
                        why = "timeout" if resp is None else f"HTTP {resp.status}"
                        print(f"  {page.name}: first failure: {why}", flush=True)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i, s) for i, s in enumerate(sessions)))
        timing.seconds = time.perf_counter() - t0
    finally:
        for s in sessions:
            await s.close()
    return timing


# -- why: the SQL of one request per page --------------------------------------------------
class _Traced:
    """The SELECTs one request runs: SQLite's trace callback on the store's connection
    (statements with their values inlined), or on PostgreSQL ``_PgConn``'s reads wrapped
    (statements and their arguments)."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        self.undo: list[Callable[[], None]] = []

    async def attach(self, rt: Any) -> bool:
        raw = getattr(getattr(rt.store, "_db", None), "_conn", None)
        if raw is not None:
            await rt.store._db._execute(
                raw.set_trace_callback, lambda sql: self.statements.append((sql, ()))
            )
            self._wrap_readers(rt.store._db)
            return True
        if rt.store.dialect != "postgres":
            return False
        from crm.store import postgres

        for name in ("fetch", "fetchrow", "fetchval"):
            real = getattr(postgres._PgConn, name)

            def traced(conn: Any, sql: str, *args: Any, _real: Any = real) -> Any:
                self.statements.append((sql, args))
                return _real(conn, sql, *args)

            setattr(postgres._PgConn, name, traced)
            self.undo.append(lambda name=name, real=real: setattr(postgres._PgConn, name, real))
        return True

    def _wrap_readers(self, root: Any) -> None:
        """SQLite's read connections (the managers' figures' pool): their reads with
        their arguments, as on PostgreSQL."""
        from crm.store import sqlite

        for name in ("fetch", "fetchrow"):
            real = getattr(sqlite._SqliteConn, name)

            def traced(conn: Any, sql: str, *args: Any, _real: Any = real) -> Any:
                if conn._db is not root:
                    self.statements.append((sqlite._q(sql), args))
                return _real(conn, sql, *args)

            setattr(sqlite._SqliteConn, name, traced)
            self.undo.append(lambda name=name, real=real: setattr(sqlite._SqliteConn, name, real))

    def detach(self) -> None:
        for undo in self.undo:
            undo()


async def _timed_plan(url: str, traced: _Traced) -> tuple[list[tuple[float, str]], list[str]]:
    """Each traced SELECT run again on its own connection: (ms, sql) slowest first, and
    the slowest one's plan (SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN ANALYZE)."""
    reads = [
        (sql, args)
        for sql, args in traced.statements
        if sql.lstrip().upper().startswith(("SELECT", "WITH"))
    ]
    timed: list[tuple[float, str, tuple[Any, ...]]] = []
    plan: list[str] = []
    if url.startswith("sqlite"):
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            for sql, args in reads:
                t1 = time.perf_counter()
                db.execute(sql, args).fetchall()
                timed.append(((time.perf_counter() - t1) * 1000, sql, args))
            timed.sort(key=lambda x: -x[0])
            if timed and timed[0][0] > 5:
                plan = [
                    row[-1]
                    for row in db.execute("EXPLAIN QUERY PLAN " + timed[0][1], timed[0][2])
                ]
        finally:
            db.close()
    else:
        import asyncpg

        con = await asyncpg.connect(url)
        try:
            for sql, args in reads:
                t1 = time.perf_counter()
                await con.fetch(sql, *args)
                timed.append(((time.perf_counter() - t1) * 1000, sql, args))
            timed.sort(key=lambda x: -x[0])
            if timed and timed[0][0] > 5:
                rows = await con.fetch("EXPLAIN (ANALYZE, BUFFERS) " + timed[0][1], *timed[0][2])
                plan = [r[0] for r in rows]
        finally:
            await con.close()
    return [(ms, sql) for ms, sql, _ in timed], plan


async def explain(url: str, work: Path, chosen: Sequence[Page]) -> None:
    """One request per page in-process with the SQL traced: each statement re-run on its
    own for its time, the slowest explained."""
    from aiohttp.test_utils import TestClient, TestServer

    from web.app import create_app
    from web.runtime import open_runtime

    rt = await open_runtime(settings_for(url, work), with_link=False)
    traced = _Traced()
    if not await traced.attach(rt):
        print("(--explain: the store's connection is not reachable)")
        await rt.close()
        return
    server = TestServer(create_app(rt))
    try:
        async with TestClient(server) as c:
            for page in chosen:
                c.session.cookie_jar.clear()
                await login(c, "", page.user)
                traced.statements.clear()
                path = page.path(random.Random(1))
                t0 = time.perf_counter()
                resp = await c.get(path)
                await resp.read()
                total = (time.perf_counter() - t0) * 1000
                print(f"\n{page.name}: GET {path} -> {resp.status} in {total:.1f} ms, "
                      f"{len(traced.statements)} statements")  # fmt: skip
                timed, plan = await _timed_plan(url, traced)
                for ms, sql in timed[:8]:
                    print(f"  {ms:8.1f} ms  {' '.join(sql.split())[:220]}")
                for line in plan:
                    print(f"             plan: {line[:200]}")
    finally:
        traced.detach()
        await server.close()
        await rt.close()


def _report(results: list[Timing], clients: int, baseline: dict[str, Any]) -> None:
    heads = ("alone ms", "req/s", "p50 ms", "p99 ms", "mean ms")
    print(
        f"\n{'page':44s} "
        + " ".join(f"{h:>8s}" for h in heads)
        + f" {'errors':>6s}   ({clients} concurrent clients)"
    )
    for r in results:
        print(r.line())
    if baseline:
        print(
            f"\nratio to the baseline (old / new; above 1 is faster now)\n{'page':44s} "
            f"{'alone':>14s} {'p50':>16s} {'p99':>16s}"
        )
        for r in results:
            b = baseline.get(r.page)
            if b is None:
                continue
            cells = []
            for key, new_ms in (("alone", r.alone * 1000), ("p50", r.pct(50)), ("p99", r.pct(99))):
                cells.append(
                    f"{b[key]:7.0f}/{new_ms:<6.0f}"
                    + (f"{b[key] / new_ms:5.1f}x" if new_ms else "  -  ")
                )
            print(f"{r.page:44s} " + " ".join(cells))

    def cost(r: Timing) -> tuple[int, float]:
        # a page whose requests timed out is slower than any page that answered
        return (r.errors, r.alone if r.errors else r.pct(99))

    slowest = max(results, key=cost)
    print(
        f"\nslowest page: {slowest.page}, alone {slowest.alone * 1000:.0f} ms, "
        f"p99 {slowest.pct(99):.0f} ms, {slowest.errors} requests failed or timed out"
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contacts", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=5_000_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--db", default="/tmp/crm-bench-pages.db", help="the SQLite file")
    ap.add_argument("--pg-db", default=PG_DB, help="the PostgreSQL database's name")
    ap.add_argument("--reuse", action="store_true", help="keep and reuse the loaded store")
    ap.add_argument("--work", default="/tmp/crm-bench-pages",
                    help="the server's key file and recordings folder")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds after which a request counts as failed")
    ap.add_argument("--only", default="", help="measure only pages whose name contains this")
    ap.add_argument("--explain", action="store_true", help="SQL time and plan per page")
    ap.add_argument(
        "--old",
        action="store_true",
        help="serve the reports from the calls, as before the figures (0017) and the memo",
    )
    ap.add_argument("--save", help="write the figures to this JSON file")
    ap.add_argument("--baseline", help="a JSON file from --save: print the ratio to it")
    ap.add_argument("--managers", type=int, default=1, choices=range(1, TEAMS + 1),
                    help="deal the manager pages' clients round the managers of this many "
                    "teams (default: all are m1)")  # fmt: skip
    ap.add_argument("--writes", type=float, default=0.0,
                    help="calls a second ingested by another process while measuring")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    url = asyncio.run(prepare(args, work))
    team1 = [r.user_id for r in asyncio.run(_reps(url))[:REPS_PER_TEAM]]
    chosen = [p for p in pages(args.contacts, time.time(), team1) if args.only in p.name]
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(url, str(work), child, args.old), daemon=True)
    proc.start()
    writer = None
    if args.writes > 0:
        w_parent, w_child = ctx.Pipe()
        writer = ctx.Process(target=_write_calls, daemon=True,
                             args=(url, args.writes, args.contacts, w_child))  # fmt: skip
        writer.start()
    computed: int | None = 0
    requests = written = 0
    try:
        port = parent.recv()
        base = f"http://127.0.0.1:{port}"

        async def run_all() -> list[Timing]:
            out = []
            for page in chosen:
                out.append(await measure(base, page, args.clients, args.seconds, args.timeout,
                                         args.managers))  # fmt: skip
                print(out[-1].line(), flush=True)
            return out

        results = asyncio.run(run_all())
        requests = sum(len(r.latencies) + r.errors + 1 for r in results)
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):
                w_parent.send("stop")
                written = w_parent.recv()
            writer.join(30)
        with contextlib.suppress(Exception):
            parent.send("stop")
            computed = parent.recv()
        proc.join(30)
    if args.writes > 0:
        print(f"{written:,} calls written meanwhile ({args.writes:g}/s asked)")
    if computed is not None:
        print(f"figures computed {computed:,} times for {requests:,} page requests "
              "(the rest served at an unchanged state of the database)")  # fmt: skip
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else {}
    _report(results, args.clients, baseline)
    if args.save:
        Path(args.save).write_text(
            json.dumps(
                {
                    r.page: {
                        "alone": r.alone * 1000,
                        "p50": r.pct(50),
                        "p99": r.pct(99),
                        "errors": r.errors,
                        "requests": len(r.latencies),
                    }
                    for r in results
                },
                indent=1,
            )
        )
    if args.explain:
        asyncio.run(explain(url, work, chosen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
