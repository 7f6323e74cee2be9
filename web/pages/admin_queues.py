"""Admin > Queues: each queue's service-level seconds, short-abandon seconds and the
amber/red thresholds of the board and the queue report (``crm/queue_settings.py``).

One form per queue the calls went through (plus the default for all others, and any
queue typed in by name before its first call); saving is audited by the settings
service.  A queue reset goes back to the default settings.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crm.errors import InvalidInput
from crm.queue_settings import DEFAULT, FIELDS, QueueSettingsBook

from ..app import current_user, runtime
from ..i18n import _
from ..refusals import refusal
from ..render import render
from ..words import words
from .admin_routes import AdminRoutes

routes = AdminRoutes()


def _labels() -> dict[str, str]:
    """The form's field labels in the reader's language (``crm.queue_settings.FIELDS``)."""
    return words("queue_field")


def _units() -> dict[str, str]:
    return {"s": _("seconds"), "callers": _("callers"), "%": "%"}


def _notices() -> dict[str, str]:
    return words("queue_notice")


@routes.get("/admin/queues")
async def queues_page(
    request: web.Request,
    error: str | None = None,
    typed: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    rt = runtime(request)
    book: QueueSettingsBook = await rt.service.queue_settings()
    names = sorted(set(await rt.store.queue_names()) | set(book.queues))
    entries = [(DEFAULT, book.default.as_dict(), False)]
    entries += [(n, book.for_queue(n).as_dict(), n in book.queues) for n in names]
    if typed is not None:
        entries = [(n, typed["values"] if n == typed["queue"] else v, own)
                   for n, v, own in entries]  # fmt: skip
        if typed["queue"] not in {n for n, _v, _o in entries}:
            entries.append((typed["queue"], typed["values"], False))
    ctx = {
        "section": "queues",
        "entries": entries,
        "fields": FIELDS,
        "labels": _labels(),
        "units": _units(),
        "error": error,
        "error_queue": typed["queue"] if typed else None,
        "notice": _notices().get(request.query.get("done", "")),
    }
    return render(request, "admin_queues.html", ctx, status=status)


@routes.post("/admin/queues")
async def save_queue(request: web.Request) -> web.StreamResponse:
    rt, user = runtime(request), current_user(request)
    form = await request.post()
    queue = str(form.get("queue", "")).strip()
    try:
        await rt.service.save_queue_settings(queue, form, user.username)
    except InvalidInput as exc:
        values = {f.name: str(form.get(f.name, "")) for f in FIELDS}
        return await queues_page(request, refusal(exc), {"queue": queue, "values": values}, 400)
    raise web.HTTPSeeOther("/admin/queues?done=saved")


@routes.post("/admin/queues/reset")
async def reset_queue(request: web.Request) -> web.StreamResponse:
    rt, user = runtime(request), current_user(request)
    form = await request.post()
    try:
        await rt.service.forget_queue_settings(str(form.get("queue", "")), user.username)
    except InvalidInput as exc:
        return await queues_page(request, refusal(exc), status=400)
    raise web.HTTPSeeOther("/admin/queues?done=reset")


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
