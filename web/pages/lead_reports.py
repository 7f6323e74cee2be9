"""Reports > Leads: the period's leads by source (inbound, missed, outbound, import,
manual) and by rep, the share converted and the mean time to conversion, with a CSV of
the same figures.  A manager sees the leads their team owns, an admin every lead
(unassigned ones too); the figures come from ``CrmService.lead_stats``.
"""

from __future__ import annotations

from aiohttp import web

from crm.lead_stats import SOURCE_NAMES, csv_rows

from ..app import current_user, roles, runtime
from ..i18n import N_, _
from ..render import render
from .reports import period_csv, period_of

routes = web.RouteTableDef()
CSV_HEADER = (
    # TRANSLATORS: CSV column names: short, lower case, no spaces, like the English ones
    N_("group"),
    N_("name"),
    N_("leads"),
    N_("converted"),
    N_("converted_percent"),
    N_("mean_hours_to_convert"),
)
CSV_WORDS = {
    # TRANSLATORS: the first CSV column of the lead statistics, and the lead sources
    "source": N_("source"),
    "rep": N_("rep"),
    "total": N_("total"),
    "unassigned": N_("unassigned"),
    "inbound": N_("inbound"),
    "missed": N_("missed"),
    "outbound": N_("outbound"),
    "import": N_("import"),
    "manual": N_("manual"),
}


async def _stats(request: web.Request):  # type: ignore[no-untyped-def]
    rt = runtime(request)
    user = current_user(request)
    period, error = period_of(request)
    scope = await rt.service.scope_for(user)
    stats = await rt.service.lead_stats(period.since, period.until, scope)
    names = {u.id: u.display_name for u in await rt.service.list_users(include_inactive=True)}
    return rt, user, period, error, stats, names


@routes.get("/reports/leads")
@roles("manager", "admin")
async def lead_report(request: web.Request) -> web.StreamResponse:
    _rt, _user, period, error, stats, names = await _stats(request)
    reps = sorted(stats.by_rep.items(), key=lambda kv: names.get(kv[0] or 0, "~").lower())
    return render(
        request,
        "reports_leads.html",
        {
            "period": period,
            "error": error,
            "stats": stats,
            "source_names": SOURCE_NAMES,
            "reps": [(names.get(uid or 0), f) for uid, f in reps],
        },
    )


@routes.get("/reports/leads.csv")
@roles("manager", "admin")
async def lead_report_csv(request: web.Request) -> web.StreamResponse:
    _rt, _user, period, error, stats, names = await _stats(request)
    if error:
        raise web.HTTPBadRequest(text=error)
    rows = csv_rows(stats, {k: v for k, v in names.items() if k})
    rows[0] = [_(h) for h in CSV_HEADER]
    for row in rows[1:]:
        group, row[0] = row[0], _(CSV_WORDS[row[0]])
        if group == "source" or (group == "rep" and row[1] == "unassigned"):
            row[1] = _(CSV_WORDS[row[1]])
    return await period_csv(
        request, rows, period, stem="leads", action="lead_stats.exported", subject="lead statistics"
    )


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
