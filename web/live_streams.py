"""One browser's stream of live updates (``web.live``) and how its bytes reach it:
who is watching (``Viewer``), the connection's bounded queue (``Client``), the
connections of one viewer that share every message (``Audience``), and the writes the
hub makes itself for idle connections (``Flusher``)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crm.access import Scope

log = logging.getLogger(__name__)

CLIENT_QUEUE = 200
FLUSH_WINDOW = 0.005
"""Seconds between two writes to the browsers when messages come close together
(``Flusher``); the pause doubles while they keep coming, up to ``FLUSH_WINDOW_MAX``."""
FLUSH_WINDOW_MAX = 0.05


@dataclass(frozen=True)
class Viewer:
    """One logged-in user as the hub sees them."""

    user_id: int
    role: str
    extensions: frozenset[str]
    scope: Scope
    watch: frozenset[str] | None
    """Extensions whose live calls are listed for this user; None: every call."""
    locale: tuple[str, str, str] = ("en", "UTC", "US")
    """Language, time zone and number region the user's rows are rendered in."""
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        # the hub looks viewers up per connection and per message: hash them once
        compared = (getattr(self, f.name) for f in dataclasses.fields(self) if f.compare)
        object.__setattr__(self, "_hash", hash(tuple(compared)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def supervisor(self) -> bool:
        return self.role in ("manager", "admin")


class Client:
    """One SSE connection: a bounded queue of ready-to-send JSON lines."""

    def __init__(self, viewer: Viewer, maxsize: int = CLIENT_QUEUE) -> None:
        self.viewer = viewer
        self.maxsize = maxsize
        self.dropped = 0
        self.written = 0
        """Messages the hub wrote to the browser itself (``attach``)."""
        self.closed = False
        self.audience: Audience | None = None
        """The connections of its viewer (``Audience``), once the hub connected it."""
        self.session: str | None = None
        """The store's id of the login session this stream rides on (``web.sessions``)."""
        self.in_flight: list[float] = []
        """Receive times of the pops in the messages ``wait`` last returned: the SSE
        handler reports them (``LiveHub.written``) once it has written them."""
        self._queue: deque[tuple[str, float | None]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._write_now: Callable[[bytes], bool] | None = None
        self._flusher: Flusher | None = None
        self._outbox: list[str] = []

    def attach(self, write_now: Callable[[bytes], bool], flusher: Flusher) -> None:
        """Let the hub write messages to the browser itself while the SSE handler waits
        with nothing queued: ``flusher`` writes them at the end of the event loop's
        turn, all of this turn's messages in one ``write_now`` (one SSE frame each, one
        write); ``write_now`` says whether they went out (False: the browser's buffer is
        full or it left; they are then queued for the handler, which waits for the
        browser).  At hundreds of connections a turn of the handler's task per message
        (wake, resume, write, wait again) cost the server more than the write itself."""
        self._write_now = write_now
        self._flusher = flusher
        if self.audience is not None:
            self.audience.attached(self)

    def put(self, kind: str, data: Any, received_at: float | None = None) -> bool:
        """Queue a message; ``received_at``: it is a screen pop, and when its event was
        read from the PBX.  True: it was written to the browser at once (``attach``)."""
        if self.closed:
            return False
        return self.put_line(message_line(kind, data), received_at)

    def put_line(self, line: str, received_at: float | None = None) -> bool:
        """Queue a message already encoded (``message_line``): the hub encodes a message
        once for every connection that sees the same thing.  True: written at once."""
        if self.closed:
            return False
        if self._outbox:
            self._outbox.append(line)
            return True
        flusher = self._flusher
        if flusher is not None and self._waiter is not None and not self._queue:
            self._outbox.append(line)
            flusher.add(self)
            return True
        self._enqueue(line, received_at)
        return False

    def flush(self) -> None:
        """Write what the hub gave this connection this turn (``attach``), or, when the
        browser cannot take it now, queue it for the handler (in order: nothing was
        queued meanwhile, ``put_line`` adds to the outbox while it is not empty)."""
        lines, self._outbox = self._outbox, []
        if not lines or self.closed or self._write_now is None:
            return
        frame = sse_frames(lines)
        if self._write_now(frame):
            self.written += len(lines)
            return
        for line in lines:
            self._enqueue(line, None)  # its pop was counted as written already

    def take(self, lines: list[tuple[str, float | None]], frame: bytes) -> bool:
        """Its audience's messages of this turn (``Audience.flush``), ``frame`` the SSE
        frames of them all, built once for every connection of the audience: written
        at once when the handler waits and the browser can take it (True: the pops in
        them are delivered), else queued for the handler, in order.  Messages of its
        own not written yet this turn (``put_line``) leave with them, after them."""
        if self.closed:
            return False
        if self._outbox:
            self._outbox[:0] = [line for line, _ in lines]
            return True
        write_now = self._write_now
        if (
            write_now is not None
            and self._waiter is not None
            and not self._queue
            and write_now(frame)
        ):
            self.written += len(lines)
            return True
        for line, received_at in lines:
            self._enqueue(line, received_at)
        return False

    def _enqueue(self, line: str, received_at: float | None) -> None:
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((line, received_at))
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pending(self) -> int:
        return len(self._queue)

    async def wait(self, timeout: float) -> list[str]:
        """The queued messages (maybe none, after at most ``timeout`` seconds).

        A bare future that ``put`` resolves, and one timer per connection that outlives
        the waits: it is armed when none is pending and fires ``timeout`` later (a wait
        may then return empty before its own ``timeout``).  At hundreds of connections
        ``asyncio.wait_for`` (a task, a second future and a timer for every message) was
        a large share of the server's time per pop."""
        if not self._queue and not self.closed:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            if self._timer is None:
                self._timer = loop.call_later(timeout, self._on_timer)
            try:
                await waiter
            finally:
                self._waiter = None
        out = [line for line, _ in self._queue]
        self.in_flight = [at for _, at in self._queue if at is not None]
        self._queue.clear()
        return out

    def _on_timer(self) -> None:
        self._timer = None
        self._wake()

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake()


class Audience:
    """The connections of one viewer (a user's tabs: equal ``Viewer``s), which see every
    call and row alike: the hub decides and encodes each message once for them all and
    hands it here once, not once per connection (``LiveHub._offer``), and remembers here
    which calls they were told of and popped.  Connections the hub writes to itself
    (``Client.attach``) get each turn's messages as one frame built once (``flush``):
    per connection that is one write, nothing else; the others (HTTP/1.0, a test's
    connection) get each message queued at once.  At 500 tabs of two reps, a pop was
    500 decisions, queue checks and outbox appends before; now it is two."""

    def __init__(self, viewer: Viewer, flusher: Flusher | None = None) -> None:
        self.viewer = viewer
        self.calls: set[str] = set()
        """Linkedids its connections were told about (so they hear how they end)."""
        self.popped: set[str] = set()
        """Linkedids it got a ringing pop for (the pop's latency is measured once)."""
        self._flusher = flusher
        self._direct: dict[Client, None] = {}
        """Connections the hub writes to (``Client.attach``), in the order they came."""
        self._queued: dict[Client, None] = {}
        """The other connections: each message goes to their queue at once."""
        self._lines: list[tuple[str, float | None]] = []
        """Messages for ``_direct`` this turn, with a pop's receive time."""

    def __len__(self) -> int:
        return len(self._direct) + len(self._queued)

    def add(self, client: Client) -> None:
        client.audience = self
        self._queued[client] = None

    def attached(self, client: Client) -> None:
        if self._queued.pop(client, 0) is None:
            self._direct[client] = None

    def remove(self, client: Client) -> None:
        self._queued.pop(client, None)
        self._direct.pop(client, None)

    def put_line(self, line: str, received_at: float | None = None) -> None:
        """Give every connection a message encoded once (``message_line``)."""
        for client in self._queued:
            client.put_line(line, received_at)
        if self._direct:
            if not self._lines and self._flusher is not None:
                self._flusher.add(self)
            self._lines.append((line, received_at))

    def flush(self) -> list[float]:
        """Write this turn's messages to every attached connection: one frame for all
        of them (a slow browser's are queued for its own handler: ``Client.take``).
        Returns the receive times of the pops written, once per connection."""
        lines, self._lines = self._lines, []
        if not lines:
            return []
        frame = sse_frames([line for line, _ in lines])
        stamps = [at for _, at in lines if at is not None]
        written: list[float] = []
        for client in list(self._direct):
            if client.take(lines, frame) and stamps:
                written.extend(stamps)
        return written


class Flusher:
    """Writes what the hub handed idle connections (``Client.attach``) at the end of the
    event loop's turn: every message a connection got in one turn (several calls' events
    read from one AMI packet, say) leaves in one write.

    A message that comes while the pause after the last flush runs waits for its end,
    and the next pause is twice as long (``window`` up to ``window_max``); one that comes
    after the pause leaves at once and the pause is short again.  A pop outside a burst
    leaves at once; in a burst (hundreds of calls ringing within a second) each browser
    gets a write every ``window_max`` holding every message since, not one a message.
    Each write to a browser is a system call of its own, here and in the browser's
    machine, and at hundreds of browsers they, not the JSON, are most of a pop's cost:
    at 10x speed on two CPUs, writes every 5 ms took so much CPU that the pops of a
    burst queued behind them for half a second (p99), and a write every 50 ms holding
    several pops got them out within a quarter of that.  A pause is never shorter than
    the last flush took, so the writes keep to half the loop's time at most."""

    def __init__(self, window: float = FLUSH_WINDOW, window_max: float = FLUSH_WINDOW_MAX) -> None:
        self.window = window
        self.window_max = window_max
        self.observe: Callable[[list[float]], None] | None = None
        """Told the receive times of the pops an ``Audience`` wrote, after the writes."""
        self._dirty: list[Client | Audience] = []
        self._due = float("-inf")
        """When the next flush may start."""
        self._pause = window
        """The pause after the next flush (``window``, doubled in a burst)."""

    def add(self, client: Client | Audience) -> None:
        if not self._dirty:
            loop = asyncio.get_running_loop()
            wait = self._due - time.monotonic()  # not loop.time(): uvloop's is per turn
            if wait > 0:
                loop.call_later(wait, self.flush)
                self._pause = min(max(self.window, self.window_max), self._pause * 2)
            else:
                loop.call_soon(self.flush)
                self._pause = self.window
        self._dirty.append(client)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        if not dirty:
            return
        start = time.monotonic()
        written: list[float] = []
        for client in dirty:
            try:
                stamps = client.flush()
            except Exception:
                log.exception("live: could not write to a browser")
                continue
            if stamps:
                written.extend(stamps)
        end = time.monotonic()
        self._due = end + max(self._pause, end - start)
        if written and self.observe is not None:
            self.observe(written)


def message_line(kind: str, data: Any) -> str:
    """One SSE message's JSON, as ``Client.put`` encodes it."""
    return json.dumps({"kind": kind, "data": data}, separators=(",", ":"))


@functools.lru_cache(maxsize=64)
def sse_frame(line: str) -> bytes:
    """A message line as its SSE frame (one ``data:`` line): shared, like the line, by
    every connection it goes to at once."""
    return f"data: {line}\n\n".encode()


def sse_frames(lines: list[str]) -> bytes:
    """A turn's message lines as the bytes of one write (a single one's frame as cached)."""
    return sse_frame(lines[0]) if len(lines) == 1 else b"".join(map(sse_frame, lines))
