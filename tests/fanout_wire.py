"""An in-memory stand-in for the channel between web processes (``crm.fanout``), for
tests that need no PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Wire:
    """An in-memory channel shared by several fan-outs, losing the messages ``lose``
    says to (a listener reconnecting, a send that failed)."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[str], object]] = []
        self.lose: Callable[[str], bool] = lambda _text: False

    def channel(self) -> WireChannel:
        return WireChannel(self)


class WireChannel:
    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    async def send(self, text: str) -> None:
        if not self.wire.lose(text):
            for listener in self.wire.listeners:
                listener(text)

    async def listen(self, on_message: Callable[[str], object]) -> None:
        self.wire.listeners.append(on_message)
        await asyncio.Event().wait()

    async def close(self) -> None:
        return None
