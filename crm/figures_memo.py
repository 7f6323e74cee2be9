"""The managers' figures, computed once per state of the database and shared.

Sixteen managers opening the month's audit or reports ask the same question many times a
minute, and on a 2-CPU server each answer cost 50-90 ms of SQL: they queued behind each
other (issue 17: p50 0.5-1 s).  The answer only changes when something is written, so it
is kept under the database's *data version* (``Store.data_version``: SQLite's
``PRAGMA data_version``, PostgreSQL's current snapshot) and served again while that
version holds.  Any commit, from this process or another, gives a new version, so a page
never shows figures older than the database it read the version from: the memo is exact,
not a time-to-live cache.  Requests for the same figures that arrive while they are being
computed wait for that one computation instead of starting their own.

Values are shared between requests: callers must treat them as read-only.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

MEMO_SIZE = 256
"""Figures kept (period x scope x kind); the oldest used is dropped first.  A team's
month is a handful of small objects, so this is well under a megabyte."""


class FiguresMemo:
    def __init__(
        self, version: Callable[[], Awaitable[Hashable | None]], size: int = MEMO_SIZE
    ) -> None:
        self._version = version
        self._size = size
        self._kept: OrderedDict[Hashable, tuple[Hashable, Any]] = OrderedDict()
        self._running: dict[tuple[Hashable, Hashable], asyncio.Task[Any]] = {}
        self.computed = 0
        """How many times figures were computed rather than served again (for tests and
        the benchmark's explanation)."""

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """``compute()``'s value for ``key`` at the database's current version.  Without
        a version (an in-memory database, which has no other connection to see it by)
        every call computes."""
        version = await self._version()
        if version is None:
            self.computed += 1
            return await compute()
        kept = self._kept.get(key)
        if kept is not None and kept[0] == version:
            self._kept.move_to_end(key)
            return kept[1]  # type: ignore[no-any-return]
        running = self._running.get((key, version))
        if running is None:
            running = asyncio.ensure_future(self._compute(key, version, compute))
            self._running[(key, version)] = running
            # its failure is the waiters' to see; if they all left, nobody is told twice
            running.add_done_callback(lambda t: t.cancelled() or t.exception())
        # A waiter that gives up (its browser left) must not cancel the others' answer.
        return await asyncio.shield(running)  # type: ignore[no-any-return]

    async def _compute(
        self, key: Hashable, version: Hashable, compute: Callable[[], Awaitable[T]]
    ) -> T:
        try:
            self.computed += 1
            value = await compute()
        finally:
            del self._running[(key, version)]
        self._kept[key] = (version, value)
        self._kept.move_to_end(key)
        while len(self._kept) > self._size:
            self._kept.popitem(last=False)
        return value
