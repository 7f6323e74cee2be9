"""The event loop the server runs on: uvloop when it is installed, asyncio's own otherwise.

A screen pop is one small write to each of hundreds of browsers at once; asyncio's own
loop spends more of its time in Python around each of those writes (``transport.write``,
the selector) than in the system calls themselves, and uvloop does the same work in C.
Nothing in the CRM depends on which loop runs it, so a missing uvloop (a platform without
a wheel) only costs speed.

The loop shares the process with the database's threads (aiosqlite: the writer, the
screen pop's reader): every statement is a trip to a thread and back, and a thread that
wants the GIL while another runs Python waits up to the interpreter's switch interval
(5 ms by default) each way.  While the loop fans a burst of pops out, or the writer's
thread runs a batch, a caller lookup that takes a fraction of a millisecond in SQLite
took several switch intervals per trip, queued behind the lookups of the other calls
ringing at once (``benchmarks/bench_pop.py`` at 10x: lookup p50 0.5-1.3 s with 5 ms,
2-450 ms with 0.5 ms, on a loaded machine).  A shorter interval (``SWITCH_INTERVAL``)
costs a few more GIL hand-overs when two threads both compute.
"""

from __future__ import annotations

import asyncio
import logging
import sys

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits for it (``sys.setswitchinterval``)."""


def install() -> str:
    """Make the ``asyncio.run`` calls that follow use uvloop if it can be imported;
    the name of the loop they will use.  Also shortens the GIL's switch interval
    (``SWITCH_INTERVAL``) for the database threads' trips."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        import uvloop
    except ImportError:
        log.debug("uvloop is not installed: asyncio's own event loop")
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
