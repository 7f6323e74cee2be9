"""A "now" for tests that does not depend on the time of day the suite runs at.

``MIDDAY`` is the latest 12:00 UTC that has passed: calls made "a few minutes ago" from
it are today's on every page (display time zone UTC), whether the suite runs at 09:00 or
at 23:59.  Set the runtime's clock to it (``rt.clock.set(MIDDAY)``) and build the data
around it.
"""

from __future__ import annotations

import time

DAY = 86400.0


def last_midday(now: float | None = None) -> float:
    now = time.time() if now is None else now
    noon = now - now % DAY + DAY / 2
    return noon if noon <= now else noon - DAY


MIDDAY = last_midday()
