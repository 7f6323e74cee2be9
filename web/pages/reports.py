"""Reports for managers and admins: calls per day by outcome, per rep, busiest hours, as
server-drawn SVG charts with the same numbers in a table below each.

Also home of the date-range reading the missed-calls page shares: a period is whole days
in the display time zone, ``until`` included, defaulting to the last 30 days.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from markupsafe import Markup

from crm.errors import InvalidInput

from .. import charts, i18n
from ..app import current_user, roles, runtime
from ..formatting import tzinfo
from ..i18n import _
from ..labels import label
from ..refusals import refusal
from ..render import format_duration, render

routes = web.RouteTableDef()
DEFAULT_DAYS = 30
MAX_DAYS = 366


@dataclass(frozen=True, slots=True)
class Period:
    """[since, until) in POSIX seconds for the days ``first``..``last`` (both included)."""

    first: dt.date
    last: dt.date
    since: float
    until: float
    utc_offset: float
    """The zone's offset at the start of the period, for the store's day/hour buckets."""

    def days(self) -> list[str]:
        n = (self.last - self.first).days + 1
        return [(self.first + dt.timedelta(days=i)).isoformat() for i in range(n)]


def _tz(request: web.Request) -> ZoneInfo:
    """The reader's time zone: a report's days are the reader's days."""
    tz = tzinfo()
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo("UTC")


def _date(value: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(_("%(field)s: a date like 2026-11-22", field=what)) from None


def make_period(first: dt.date, last: dt.date, tz: ZoneInfo) -> Period:
    if last < first:
        raise InvalidInput(_("the period must end on or after the day it starts"))
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidInput(_("choose at most %(days)d days", days=MAX_DAYS))
    start = dt.datetime.combine(first, dt.time(), tz)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz)
    offset = start.utcoffset() or dt.timedelta(0)
    return Period(first, last, start.timestamp(), end.timestamp(), offset.total_seconds())


def period_of(request: web.Request) -> tuple[Period, str | None]:
    """The period the query asks for (``from``, ``to`` as YYYY-MM-DD) and an error
    message when it was unreadable (then the default period is used)."""
    tz = _tz(request)
    today = dt.datetime.fromtimestamp(runtime(request).clock(), tz).date()
    default = make_period(today - dt.timedelta(days=DEFAULT_DAYS - 1), today, tz)
    q = request.query
    try:
        first = _date(q["from"], "from") if q.get("from") else default.first
        last = _date(q["to"], "to") if q.get("to") else max(default.last, first)
        return make_period(first, last, tz), None
    except InvalidInput as exc:
        return default, refusal(exc)


async def period_csv(
    request: web.Request,
    rows: Iterable[Sequence[Any]],
    period: Period,
    *,
    stem: str,
    action: str,
    subject: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> web.Response:
    """A report's rows as a CSV file named for its period; the export is audited first, its
    detail the period between what the report adds ``before`` and ``after`` it."""
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    first, last = period.first.isoformat(), period.last.isoformat()
    detail = {**(before or {}), "from": first, "to": last, **(after or {})}
    await runtime(request).service.audit(current_user(request).username, action, subject, detail)
    name = f"{stem}-{first}-to-{last}.csv"
    return web.Response(
        text=buf.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _per_day(rows: list[tuple[str, str, int]], days: list[str]) -> dict[str, list[int]]:
    index = {d: i for i, d in enumerate(days)}
    out: dict[str, list[int]] = {}
    for day, outcome, n in rows:
        if day in index:
            out.setdefault(outcome, [0] * len(days))[index[day]] += n
    return out


@lru_cache(maxsize=256)
def _charts(
    language: str,
    days: tuple[str, ...],
    by_outcome: tuple[tuple[str, tuple[int, ...]], ...],
    reps: tuple[tuple[str, int, int, float], ...],
    hours: tuple[tuple[int, int], ...],
) -> tuple[Markup, Markup, Markup, Markup]:
    """The report's four charts, drawn once for the same figures in the same language
    (their only inputs; the managers reload the same periods): drawing them cost more
    than the rest of the page."""
    names = [name for name, *_figures in reps]
    colors = charts.OUTCOME_COLORS
    rep_chart = charts.bar_chart(
        _("Calls per rep: answered and missed"),
        names,
        [
            charts.Series(label("answered"), [r[1] for r in reps], colors["answered"]),
            charts.Series(label("missed"), [r[2] for r in reps], colors["missed"]),
        ],
        width=520,
    )
    talk_chart = charts.bar_chart(
        _("Talk time per rep"),
        names,
        [charts.Series(_("talk time"), [r[3] for r in reps], "#2458d6")],
        fmt=format_duration,
        width=520,
    )
    days_chart = charts.calls_per_day_chart(list(days), {o: list(v) for o, v in by_outcome})
    return days_chart, rep_chart, talk_chart, charts.busiest_hours_chart(list(hours))


@routes.get("/reports")
@roles("manager", "admin")
async def reports(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    user = current_user(request)
    period, error = period_of(request)
    scope = await rt.service.scope_for(user)
    p = period
    per_day_rows = await rt.service.calls_per_day(p.since, p.until, scope, p.utc_offset)
    reps = await rt.service.per_rep(p.since, p.until, scope)
    hours = await rt.service.busiest_hours(p.since, p.until, scope, p.utc_offset)
    days = p.days()
    by_outcome = _per_day(per_day_rows, days)
    outcomes = [o for o in charts.OUTCOME_COLORS if o in by_outcome] + sorted(
        o for o in by_outcome if o not in charts.OUTCOME_COLORS
    )
    day_table = [
        (day, [by_outcome[o][i] for o in outcomes], sum(by_outcome[o][i] for o in outcomes))
        for i, day in enumerate(days)
    ]
    days_chart, rep_chart, talk_chart, hours_chart = _charts(
        i18n.CURRENT_LANGUAGE.get(),
        tuple(days),
        tuple((o, tuple(v)) for o, v in by_outcome.items()),
        tuple((r.name, r.answered, r.missed, r.talk_seconds) for r in reps),
        tuple(hours),
    )
    ctx: dict[str, Any] = {
        "period": p,
        "error": error,
        "days_chart": days_chart,
        "outcomes": outcomes,
        "day_table": [row for row in day_table if row[2]],
        "total_calls": sum(row[2] for row in day_table),
        "rep_chart": rep_chart,
        "talk_chart": talk_chart,
        "reps": reps,
        "hours_chart": hours_chart,
        "hours": hours,
        "busiest": max(hours, key=lambda h: h[1]) if any(c for _, c in hours) else None,
    }
    return render(request, "reports.html", ctx)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
