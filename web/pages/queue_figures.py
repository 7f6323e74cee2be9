"""Today's queue figures on the board (``_queue_figures.html``).

A stub owned by the queue-statistics work (issue 16, part B): its version replaces this
file at merge and fills the context from stored facts.  Until then the board shows no
figures."""

from __future__ import annotations

from typing import Any

from aiohttp import web


async def queue_figures_context(request: web.Request) -> dict[str, Any]:
    return {}


def setup(app: web.Application) -> None:
    """No routes of its own."""
