"""Bulk contact work for managers and admins: CSV import with a per-row report, CSV
export, and the GDPR erase of one contact (its personal data and its recordings' files).

Kept apart from the everyday contact pages because each of these touches many rows or
deletes for good, and each is audited.
"""

from __future__ import annotations

import io
import logging

from aiohttp import web

from crm.csv_io import ImportFileError, export_contacts, import_contacts
from crm.models import Contact
from recordings.retention import erase_recordings

from ..app import current_user, roles, runtime
from ..i18n import _
from ..recordings_view import media_dir
from ..refusals import refusal
from ..render import render
from ..runtime import resolve_path
from .contacts import contact_in_path

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
MAX_UPLOAD = 10 * 1024 * 1024


@routes.get("/contacts/import")
@roles("manager", "admin")
async def import_form(request: web.Request) -> web.StreamResponse:
    return render(request, "contacts_import.html", {"report": None, "error": None})


@routes.post("/contacts/import")
@roles("manager", "admin")
async def import_upload(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    user = current_user(request)
    form = await request.post()
    upload = form.get("file")
    data = upload.file.read(MAX_UPLOAD + 1) if isinstance(upload, web.FileField) else b""
    if not data:
        ctx = {"report": None, "error": _("Choose a CSV file to import.")}
        return render(request, "contacts_import.html", ctx, status=400)
    try:
        report = await import_contacts(rt.service, data, user.username, max_bytes=MAX_UPLOAD)
    except ImportFileError as exc:
        ctx = {"report": None, "error": refusal(exc)}
        return render(request, "contacts_import.html", ctx, status=400)
    status = 200 if report.applied else 422
    return render(request, "contacts_import.html", {"report": report, "error": None}, status)


@routes.get("/contacts/export.csv")
@roles("manager", "admin")
async def export_csv(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    user = current_user(request)
    scope = await rt.service.scope_for(user)
    out = io.StringIO()
    await export_contacts(rt.service, out, user.username, scope=scope)
    return web.Response(
        body=out.getvalue().encode("utf-8-sig"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="contacts.csv"'},
    )


async def _visible_contact(request: web.Request) -> Contact:
    _view, contact = await contact_in_path(request)
    return contact


@routes.get(r"/contacts/{contact_id:\d+}/erase")
@roles("manager", "admin")
async def erase_confirm(request: web.Request) -> web.StreamResponse:
    contact = await _visible_contact(request)
    return render(request, "contact_erase.html", {"contact": contact})


@routes.post(r"/contacts/{contact_id:\d+}/erase")
@roles("manager", "admin")
async def erase(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    contact = await _visible_contact(request)
    form = await request.post()
    if form.get("confirm") != "erase":
        ctx = {"contact": contact, "error": _("Type erase to confirm.")}
        return render(request, "contact_erase.html", ctx, status=400)
    assert contact.id is not None
    pairs = await rt.service.erase_contact(contact.id, current_user(request).username)
    directory = resolve_path(str(rt.settings.get("recordings", {}).get("directory", "")))
    report = await erase_recordings(pairs, directory=directory, media_dir=media_dir(rt))
    if report.failed:
        log.error("GDPR erase: %d recording files could not be deleted: %s",
                  len(report.failed), [reason for _, reason in report.failed])  # fmt: skip
    raise web.HTTPFound(f"/contacts?done=erased&files={report.deleted}")


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
