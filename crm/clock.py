"""The one clock a running process reads "now" from.

Pages say "today", "overdue", "the last 30 days"; the ingest stamps when a call was
written; the services stamp audit entries.  They all read the runtime's ``Clock``, so a
test (or a demo) can set it to a moment of its choosing, 23:59:30 or 00:00:30, and the
answer never depends on when the suite happens to run.  In production it is the wall
clock (``time.time``), and costs one attribute look-up more.
"""

from __future__ import annotations

import time


class Clock:
    """A callable returning POSIX seconds: the wall clock, unless set."""

    __slots__ = ("_fixed", "_offset")

    def __init__(self, at: float | None = None) -> None:
        self._fixed: float | None = at
        self._offset = 0.0

    def __call__(self) -> float:
        if self._fixed is not None:
            return self._fixed
        return time.time() + self._offset

    def set(self, at: float) -> None:
        """Stop the clock at ``at`` (it stays there until ``advance`` or ``run``)."""
        self._fixed = float(at)

    def advance(self, seconds: float) -> None:
        """Move a stopped clock forward (or a running one, by shifting it)."""
        if self._fixed is not None:
            self._fixed += seconds
        else:
            self._offset += seconds

    def run(self) -> None:
        """Back to the wall clock."""
        self._fixed = None
        self._offset = 0.0

    @property
    def fixed(self) -> bool:
        return self._fixed is not None

    def __repr__(self) -> str:
        return f"<Clock {'set to ' + repr(self._fixed) if self._fixed is not None else 'wall'}>"
