"""The event loop the server runs on: uvloop when it is installed, asyncio's own otherwise.

A screen pop is one small write to each of hundreds of browsers at once; asyncio's own
loop spends more of its time in Python around each of those writes (``transport.write``,
the selector) than in the system calls themselves, and uvloop does the same work in C.
Nothing in the CRM depends on which loop runs it, so a missing uvloop (a platform without
a wheel) only costs speed.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


def install() -> str:
    """Make the ``asyncio.run`` calls that follow use uvloop if it can be imported;
    the name of the loop they will use."""
    try:
        import uvloop
    except ImportError:
        log.debug("uvloop is not installed: asyncio's own event loop")
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
