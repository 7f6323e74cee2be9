"""Waiting for something a separate process or task will do, with a deadline: the one
polling helper the end-to-end tests share (a hang fails with what was awaited)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def until(
    predicate: Callable[[], Any | Awaitable[Any]],
    timeout: float,
    what: str,
    step: float = 0.05,
) -> None:
    """Poll ``predicate`` (plain or async) every ``step`` seconds until it is true;
    fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(step)
