"""Today's queue figures on the supervisor board (``/board``, owned by the board's module,
which includes ``_queue_figures.html`` with what ``queue_figures_context`` returns).

Today is the display time zone's day so far; managers see their team's queue calls and
reps, admins all (the same scope as the queue report).  The thresholds of every queue go
along (``data-`` attributes), so the board's live callers-waiting figure is coloured by
the same settings.  No routes: this module only feeds the board.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from crm.queue_stats import QueueReport

from ..app import current_user, runtime
from .rep_common import display_tz
from .reports import make_period


async def today_report(request: web.Request) -> QueueReport:
    rt = runtime(request)
    tz = display_tz(rt)
    now = rt.clock()
    today = dt.datetime.fromtimestamp(now, tz).date()
    period = make_period(today, today, tz)
    scope = await rt.service.scope_for(current_user(request))
    return await rt.service.queue_report(period.since, period.until, scope, period.utc_offset)


async def queue_figures_context(request: web.Request) -> dict[str, Any]:
    """``queue_figures``: today's report and every queue's thresholds."""
    rt = runtime(request)
    report = await today_report(request)
    book = await rt.service.queue_settings()
    thresholds = {q.queue: book.for_queue(q.queue) for q in report.queues}
    return {
        "queue_figures": {
            "report": report,
            "thresholds": thresholds,
            "default": book.default,
        }
    }


def setup(app: web.Application) -> None:
    """Nothing to mount: the board page calls ``queue_figures_context``."""
