"""The tracker in a process of its own: the AMI link's reading, parsing and tracking on a
second core.

On a busy PBX the CRM's one event loop does everything: it reads the AMI bytes, splits
and parses the frames, feeds the tracker, then writes the calls, renders the live rows
and the screen pops and writes them to the browsers.  Measured at 300 calls/s (the
burst capture, 116 events a call), splitting and parsing took about a quarter of that
loop and the tracker a sixth, so the loop saturated while the machine's second core
sat mostly idle.  The tracker is pure (events in, facts out, no I/O, no clock), so it
can run anywhere: here in a child process that gets the raw bytes the link read and
answers with the facts, in order.

The link (``AmiLink``) keeps everything else: the socket, the login, actions and their
answers, the watchdog, the fact queue and its merging and back-pressure.  The child
sends back, in the order they came, the facts and the frames the link must see itself:
responses, list events of our own actions (they carry an ``ActionID``), and
``Shutdown``.  A command the link sends after some bytes (begin a resync, tick, flush)
is carried out after those bytes, so the order the tracker sees is the order the
in-process tracker would see.

Nothing read is lost on the way: the link sends every chunk it reads and counts the
bytes the child has not answered yet; past ``INFLIGHT_MAX`` it stops reading the socket,
as it does when the fact queue is full.  If the child dies (a crash, the OOM killer),
the link logs it, starts a new one and reconnects: the new tracker learns the calls
still up from the resync's channel list, as after any reconnect; the calls the dead
tracker had not finished are written by the link manager's recovery of calls left
behind the next time it runs (a takeover or a restart), not at once.

The recipe for the tracker (``factory``) crosses to the child by pickling, so it must be
a module-level callable, or a ``functools.partial`` of one with picklable arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import dataclasses
import logging
import os
import pickle
import socket
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .link import _ErrorLog, feed_event, guarded, tracker_wants
from .protocol import FrameReader, Message, first

log = logging.getLogger(__name__)

INFLIGHT_MAX = 64 * 1024 * 1024
"""Bytes sent to the child and not yet answered beyond which the link stops reading the
socket (about 12 s of a 300 calls/s PBX)."""
START_TIMEOUT = 30.0
"""Seconds for a new child to import the tracker and say hello (a cold start on a slow
disk takes a few seconds)."""
STOP_TIMEOUT = 5.0

_HEADER = struct.Struct("!I")
ROOT = Path(__file__).resolve().parents[1]

Factory = Callable[[], Any]


def _by_fields(obj: Any) -> tuple[type, tuple[Any, ...]]:
    return type(obj), tuple(getattr(obj, name) for name in type(obj).__match_args__)


def fast_pickling(*modules: ModuleType) -> None:
    """Pickle the facts of ``modules`` as their constructor's arguments: a frozen slots
    dataclass otherwise unpickles through a Python loop over its fields, which cost the
    parent's event loop about a twentieth of its time at 300 calls/s."""
    for module in modules:
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and dataclasses.is_dataclass(value)
                and all(f.init and not f.kw_only for f in dataclasses.fields(value))
            ):
                copyreg.pickle(value, _by_fields)


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _send(sock: socket.socket, obj: Any) -> None:
    sock.sendall(_frame(obj))


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            return None
        got += k
    return bytes(buf)


def _recv(sock: socket.socket) -> Any:
    """The next object the parent sent; None once it went away."""
    head = _recv_exact(sock, _HEADER.size)
    body = _recv_exact(sock, _HEADER.unpack(head)[0]) if head is not None else None
    return None if body is None else pickle.loads(body)


# -- the child ------------------------------------------------------------------------


