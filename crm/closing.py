"""Shutdown that always ends: every part gets a bounded time to close.

A close path that waits on something that never comes (a database connection stuck on
a lock, a PBX that never answers an Originate, a task that swallows its cancellation)
once made a whole test run hang for twelve minutes, and would make a service manager
kill the process the hard way.  ``close_within`` gives a closer its time, then cancels
it, then gives up on it, logging which part it was, so the rest still closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger(__name__)

CANCEL_GRACE = 1.0
"""Seconds a part gets to unwind after being cancelled, before it is abandoned."""


async def close_within(aw: Awaitable[object], timeout: float, what: str) -> bool:
    """Await ``aw`` for at most ``timeout`` seconds (plus ``CANCEL_GRACE`` to unwind once
    cancelled); True when it finished in time.  Its exceptions are logged, not raised:
    one part failing to close must not keep the others open."""
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("closing %s failed", what, exc_info=task.exception())
        return True
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE)
    if done:
        log.error("closing %s took longer than %g s; cancelled it", what, timeout)
    else:
        log.error("closing %s took longer than %g s and ignored its cancellation; "
                  "abandoned it", what, timeout)  # fmt: skip
    return False


async def finish_within(aw: Awaitable[object], timeout: float) -> bool:
    """Await ``aw`` for at most ``timeout`` seconds, cancelling it past that; True when it
    finished.  For a closer's last drain, whose caller says what was left behind."""
    try:
        async with asyncio.timeout(timeout):
            await aw
    except TimeoutError:
        return False
    return True


async def cancel_all(tasks: list[asyncio.Task[object]] | list[asyncio.Task[None]],
                     timeout: float, what: str) -> bool:  # fmt: skip
    """Cancel ``tasks`` and wait at most ``timeout`` for them to end."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return True
    _, still = await asyncio.wait(pending, timeout=timeout)
    if still:
        log.error("%s: %d task(s) did not end within %g s of being cancelled: %s", what,
                  len(still), timeout, ", ".join(t.get_name() for t in still))  # fmt: skip
        return False
    return True


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel a part's own background task and wait until it has ended, whatever its
    outcome: a closer that has already drained what it could must not leave the task
    running nor be the one to raise what the task raised."""
    if task is None:
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
