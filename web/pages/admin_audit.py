"""Admin: the audit log, newest first, filtered by action and actor, paged by id.

Secrets never reach the log (the settings service masks them), so the detail is shown
as it is stored.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from aiohttp import web

from ..app import runtime
from ..render import render
from .admin_routes import AdminRoutes

routes = AdminRoutes()
PAGE_SIZE = 50


@routes.get("/admin/audit")
async def audit(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    q = request.query
    action = q.get("action", "").strip()[:64] or None
    actor = q.get("actor", "").strip()[:64] or None
    before = q.get("before", "")
    before_id = int(before) if before.isdigit() else None
    entries = await rt.service.list_audit(action, actor, None, PAGE_SIZE + 1, before_id)
    more = len(entries) > PAGE_SIZE
    entries = entries[:PAGE_SIZE]
    filters = {k: v for k, v in (("action", action), ("actor", actor)) if v}
    next_url = None
    if more and entries:
        next_url = "/admin/audit?" + urlencode({**filters, "before": entries[-1].id})
    users = await rt.service.list_users(include_inactive=True)
    ctx = {
        "section": "audit",
        "entries": [
            (e, json.dumps(e.detail, sort_keys=True, ensure_ascii=False) if e.detail else "")
            for e in entries
        ],
        "action": action or "",
        "actor": actor or "",
        "actors": sorted({"system", *(u.username for u in users)}),
        "next_url": next_url,
        "first_url": ("/admin/audit?" + urlencode(filters)) if before_id else None,
    }
    return render(request, "admin_audit.html", ctx)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
