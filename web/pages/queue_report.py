"""The queue report (managers: their team; admins: all): per queue, per day, per hour of
the day and per rep over a period, the wait-time distribution, charts like the other
reports, and a CSV export of each table.

The figures are ``CrmService.queue_report``'s (``crm/queue_stats.py``); this module only
picks the period, draws and formats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from crm.queue_stats import ALL_QUEUES, BUCKETS, QueueFigures, QueueReport, RepQueueFigures

from .. import charts
from ..app import current_user, roles, runtime
from ..i18n import N_, _
from ..render import render
from .missed import neutralise
from .reports import Period, period_csv, period_of

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


def bucket_labels() -> list[str]:
    """The wait-time buckets' names (``crm.queue_stats.BUCKETS``) in the reader's language."""

    def limit(s: int) -> str:
        return _("%(n)s min", n=s // 60) if s >= 60 and s % 60 == 0 else _("%(n)s s", n=s)

    return [_("≤ %(limit)s", limit=limit(b)) for b in BUCKETS] + [
        _("> %(limit)s", limit=limit(BUCKETS[-1]))
    ]


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
        bucket_labels(),
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
        "all_queues": ALL_QUEUES,
        "buckets": bucket_labels(),
        **_charts(report),
    }
    return render(request, "queue_report.html", ctx)


def _queue_cells(q: QueueFigures) -> list[str]:
    def secs(v: float | None) -> str:
        return "" if v is None else f"{v:.0f}"

    sl = q.service_level
    return [
        q.queue or _("all"),
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


QUEUE_HEADER = (
    # TRANSLATORS: CSV column names: short, lower case, no spaces, like the English ones
    N_("queue"),
    N_("offered"),
    N_("answered"),
    N_("abandoned"),
    N_("short_abandoned"),
    N_("service_level_pct"),
    N_("asa_seconds"),
    N_("aht_seconds"),
    N_("longest_wait_seconds"),
)


def _queue_header() -> list[str]:
    buckets = bucket_labels()
    return [
        *(_(h) for h in QUEUE_HEADER),
        *(_("answered_wait %(bucket)s", bucket=b) for b in buckets),
        *(_("abandoned_wait %(bucket)s", bucket=b) for b in buckets),
    ]


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


REP_HEADER = (
    N_("rep"),
    N_("queue_answered"),
    N_("rona"),
    N_("queue_talk_seconds"),
    N_("talk_seconds_all_calls"),
    N_("pause_seconds"),
    N_("registered_seconds"),
    N_("occupancy_pct"),
)


def csv_table(report: QueueReport, table: str) -> list[list[str]]:
    """One of the page's tables as CSV rows, header first."""
    rows: list[Sequence[str]]
    if table == "reps":
        rows = [[_(h) for h in REP_HEADER], *(_rep_cells(r) for r in report.reps)]
    elif table == "days":
        rows = [[_("day"), *_queue_header()]]
        rows += [[day, *_queue_cells(q)] for day, qs in report.by_day.items() for q in qs]
    elif table == "hours":
        rows = [[_("hour"), *_queue_header()]]
        rows += [[f"{h:02d}:00", *_queue_cells(q)] for h, qs in report.by_hour.items() for q in qs]
    else:
        rows = [_queue_header(), *(_queue_cells(q) for q in report.queues)]
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
    return await period_csv(
        request, csv_table(report, table), period, stem=f"queue-{table}",
        action="queue_report.exported", subject="queue report", before={"table": table},
    )  # fmt: skip


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
