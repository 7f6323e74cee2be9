"""Sliding-window rate limits for actions that must not be repeated fast: the admin's
"test connection" button (it opens a TCP connection to a host the admin types, so it must
not become a port scanner) and writes through the API (one token must not fill the
database).

In memory and per process: enough to stop a runaway script or a stolen session from one
browser; several web processes each apply the limit.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable


class RateLimit:
    """At most ``limit`` events per ``window`` seconds for each key."""

    def __init__(self, limit: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.limit = max(1, int(limit))
        self.window = float(window)
        self.clock = clock
        self._hits: dict[Hashable, deque[float]] = {}

    def _recent(self, key: Hashable, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= 10_000:  # forget keys idle for a whole window
                for k in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
                    del self._hits[k]
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def retry_after(self, key: Hashable) -> float:
        """0 when ``key`` may act now, else the seconds until it may."""
        now = self.clock()
        hits = self._recent(key, now)
        if len(hits) < self.limit:
            return 0.0
        return max(0.001, hits[0] + self.window - now)

    def hit(self, key: Hashable) -> float:
        """Count one event for ``key`` if allowed; returns ``retry_after`` (0: counted)."""
        wait = self.retry_after(key)
        if wait == 0.0:
            self._hits[key].append(self.clock())
        return wait


def hit_all(*pairs: tuple[RateLimit, Hashable]) -> float:
    """Count one event against several limits (per user and global) only when every one
    allows it; returns the longest wait (0: counted everywhere)."""
    wait = max((lim.retry_after(key) for lim, key in pairs), default=0.0)
    if wait == 0.0:
        for lim, key in pairs:
            lim.hit(key)
    return wait