class _Child:
    """The tracker's side: bytes in, facts and the link's frames out, in order."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self.reader: FrameReader | None = None
        self.conn: int | None = None
        self.errors = _ErrorLog()
        self._wants = tracker.wants

    def _skip(self, name: str, text: str) -> bool:
        if tracker_wants(self._wants, name, text):
            return False
        # our own actions' list events: the link resolves its futures with them
        return "ActionID:" not in text and name != "Shutdown"

    def data(self, conn: int, data: bytes, now: float) -> tuple[int, bool, list[Any]]:
        if conn != self.conn or self.reader is None:
            # a new connection: a partial frame of the last one must not join its bytes
            self.reader = FrameReader(skip=self._skip)
            self.conn = conn
        reader = self.reader
        before = reader.frames
        msgs = reader.feed(data)
        out: list[Any] = []
        had_event = False
        feed = self.tracker.feed
        for msg in msgs:
            try:
                if "Event" not in msg:
                    if "Response" in msg:
                        out.append(msg)
                    elif "Banner" in msg:  # the AMI version: the tracker refuses AMI 1.x
                        greeting = getattr(self.tracker, "greeting", None)
                        if greeting is not None:
                            out.extend(greeting(first(msg["Banner"]), now))
                    continue
                had_event = True
                if "ActionID" in msg or msg["Event"] == "Shutdown":
                    out.append(msg)
                out.extend(feed_event(feed, msg, now))
            except Exception:
                self.errors.report(first(msg.get("Event")) or "response", msg)
        return reader.frames - before, had_event, out

    def open_ids(self) -> frozenset[str]:
        fn = getattr(self.tracker, "open_ids", None)
        return frozenset(guarded(fn, "open_ids")) if fn is not None else frozenset()


def child_main(sock: socket.socket) -> None:
    """The child's whole life: build the tracker, answer commands until told to stop or
    the parent goes away (its end of the socket closes)."""
    start = _recv(sock)
    if start is None:
        return
    factory, log_level = start
    from . import facts as call_facts
    from .presence import facts as presence_facts

    fast_pickling(call_facts, presence_facts)
    fmt = "%(asctime)s %(levelname)s tracker process: %(name)s: %(message)s"
    logging.basicConfig(level=log_level, stream=sys.stderr, format=fmt)
    child = _Child(factory())
    _send(sock, ("hello", tuple(getattr(child.tracker, "resync_actions", ()))))
    while (cmd := _recv(sock)) is not None:
        kind = cmd[0]
        if kind == "data":
            _, conn, data, now = cmd
            frames, had_event, out = child.data(conn, data, now)
            _send(sock, ("out", conn, len(data), frames, had_event, out))
        elif kind == "tick":
            facts = guarded(lambda at=cmd[1]: child.tracker.tick(at), "tick")
            _send(sock, ("tick", facts, child.open_ids()))
        elif kind == "resync":
            guarded(lambda at=cmd[1]: child.tracker.begin_resync(at), "begin_resync")
        elif kind == "flush":
            facts = guarded(child.tracker.flush, "flush")
            _send(sock, ("answer", facts, child.open_ids()))
        elif kind == "sync":
            _send(sock, ("answer", [], child.open_ids()))
        elif kind == "stop":
            return


# -- the parent -----------------------------------------------------------------------


class TrackerProcess:
    """The link's side of the child: a tracker whose work happens elsewhere.

    Given to ``AmiLink`` in place of a tracker (``worker`` names it), directly or inside
    a wrapper that delegates ``worker``.  The link starts and stops it, sends it what it
    reads (``send_data``) and gets the answers through the callbacks it sets."""

    def __init__(self, factory: Factory, *, inflight_max: int = INFLIGHT_MAX) -> None:
        self.factory = factory
        self.inflight_max = inflight_max
        self.inflight = 0
        """Bytes sent and not yet answered."""
        self.resync_actions: tuple[str, ...] = ()
        self.starts = 0
        self.on_out: Callable[[int, int, bool, list[Any]], None] | None = None
        """(connection, frames, had an event, facts and frames in order)."""
        self.on_facts: Callable[[list[Any]], None] | None = None
        self.on_died: Callable[[str], None] | None = None
        self._open: frozenset[str] = frozenset()
        self._proc: Any = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._answers: deque[asyncio.Future[list[Any]]] = deque()
        self._stopping = False

    @property
    def worker(self) -> TrackerProcess:
        return self

    @property
    def alive(self) -> bool:
        return self._writer is not None and self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def __repr__(self) -> str:
        return f"<TrackerProcess pid={self.pid} alive={self.alive}>"

    # -- lifecycle

    async def start(self) -> None:
        """Start a child (again, after one died) and wait for its hello."""
        await self._discard()
        self._stopping = False
        parent_sock, child_sock = socket.socketpair()
        # A fresh interpreter (not multiprocessing's spawn, which re-runs the parent's
        # main script): the child imports only the tracker.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
        fd = child_sock.fileno()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ami_bridge.tracker_process", str(fd)],
                pass_fds=(fd,), env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            child_sock.close()
        reader, writer = await asyncio.open_connection(sock=parent_sock)
        level = logging.getLogger().getEffectiveLevel()
        writer.write(_frame((self.factory, level)))
        try:
            async with asyncio.timeout(START_TIMEOUT):
                hello = await self._read(reader)
        except Exception:
            hello = None
        if hello is None or hello[0] != "hello":
            writer.close()
            proc.kill()
            await asyncio.get_running_loop().run_in_executor(None, proc.wait)
            raise RuntimeError("the tracker process did not start (see its log above)")
        self.resync_actions = tuple(hello[1])
        self._proc, self._writer = proc, writer
        self.inflight = 0
        self.starts += 1
        self._reader_task = asyncio.create_task(self._read_loop(reader), name="tracker-process")
        log.info("tracker process %d started", proc.pid)

    async def stop(self) -> None:
        """Ask the child to end (after what it was sent) and wait for it, bounded."""
        self._stopping = True
        if self._writer is not None and not self._writer.is_closing():
            with contextlib.suppress(Exception):
                self._write(("stop",))
        await self._discard()

    async def _discard(self) -> None:
        writer, self._writer = self._writer, None
        proc, self._proc = self._proc, None
        task, self._reader_task = self._reader_task, None
        if proc is not None:
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(None, proc.wait, STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                await loop.run_in_executor(None, proc.wait)
        if writer is not None:
            writer.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._fail_answers()

    def _fail_answers(self) -> None:
        while self._answers:
            fut = self._answers.popleft()
            if not fut.done():
                fut.set_exception(ConnectionError("the tracker process ended"))

    # -- what the link sends

    def send_data(self, conn: int, data: bytes, now: float) -> None:
        self.inflight += len(data)
        self._write(("data", conn, data, now))

    def tick(self, at: float) -> list[Any]:
        """Asked; the facts come back through ``on_facts``."""
        if self.alive:
            self._write(("tick", at))
        return []

    def begin_resync(self, at: float) -> None:
        if self.alive:
            self._write(("resync", at))

    async def flush(self) -> list[Any]:
        """End every open call: the facts, after everything sent before is answered."""
        return await self._ask(("flush",))

    async def settle(self) -> None:
        """Until everything sent so far is answered."""
        await self._ask(("sync",))

    def open_ids(self) -> set[str]:
        """The calls the tracker holds, as of its last tick (a second old at most)."""
        return set(self._open)

    def wants(self, name: str, frame_text: str) -> bool:
        raise TypeError("the tracker process reads the frames itself")

    def feed(self, msg: Message, at: float) -> list[Any]:
        raise TypeError("the tracker process reads the frames itself")

    async def _ask(self, cmd: tuple[Any, ...]) -> list[Any]:
        if not self.alive:
            return []
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._answers.append(fut)
        self._write(cmd)
        return await fut

    def _write(self, obj: Any) -> None:
        if self._writer is None:
            raise ConnectionError("the tracker process is not running")
        self._writer.write(_frame(obj))

    # -- what the child answers

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Any:
        try:
            head = await reader.readexactly(_HEADER.size)
            body = await reader.readexactly(_HEADER.unpack(head)[0])
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return pickle.loads(body)

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        proc = self._proc
        while True:
            msg = await self._read(reader)
            if msg is None:
                break
            try:
                self._dispatch(msg)
            except Exception:
                log.exception("handling the tracker process's %s failed", msg[0])
        if self._stopping or self._proc is not proc:
            return
        self._writer = None
        self._fail_answers()
        code = proc.poll() if proc is not None else None
        with contextlib.suppress(Exception):
            code = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 1.0)
        why = f"the tracker process ended (exit code {code})"
        log.error("%s", why)
        if self.on_died is not None:
            self.on_died(why)

    def _dispatch(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "out":
            _, conn, nbytes, frames, had_event, items = msg
            self.inflight -= nbytes
            if self.on_out is not None:
                self.on_out(conn, frames, had_event, items)
        elif kind == "tick":
            self._open = msg[2]
            if msg[1] and self.on_facts is not None:
                self.on_facts(msg[1])
        elif kind == "answer":
            self._open = msg[2]
            fut = self._answers.popleft()
            if not fut.done():
                fut.set_result(msg[1])


if __name__ == "__main__":
    child_main(socket.socket(fileno=int(sys.argv[1])))
