"""The rep's home page: live calls, open callbacks (oldest first, overdue highlighted),
today's calls.  A manager sees the same for their team, an admin for everyone; the live
parts update over SSE (``web.live``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crm.models import CallFilter

from ..live import LIVE_HUB
from ..render import render
from .rep_common import contacts_by_id, next_day, rep_view

routes = web.RouteTableDef()
TODAY_LIMIT = 50


@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    view = await rep_view(request)
    service = view.rt.service
    hub = request.app.get(LIVE_HUB)
    live: list[dict[str, Any]] = []
    if hub is not None:
        # calls up before this process heard of them (it started mid-call, or another
        # process runs the PBX link) come from the store's live_calls
        await hub.seed_from_store()
        live = hub.live_calls_for(await hub.viewer_for(view.user))
    callbacks = await service.open_callbacks(None, scope=view.scope)
    since = view.today_start()
    # today, and only today: with the clock set back (a test, a demo), tomorrow's calls
    # are not "today's" either
    until = next_day(since, view.tz)
    today = await service.list_calls(
        CallFilter(since=since, until=until), TODAY_LIMIT, scope=view.scope
    )
    contacts = await contacts_by_id(
        view.rt, [t.contact_id for t in callbacks] + [c.contact_id for c in today.items]
    )
    return render(
        request,
        "home.html",
        {
            "view": view,
            "live": live,
            "callbacks": callbacks,
            "overdue": sum(1 for t in callbacks if t.due_at < view.now()),
            "today": today.items,
            "today_more": today.next_cursor is not None,
            "today_since": since,
            "contacts": contacts,
            "now": view.now(),
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
