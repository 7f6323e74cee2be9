"""Admin: how long recordings are kept, and retention run on demand.

Call records are kept whatever this says; only the audio goes.  The setting is stored
(``put_setting("recordings", ...)``) and applied at once to the running retention loop.
"""

from __future__ import annotations

import time

from aiohttp import web

from crm.errors import InvalidInput
from recordings.retention import purge

from ..app import current_user, runtime
from ..i18n import _
from ..recordings_view import media_dir
from ..render import render
from ..runtime import Runtime, resolve_path
from .admin_routes import AdminRoutes

routes = AdminRoutes()
MAX_DAYS = 36500


def _current(rt: Runtime) -> dict[str, object]:
    cfg = rt.settings.get("recordings", {})
    return {
        "retention_days": int(cfg.get("retention_days", 0) or 0),
        "delete_originals": bool(cfg.get("delete_originals", False)),
        "directory": str(cfg.get("directory", "")),
    }


@routes.get("/admin/recordings")
async def recordings_settings(
    request: web.Request, status: int = 200, **extra: object
) -> web.Response:
    ctx: dict[str, object] = {
        "section": "recordings",
        "current": _current(runtime(request)),
        "error": None,
        "notice": None,
    }
    ctx.update(extra)
    return render(request, "admin_recordings.html", ctx, status=status)


@routes.post("/admin/recordings")
async def save_recordings_settings(request: web.Request) -> web.StreamResponse:
    rt, form = runtime(request), await request.post()
    try:
        days = int(str(form.get("retention_days", "")).strip())
        if not 0 <= days <= MAX_DAYS:
            raise ValueError
    except ValueError:
        message = _("Retention: a whole number of days, 0 to %(max)d (0 keeps recordings "
                    "for ever).", max=MAX_DAYS)  # fmt: skip
        return await recordings_settings(request, error=message, status=400)
    values = {"retention_days": days, "delete_originals": form.get("delete_originals") == "on"}
    await rt.service.put_setting("recordings", values, current_user(request).username)
    rt.settings.setdefault("recordings", {}).update(values)
    raise web.HTTPFound("/admin/recordings?done=saved")


@routes.post("/admin/recordings/purge")
async def purge_now(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    cfg = _current(rt)
    days = int(cfg["retention_days"])  # type: ignore[call-overload]
    if days <= 0:
        raise InvalidInput(_("retention is off (0 days): nothing to delete"))
    report = await purge(
        rt.service, media_dir(rt), resolve_path(str(cfg["directory"])), days, time.time(),
        delete_originals=bool(cfg["delete_originals"]),
    )  # fmt: skip
    await rt.service.audit(
        current_user(request).username, "recordings.purged", "recordings",
        {"days": days, "deleted_files": report.deleted, "recordings": len(report.marked)},
    )  # fmt: skip
    return await recordings_settings(
        request,
        notice=_(
            "Retention applied: %(recordings)d recordings older than %(days)d days "
            "deleted (%(files)d files).",
            recordings=len(report.marked),
            days=days,
            files=len(report.deleted),
        ),
    )


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
