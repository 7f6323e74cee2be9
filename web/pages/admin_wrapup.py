"""Admin > Wrap-up: the results a rep picks after a call (one list, and optionally one per
team) and whether the wrap-up is required before the next screen pop.  Stored as the
``wrapup`` run-time setting (``crm.wrapup``), audited like every setting."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crm import wrapup
from crm.errors import InvalidInput

from ..app import current_user, runtime
from ..i18n import _
from ..refusals import refusal
from ..render import render
from .admin_routes import AdminRoutes

routes = AdminRoutes()


@routes.get("/admin/wrapup")
async def wrapup_page(
    request: web.Request, form: dict[str, Any] | None = None, error: str = "", status: int = 200
) -> web.StreamResponse:
    rt = runtime(request)
    settings = await wrapup.load(rt.service)
    teams = await rt.service.list_teams()
    values = form or {
        "results": "\n".join(settings.results),
        "required": settings.required,
        "teams": {t.id: "\n".join(settings.team_results.get(t.id or 0, ())) for t in teams},
    }
    ctx = {
        "section": "wrapup",
        "teams": teams,
        "values": values,
        "error": error,
        "notice": _("Wrap-up settings saved.") if request.query.get("done") else "",
    }
    return render(request, "admin_wrapup.html", ctx, status=status)


@routes.post("/admin/wrapup")
async def save_wrapup(request: web.Request) -> web.StreamResponse:
    rt, form = runtime(request), await request.post()
    teams = await rt.service.list_teams()

    def text(name: str) -> str:
        value = form.get(name, "")
        return value if isinstance(value, str) else ""

    typed = {
        "results": text("results"),
        "required": form.get("required") == "1",
        "teams": {t.id: text(f"team_{t.id}") for t in teams},
    }
    try:
        results = wrapup.parse_results(typed["results"])
        per_team = {t.id: wrapup.parse_results(typed["teams"][t.id]) for t in teams if t.id}
        await wrapup.save_settings(
            rt.service, current_user(request).username, results, per_team, typed["required"]
        )
    except InvalidInput as exc:
        return await wrapup_page(request, typed, refusal(exc), status=400)
    raise web.HTTPSeeOther("/admin/wrapup?done=1")


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
