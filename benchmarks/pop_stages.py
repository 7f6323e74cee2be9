"""Where a screen pop's time goes: stamps along its path inside the server's process, and
the run's pauses (garbage collections, event-loop lateness), for ``bench_pop``.

Every stamp is ``time.monotonic()``, the one clock every process on the machine shares, so
the PBX's write (its own process) and the client's read (another) line up with them.  The
stages of one pop (one call ringing one rep's phone, read by one tab):

* ``pbx->fact``: the replay PBX wrote the event that rings the phone; the link read it and
  the tracker turned it into a fact ringing the extension (``AmiLink._emit``);
* ``fact->taken``: the fact waited in the link's queue for its one consumer
  (``AmiLink._on_fact``);
* ``taken->lookup``: it waited for a lane (``crm.lanes``: at most 32 lookups at once)
  before the ingest started on it (``Ingest.progress``);
* ``lookup->bus``: the ingest looked the caller up (the store's pop readers) and
  published it on the bus (``EventBus.publish``);
* ``bus->lane``: the hub's subscription and the call's lane took it (``_on_progress``);
* ``lane->hub``: the hub waited for the caller's details (at most ``INFO_BUDGET``),
  decided who sees what and handed the line to the rep's audience
  (``Audience.put_line``);
* ``hub->flush``: the line waited for the hub's next flush (the burst window, the loop's
  other work);
* ``flush->write``: the flush reached this tab's socket (its place among the audience's
  tabs, each one write);
* ``write->read``: the kernel and the clients' process, until the client read it.

A pop a tab's own handler wrote (its socket's buffer was full: ``Client.take`` queued it)
has no write stamp; those are counted.  The tracer wraps methods of the product's classes
in the server's process only (no product code knows of it), and costs a dict or list
write per stamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ami_bridge.facts import CallProgress
from benchmarks.harness import percentile as _pct

STAGES = ("pbx->fact", "fact->taken", "taken->lookup", "lookup->bus", "bus->lane", "lane->hub",
          "hub->flush", "flush->write", "write->read")  # fmt: skip
LAG_STEP = 0.005
"""Seconds between the loop watcher's ticks (``Pauses``)."""
LATE = 0.020
"""A tick this much later than due is recorded as the loop's lateness."""


class Pauses:
    """The process's garbage collections and its event loop's lateness, as (start,
    seconds) in ``time.monotonic()``: what a late pop may have waited behind."""

    def __init__(self) -> None:
        self.gcs: list[tuple[float, float, int]] = []
        self.late: list[tuple[float, float]] = []
        self._gc_start = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        loop = asyncio.get_running_loop()
        self._due = time.monotonic() + LAG_STEP
        self._handle = loop.call_later(LAG_STEP, self._tick)

    def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.monotonic()
        if phase == "start":
            self._gc_start = now
        else:
            self.gcs.append((self._gc_start, now - self._gc_start, int(info["generation"])))

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._due > LATE:
            self.late.append((self._due, now - self._due))
        self._due = now + LAG_STEP
        self._handle = asyncio.get_running_loop().call_later(LAG_STEP, self._tick)

    def summary(self, t0: float, t1: float) -> dict[str, Any]:
        """What fell between ``t0`` and ``t1``."""
        gcs = [g for g in self.gcs if t0 <= g[0] <= t1]
        late = [s for s in self.late if t0 <= s[0] <= t1]
        return {
            "gc_count": len(gcs),
            "gc_full": [round(d * 1000, 1) for _, d, gen in gcs if gen == 2],
            "gc_ms": sum(d for _, d, _ in gcs) * 1000,
            "gc_max_ms": max((d for _, d, _ in gcs), default=0.0) * 1000,
            "late": [(round(at - t0, 2), round(d * 1000, 1)) for at, d in late],
        }


