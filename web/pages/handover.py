"""Handover (managers for their own team, admins for everyone): pick the leaving rep and
the receiving rep(s), see what moves (contacts, open leads, open callbacks, per
receiver), confirm.  GET previews (nothing changes); POST moves, through
``CrmService.handover``, which writes the audit entry naming the users.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crm.errors import Forbidden, InvalidInput, NotFound
from crm.models import HandoverPlan

from ..app import roles
from ..i18n import _
from ..render import render
from .rep_common import RepView, int_param, rep_view

routes = web.RouteTableDef()


def _choice(view: RepView, request_values: Any) -> tuple[int | None, list[int]]:
    try:
        leaving = int_param(request_values.get("from"))
        receivers = [int(v) for v in request_values.getall("to", []) if str(v).strip()]
    except (InvalidInput, ValueError):
        raise web.HTTPBadRequest(text="from and to must be user ids") from None
    return leaving, receivers


def _people(view: RepView) -> tuple[list[Any], list[Any]]:
    """Who may leave (anyone in scope, deactivated too) and who may receive (active)."""
    users = [u for u in view.visible_users() if u.role in ("rep", "manager")]
    return users, [u for u in users if u.active]


def _page(
    request: web.Request,
    view: RepView,
    leaving: int | None,
    receivers: list[int],
    plan: HandoverPlan | None = None,
    error: str = "",
    done: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    leavers, takers = _people(view)
    return render(
        request,
        "handover.html",
        {
            "view": view,
            "leavers": leavers,
            "takers": takers,
            "leaving": leaving,
            "receivers": receivers,
            "plan": plan,
            "error": error,
            "done": done or {},
        },
        status=status,
    )


@routes.get("/handover")
@roles("manager", "admin")
async def handover_form(request: web.Request) -> web.StreamResponse:
    view = await rep_view(request)
    leaving, receivers = _choice(view, request.query)
    done = {k: request.query.get(k, "") for k in ("done", "contacts", "callbacks")}
    if leaving is None or not receivers:
        return _page(request, view, leaving, receivers, done=done)
    try:
        plan = await view.rt.service.handover_plan(view.user, leaving, receivers)
    except (InvalidInput, Forbidden, NotFound) as exc:
        return _page(request, view, leaving, receivers, error=str(exc), status=400)
    return _page(request, view, leaving, receivers, plan=plan)


@routes.post("/handover")
@roles("manager", "admin")
async def handover(request: web.Request) -> web.StreamResponse:
    view = await rep_view(request)
    form = await request.post()
    leaving, receivers = _choice(view, form)
    if leaving is None or not receivers:
        msg = _("Choose the leaving rep and at least one rep to receive the work.")
        return _page(request, view, leaving, receivers, error=msg, status=400)
    try:
        plan = await view.rt.service.handover(view.user, leaving, receivers)
    except (InvalidInput, Forbidden, NotFound) as exc:
        return _page(request, view, leaving, receivers, error=str(exc), status=400)
    raise web.HTTPSeeOther(
        f"/handover?done={leaving}&contacts={plan.contacts + plan.leads}&callbacks={plan.callbacks}"
    )


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
