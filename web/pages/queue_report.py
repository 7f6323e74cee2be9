"""The queue report (managers: their team; admins: all): per queue, per day, per hour of
the day and per rep over a period, the wait-time distribution, charts like the other
reports, and a CSV export of each table.

The figures are ``CrmService.queue_report``'s (``crm/queue_stats.py``); this module only
picks the period, draws and formats.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from crm.queue_stats import ALL_QUEUES, QueueFigures, QueueReport, RepQueueFigures

from .. import charts
from ..app import current_user, roles, runtime
from ..i18n import _
from ..render import render
from .missed import neutralise
from .reports import Period, period_of

routes = web.RouteTableDef()
CSV_TABLES = ("queues", "days", "hours", "reps")
COLORS = {
    "answered": charts.OUTCOME_COLORS["answered"],
    "abandoned": charts.OUTCOME_COLORS["abandoned"],
    "short": charts.OUTCOME_COLORS["no_answer"],
    "rona": charts.OUTCOME_COLORS["missed"],
}


async def _report(request: web.Request) -> tuple[Period, str | None, QueueReport]:
    rt = runtime(request)
    period, error = period_of(request)
    scope = await rt.service.scope_for(current_user(request))
    report = await rt.service.queue_report(period.since, period.until, scope, period.utc_offset)
    return period, error, report


def percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f} %"


def _charts(report: QueueReport) -> dict[str, Any]:
    names = [q.queue for q in report.queues]
    per_queue = charts.bar_chart(
        _("Calls per queue"),
        names,
        [
            charts.Series(_("answered"), [q.answered for q in report.queues], COLORS["answered"]),
            charts.Series(
                _("abandoned"), [q.abandoned for q in report.queues], COLORS["abandoned"]
            ),
            charts.Series(
                _("short abandons"), [q.short_abandoned for q in report.queues], COLORS["short"]
            ),
        ],
        width=1000,
        row_height=34,
    )
    hours = list(range(24))

    def hourly(attr: str) -> list[int]:
        return [sum(getattr(q, attr) for q in report.by_hour.get(h, [])) for h in hours]

    per_hour = charts.column_chart(
        _("Queue calls by hour of day"),
        [f"{h:02d}" for h in hours],
        [
            charts.Series(_("answered"), hourly("answered"), COLORS["answered"]),
            charts.Series(_("abandoned"), hourly("abandoned"), COLORS["abandoned"]),
            charts.Series(_("short abandons"), hourly("short_abandoned"), COLORS["short"]),
        ],
        width=520,
        height=240,
    )
    waits = charts.column_chart(
        _("Calls by wait"),
        report.buckets,
        [
            charts.Series(_("answered"), report.total.wait_answered, COLORS["answered"]),
            charts.Series(_("not answered"), report.total.wait_abandoned, COLORS["abandoned"]),
        ],
        width=520,
        height=240,
    )
    reps = charts.bar_chart(
        _("Queue calls per rep: answered and rang not answered"),
        [r.name for r in report.reps],
        [
            charts.Series(_("answered"), [r.answered for r in report.reps], COLORS["answered"]),
            charts.Series(_("rang, not answered"), [r.rona for r in report.reps], COLORS["rona"]),
        ],
        width=1000,
        row_height=34,
    )
    return {"queue_chart": per_queue, "hour_chart": per_hour, "wait_chart": waits,
            "rep_chart": reps}  # fmt: skip


@routes.get("/reports/queues")
@roles("manager", "admin")
async def queue_report(request: web.Request) -> web.StreamResponse:
    period, error, report = await _report(request)
    ctx: dict[str, Any] = {
        "period": period,
        "error": error,
        "report": report,
        "percent": percent,
        "all_queues": ALL_QUEUES,
        **_charts(report),
    }
    return render(request, "queue_report.html", ctx)


def _queue_cells(q: QueueFigures) -> list[str]:
    def secs(v: float | None) -> str:
        return "" if v is None else f"{v:.0f}"

    sl = q.service_level
    return [
        q.queue or "all",
        str(q.offered),
        str(q.answered),
        str(q.abandoned),
        str(q.short_abandoned),
        "" if sl is None else f"{sl * 100:.1f}",
        secs(q.asa),
        secs(q.aht),
        secs(q.longest_wait),
        *(str(n) for n in q.wait_answered),
        *(str(n) for n in q.wait_abandoned),
    ]


def _queue_header(report: QueueReport) -> list[str]:
    return [
        "queue", "offered", "answered", "abandoned", "short_abandoned", "service_level_pct",
        "asa_seconds", "aht_seconds", "longest_wait_seconds",
        *(f"answered_wait {b}" for b in report.buckets),
        *(f"abandoned_wait {b}" for b in report.buckets),
    ]  # fmt: skip


def _rep_cells(r: RepQueueFigures) -> list[str]:
    occ = r.occupancy
    reg = r.registered_seconds
    return [
        r.name,
        str(r.answered),
        str(r.rona),
        f"{r.talk_seconds:.0f}",
        f"{r.all_talk_seconds:.0f}",
        f"{r.pause_seconds:.0f}",
        "" if reg is None else f"{reg:.0f}",
        "" if occ is None else f"{occ * 100:.1f}",
    ]


REP_HEADER = ["rep", "queue_answered", "rona", "queue_talk_seconds", "talk_seconds_all_calls",
              "pause_seconds", "registered_seconds", "occupancy_pct"]  # fmt: skip


def csv_table(report: QueueReport, table: str) -> list[list[str]]:
    """One of the page's tables as CSV rows, header first."""
    rows: list[Sequence[str]]
    if table == "reps":
        rows = [REP_HEADER, *(_rep_cells(r) for r in report.reps)]
    elif table == "days":
        rows = [["day", *_queue_header(report)]]
        rows += [[day, *_queue_cells(q)] for day, qs in report.by_day.items() for q in qs]
    elif table == "hours":
        rows = [["hour", *_queue_header(report)]]
        rows += [[f"{h:02d}:00", *_queue_cells(q)] for h, qs in report.by_hour.items() for q in qs]
    else:
        rows = [_queue_header(report), *(_queue_cells(q) for q in report.queues)]
        if report.queues:
            rows.append(_queue_cells(report.total))
    return [[neutralise(c) for c in row] for row in rows]


@routes.get("/reports/queues.csv")
@roles("manager", "admin")
async def queue_report_csv(request: web.Request) -> web.StreamResponse:
    table = request.query.get("table", "queues")
    if table not in CSV_TABLES:
        raise web.HTTPBadRequest(text=f"table: one of {', '.join(CSV_TABLES)}")
    period, error, report = await _report(request)
    if error:
        raise web.HTTPBadRequest(text=error)
    rt, user = runtime(request), current_user(request)
    buf = io.StringIO()
    csv.writer(buf).writerows(csv_table(report, table))
    detail = {"table": table, "from": period.first.isoformat(), "to": period.last.isoformat()}
    await rt.service.audit(user.username, "queue_report.exported", "queue report", detail)
    name = f"queue-{table}-{period.first.isoformat()}-to-{period.last.isoformat()}.csv"
    return web.Response(
        text=buf.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