def stage_table(
    rows: list[tuple[float, list[float]]], names: Sequence[str]
) -> dict[str, tuple[float, float, float, float]]:
    """Per stage of ``names``: p50, p99 and max of its ms over the pops ``rows`` ((latency,
    ms per stage)), and its mean in the slowest 1 % of the pops by latency."""
    rows = sorted(rows, key=lambda r: r[0])
    tail = rows[int(len(rows) * 0.99) :] or rows
    out = {}
    for i, name in enumerate(names):
        values = [ms[i] for _, ms in rows]
        out[name] = (_pct(values, 50), _pct(values, 99), max(values, default=0.0),
                     sum(ms[i] for _, ms in tail) / max(1, len(tail)))  # fmt: skip
    return out


class Stages:
    """The server's stamps of every pop, by (linkedid, extension) and per tab's socket
    (its client port: the clients' process knows its own)."""

    def __init__(self) -> None:
        self.fact: dict[tuple[str, str], float] = {}
        self.taken: dict[tuple[str, str], float] = {}
        self.lookup: dict[tuple[str, str], float] = {}
        self.bus: dict[tuple[str, str], float] = {}
        self.lane: dict[tuple[str, str], float] = {}
        self.hub: dict[tuple[str, str], float] = {}
        self.flush: dict[tuple[str, str], float] = {}
        self.written: dict[tuple[str, str], dict[int, float]] = {}
        self.held: dict[str, tuple[float, float, int]] = {}
        """The link's consumer held by each kind of fact: seconds in all, longest, how
        many over 10 ms."""
        self.reader_wait: list[float] = []
        self.reader_hold: list[float] = []
        self.refused = 0
        """Writes the hub tried and left to the handler (the socket's buffer was full)."""
        self.pauses = Pauses()
        self.hop: dict[str, dict[tuple[str, str], float]] = {}
        """The fan-out's stamps in a server of its own (``install_in_server``)."""
        self._current: list[dict[int, float]] = []
        self._undo: list[Callable[[], None]] = []

    # -- installing ---------------------------------------------------------------------
    def install(
        self, link: Any = None, bus: Any = None, ingest: Any = None, hub: Any = None
    ) -> None:
        """Wrap the product's methods (undone by ``uninstall``): the link's ``_emit`` and
        ``_on_fact``, the ingest's ``progress``, the bus's ``publish`` (these objects
        only), the audiences' ``put_line`` and ``flush`` and the SSE handler's writer
        (every instance)."""
        from web import live_streams
        from web.pages import live as live_page

        if link is not None:
            self._wrap(link, "_emit", self._on_emit)
            self._wrap(link, "_on_fact", lambda f: self._timed(self._stamp_fact(f, self.taken)))
        if ingest is not None:
            self._wrap(ingest, "progress", lambda f: self._stamp_fact(f, self.lookup))
        if bus is not None:
            self._wrap(bus, "publish", self._on_publish)
        if hub is not None:
            self._wrap(hub, "_on_progress", self._on_lane)
        pool = getattr(getattr(ingest, "store", None), "_reader", None)
        if pool is not None:
            self._wrap(pool, "use", self._on_reader)
        self._wrap_class(live_streams.Audience, "put_line", self._audience_put_line)
        self._wrap_class(live_streams.Audience, "flush", self._audience_flush)
        original = live_page._writer

        def writer(transport: asyncio.BaseTransport) -> Callable[[bytes], bool]:
            return self._writer(transport, original(transport))

        live_page._writer = writer
        self._undo.append(lambda: setattr(live_page, "_writer", original))

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    def _wrap(self, obj: Any, name: str, make: Callable[[Callable[..., Any]], Any]) -> None:
        original = getattr(obj, name)
        setattr(obj, name, make(original))
        self._undo.append(lambda: setattr(obj, name, original))

    def _wrap_class(self, cls: type, name: str, make: Callable[[Any], Any]) -> None:
        original = cls.__dict__[name]
        setattr(cls, name, make(original))
        self._undo.append(lambda: setattr(cls, name, original))

    # -- the wrappers ---------------------------------------------------------------------
    def _on_emit(self, emit: Callable[[list[Any]], None]) -> Callable[[list[Any]], None]:
        stamps = self.fact

        def wrapped(facts: list[Any]) -> None:
            now = time.monotonic()
            for fact in facts:
                if type(fact) is CallProgress:
                    for ext in fact.ringing:
                        stamps.setdefault((fact.linkedid, ext), now)
            emit(facts)

        return wrapped

    def _timed(self, on_fact: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """The link's one consumer: how long each kind of fact held it (a fact behind
        one that waits, for the store say, waits as long)."""
        held = self.held

        async def wrapped(fact: Any) -> None:
            start = time.monotonic()
            result = on_fact(fact)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
            took = time.monotonic() - start
            name = type(fact).__name__
            total, most, slow = held.get(name, (0.0, 0.0, 0))
            held[name] = (total + took, max(most, took), slow + (took > 0.010))

        return wrapped

    def _on_reader(self, use: Callable[[], Any]) -> Callable[[], Any]:
        """SQLite's pop readers: how long a read waited for a connection, and held it."""
        waits, holds = self.reader_wait, self.reader_hold

        @contextlib.asynccontextmanager
        async def wrapped() -> Any:
            start = time.monotonic()
            async with use() as conn:
                got = time.monotonic()
                waits.append(got - start)
                try:
                    yield conn
                finally:
                    holds.append(time.monotonic() - got)

        return wrapped

    @staticmethod
    def _stamp_fact(
        call: Callable[[Any], Any], stamps: dict[tuple[str, str], float]
    ) -> Callable[[Any], Any]:
        def wrapped(fact: Any) -> Any:
            if type(fact) is CallProgress:
                now = time.monotonic()
                for ext in fact.ringing:
                    stamps.setdefault((fact.linkedid, ext), now)
            return call(fact)

        return wrapped

    def _on_publish(self, publish: Callable[[Any], int]) -> Callable[[Any], int]:
        stamps = self.bus

        def wrapped(event: Any) -> int:
            if event.kind == "call_progress":
                now = time.monotonic()
                progress = getattr(event.payload, "progress", event.payload)
                for ext in getattr(progress, "ringing", ()) or ():
                    stamps.setdefault((progress.linkedid, ext), now)
            return publish(event)

        return wrapped

    def _on_lane(self, on_progress: Callable[[Any], Any]) -> Callable[[Any], Any]:
        stamps = self.lane

        def wrapped(payload: Any) -> Any:
            progress = getattr(payload, "progress", payload)
            if type(progress) is CallProgress:
                now = time.monotonic()
                for ext in progress.ringing:
                    stamps.setdefault((progress.linkedid, ext), now)
            return on_progress(payload)

        return wrapped

    def _audience_put_line(self, put_line: Callable[..., None]) -> Callable[..., None]:
        stamps = self.hub

        def wrapped(audience: Any, line: str, received_at: float | None = None) -> None:
            if received_at is not None:
                key = (_linkedid(line), _ext(audience))
                stamps.setdefault(key, time.monotonic())
            put_line(audience, line, received_at)

        return wrapped

    def _audience_flush(self, flush: Callable[[Any], list[float]]) -> Callable[[Any], Any]:
        def wrapped(audience: Any) -> list[float]:
            pops = [_linkedid(line) for line, at in audience._lines if at is not None]
            if not pops:
                return flush(audience)
            now = time.monotonic()
            ext = _ext(audience)
            writes: dict[int, float] = {}
            for lid in pops:
                self.flush.setdefault((lid, ext), now)
                self.written.setdefault((lid, ext), writes)
            self._current.append(writes)
            try:
                return flush(audience)
            finally:
                self._current.pop()

        return wrapped

    def _writer(
        self, transport: asyncio.BaseTransport, write_now: Callable[[bytes], bool]
    ) -> Callable[[bytes], bool]:
        port = int(transport.get_extra_info("peername")[1])
        current = self._current

        def wrapped(frame: bytes) -> bool:
            ok = write_now(frame)
            if current:
                if ok:
                    current[-1].setdefault(port, time.monotonic())
                else:
                    self.refused += 1
            return ok

        return wrapped

    # -- the figures ------------------------------------------------------------------------
    def split(
        self,
        receipts: Iterable[tuple[str, str, int, float]],
        ring_at: dict[tuple[str, str], float],
    ) -> dict[str, Any]:
        """Each received pop (linkedid, extension, client port, read at) split into the
        stages; the slowest 1 % of pops' mean per stage (where the tail's time goes)."""
        rows: list[tuple[float, list[float]]] = []
        unstamped = 0
        for lid, ext, port, at in receipts:
            key = (lid, ext)
            ring = ring_at.get(key)
            written = self.written.get(key, {}).get(port)
            marks = (ring, self.fact.get(key), self.taken.get(key), self.lookup.get(key),
                     self.bus.get(key), self.lane.get(key), self.hub.get(key),
                     self.flush.get(key), written, at)  # fmt: skip
            if any(m is None for m in marks):
                unstamped += 1
                continue
            ms = [(b - a) * 1000 for a, b in itertools.pairwise(marks)]  # type: ignore[operator]
            rows.append(((at - ring) * 1000, ms))  # type: ignore[operator]
        return {"split": stage_table(rows, STAGES), "split_count": len(rows),
                "unstamped": unstamped, "refused": self.refused, "held": dict(self.held),
                "pop_readers": (len(self.reader_wait), *_ms(self.reader_wait),
                            *_ms(self.reader_hold))}  # fmt: skip


def _ms(values: list[float]) -> tuple[float, float, float]:
    ms = [v * 1000 for v in values]
    return _pct(ms, 50), _pct(ms, 99), sum(ms)


def _linkedid(line: str) -> str:
    return str(json.loads(line)["data"]["linkedid"])


def _ext(audience: Any) -> str:
    return min(audience.viewer.extensions)


def by_second(
    pops: Iterable[tuple[float, float]], start: float, width: float = 1.0
) -> list[tuple[int, int, float, float, float]]:
    """Latency over the run: pops (rang at, ms) by the ``width``-second slice of the run
    their phone rang in: (slice, count, p50, p99, max)."""
    slices: dict[int, list[float]] = {}
    for at, ms in pops:
        slices.setdefault(int((at - start) // width), []).append(ms)
    return [(s, len(v), _pct(v, 50), _pct(v, 99), max(v)) for s, v in sorted(slices.items())]


def table_lines(table: dict[str, tuple[float, float, float, float]]) -> list[str]:
    """A ``stage_table`` as the benchmarks print it, a line per stage."""
    return [f"{'':18}{name:13} {p50:7.1f} {p99:7.1f} {mx:7.1f}   tail {tail:7.1f}"
            for name, (p50, p99, mx, tail) in table.items()]  # fmt: skip


def format_split(r: dict[str, Any]) -> str:
    lines = [f"{'':16}stages (p50/p99/max ms; mean in the slowest 1 %), {r['split_count']} pops "
             f"stamped, {r['unstamped']} written by their handler or unstamped, "
             f"{r['refused']} writes left to a handler:"]  # fmt: skip
    lines += table_lines(r["split"])
    held = "; ".join(f"{k} {t * 1000:.0f} ms in all, longest {m * 1000:.1f} ms, {n} over 10 ms"
                     for k, (t, m, n) in r.get("held", {}).items())  # fmt: skip
    lines.append(f"{'':16}the link's consumer held by: {held}")
    if r.get("pop_readers"):
        n, w50, w99, wsum, h50, h99, hsum = r["pop_readers"]
        lines.append(f"{'':16}pop readers: {n} uses, waited p50/p99 {w50:.1f}/{w99:.1f} ms "
                     f"({wsum:.0f} ms in all), held p50/p99 {h50:.1f}/{h99:.1f} ms "
                     f"({hsum:.0f} ms in all)")  # fmt: skip
    return "\n".join(lines)


def format_seconds(rows: list[tuple[int, int, float, float, float]]) -> str:
    out = [f"{'':16}by second of the run (pops, p50/p99/max ms):"]
    for s, n, p50, p99, mx in rows:
        out.append(f"{'':18}{s:3d}s {n:6d}  {p50:6.1f} {p99:6.1f} {mx:6.1f}")
    return "\n".join(out)


def format_pauses(name: str, p: dict[str, Any]) -> str:
    late = ", ".join(f"{d:g} ms at {at:g}s" for at, d in p["late"][:12])
    more = f" (+{len(p['late']) - 12})" if len(p["late"]) > 12 else ""
    return (f"{'':16}{name}: {p['gc_count']} GCs, {p['gc_ms']:.0f} ms in all, longest "
            f"{p['gc_max_ms']:.1f} ms, full {p['gc_full']}; loop late > {LATE * 1000:g} ms: "
            f"{len(p['late'])}{': ' + late + more if late else ''}")  # fmt: skip


# -- in a server of its own (``bench_pop_cluster``) -----------------------------------------
SITE = """import os, sys
if os.environ.get("POP_STAGES_OUT"):
    sys.path.insert(0, os.environ["POP_STAGES_ROOT"])
    from benchmarks.pop_stages import install_in_server
    install_in_server(os.path.join(os.environ["POP_STAGES_OUT"], f"{os.getpid()}.json"))
"""
"""A ``sitecustomize`` that stamps a ``run.py serve`` process (``install_in_server``)
when the benchmark sets ``POP_STAGES_OUT`` (a folder: one file per process id), no
product code knowing of it."""


def install_in_server(out: str, every: float = 0.5) -> Stages:
    """Stamp this server's pops from the moment its bus publishes them (another
    process's, through the fan-out, or its own link's) to the socket write, and write
    the stamps to ``out`` (JSON) every ``every`` seconds from a thread of its own."""
    import threading

    from crm.events import EventBus
    from crm.fanout import Fanout
    from crm.store.pg_notify import PgChannel
    from web.live import LiveHub

    stages = Stages()
    stages._wrap_class(EventBus, "publish", lambda p: _unbound(stages._on_publish, p))
    hop = stages.hop = {"sending": {}, "sent": {}, "received": {}}
    original_send = PgChannel.send_many

    async def send_many(self: Any, texts: list[str]) -> None:
        keys = [k for text in texts for k in _ringing_keys(text)]
        now = time.monotonic()
        for key in keys:
            hop["sending"].setdefault(key, now)
        await original_send(self, texts)
        now = time.monotonic()
        for key in keys:
            hop["sent"].setdefault(key, now)

    original_on_message = Fanout._on_message

    def on_message(self: Any, text: str) -> None:
        now = time.monotonic()
        for key in _ringing_keys(text):
            hop["received"].setdefault(key, now)
        original_on_message(self, text)

    stages._wrap_class(PgChannel, "send_many", lambda _m: send_many)
    stages._wrap_class(Fanout, "_on_message", lambda _m: on_message)
    stages._wrap_class(LiveHub, "_on_progress", lambda p: _unbound(stages._on_lane, p))
    stages.install()

    def dump() -> None:
        while True:
            time.sleep(every)
            data = {name: {"|".join(k): v for k, v in dict(getattr(stages, name)).items()}
                    for name in ("bus", "lane", "hub", "flush")}  # fmt: skip
            data["written"] = {"|".join(k): dict(v) for k, v in dict(stages.written).items()}
            for name, stamps in hop.items():
                data[name] = {"|".join(k): v for k, v in dict(stamps).items()}
            with open(out + ".tmp", "w") as fh:
                json.dump(data, fh)
            os.replace(out + ".tmp", out)

    threading.Thread(target=dump, name="pop-stages", daemon=True).start()
    return stages


def _ringing_keys(text: str) -> list[tuple[str, str]]:
    """The (linkedid, extension) a fan-out message of a ``call_progress`` rings."""
    if '"call_progress"' not in text:
        return []
    payload = json.loads(text).get("payload") or {}
    progress = payload.get("progress", payload)
    return [(progress["linkedid"], ext) for ext in progress.get("ringing") or ()]


def _unbound(make: Callable[[Any], Any], method: Any) -> Any:
    """A class-level wrap of a method that ``make`` wraps as a plain function of its
    argument: the instance is passed through."""

    def wrapped(self: Any, arg: Any) -> Any:
        return make(lambda a: method(self, a))(arg)

    return wrapped


def load_server(path: str) -> Stages:
    """A server's stamps as ``install_in_server`` wrote them."""
    stages = Stages()
    with open(path) as fh:
        data = json.load(fh)
    for name in ("bus", "lane", "hub", "flush"):
        getattr(stages, name).update({tuple(k.split("|")): v for k, v in data[name].items()})
    stages.written.update(
        {tuple(k.split("|")): {int(p): t for p, t in v.items()} for k, v in data["written"].items()}
    )
    stages.hop = {name: {tuple(k.split("|")): v for k, v in data.get(name, {}).items()}
                  for name in ("sending", "sent", "received")}  # fmt: skip
    return stages


def split_hop(
    link: Stages, servers: list[Stages], receipts: Iterable[tuple[int, str, str, int, float]]
) -> dict[str, tuple[float, float, float, float]]:
    """The fan-out's hop of the pops read from the other processes: the link's process's
    bus to its send (``Fanout``'s queue), the ``NOTIFY`` statement, PostgreSQL's delivery
    and the other's loop to its listener, its decoding to its bus."""
    names = ("bus->sending", "sending->sent", "sent->received", "received->bus")
    rows: list[tuple[float, list[float]]] = []
    for i, lid, ext, _port, at in receipts:
        key = (lid, ext)
        other = servers[i]
        marks = (link.bus.get(key), link.hop["sending"].get(key), link.hop["sent"].get(key),
                 other.hop["received"].get(key), other.bus.get(key))  # fmt: skip
        if any(m is None for m in marks):
            continue
        ms = [(b - a) * 1000 for a, b in itertools.pairwise(marks)]  # type: ignore[operator]
        rows.append((at, ms))
    out = {}
    for j, name in enumerate(names):
        values = [ms[j] for _, ms in rows]
        out[name] = (_pct(values, 50), _pct(values, 99), max(values, default=0.0), 0.0)
    return out


def split_remote(
    servers: list[Stages],
    receipts: Iterable[tuple[int, str, str, int, float]],
    ring_at: dict[tuple[str, str], float],
) -> dict[str, tuple[float, float, float, float]]:
    """Like ``Stages.split`` for pops read from server ``i`` (receipts: server, linkedid,
    extension, client port, read at), from its bus on: what its link's process and the
    fan-out took is ``pbx->bus``."""
    names = ("pbx->bus", "bus->lane", "lane->hub", "hub->flush", "flush->write", "write->read")
    rows: list[tuple[float, list[float]]] = []
    for i, lid, ext, port, at in receipts:
        s = servers[i]
        key = (lid, ext)
        marks = (ring_at.get(key), s.bus.get(key), s.lane.get(key), s.hub.get(key),
                 s.flush.get(key), s.written.get(key, {}).get(port), at)  # fmt: skip
        if any(m is None for m in marks):
            continue
        ms = [(b - a) * 1000 for a, b in itertools.pairwise(marks)]  # type: ignore[operator]
        rows.append(((at - marks[0]) * 1000, ms))  # type: ignore[operator]
    return stage_table(rows, names)
