"""A call's wrap-up and notes: save a wrap-up (result, comment, optional follow-up that
becomes a callback task), change a note.

The call page's form posts here without JavaScript (redirect after POST); the screen
pop's wrap-up card (``static/wrapup.js``) posts the same form with ``Accept:
application/json`` and gets JSON back, so both paths share one set of rules
(``crm.wrapup``, ``CrmService.edit_note``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crm import wrapup
from crm.errors import Forbidden, InvalidInput, NotFound

from ..i18n import N_, _
from ..refusals import refusal
from ..render import render
from ..runtime import callback_work
from .calls import COMMENT_MAX, TOPIC_MAX, _call_context, call_in_path
from .rep_common import RepView, form_str, not_found, parse_local_time, rep_view

routes = web.RouteTableDef()
DEFAULT_RESULT_WORDS = (
    N_("Interested"), N_("Not interested"), N_("Call back later"), N_("Meeting booked"),
    N_("Sale"), N_("Support request"), N_("Wrong number"), N_("Voicemail / no answer"),
)  # fmt: skip
"""``crm.wrapup.DEFAULT_RESULTS`` marked for the catalogs: stored in English (reports group
by them), shown in the reader's language.  Results an admin types are shown as typed."""


def wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def validate(
    form: Any, results: set[str], view: RepView
) -> tuple[dict[str, str], dict[str, str], float | None]:
    """The wrap-up's fields, the errors by field (``_`` for the whole form), and the
    follow-up time (epoch) if one was given."""
    values = {
        "topic": form_str(form, "topic", TOPIC_MAX + 1),
        "result": form_str(form, "result", 200),
        "comment": form_str(form, "comment", COMMENT_MAX + 1),
        "follow_up": form_str(form, "follow_up", 40),
    }
    errors: dict[str, str] = {}
    if len(values["topic"]) > TOPIC_MAX:
        errors["topic"] = _("Keep the topic under %(n)d characters.", n=TOPIC_MAX)
    if values["result"] and values["result"] not in results:
        errors["result"] = _("Choose a result from the list.")
    if len(values["comment"]) > COMMENT_MAX:
        errors["comment"] = _("Keep the comment under %(n)d characters.", n=COMMENT_MAX)
    follow_up = None
    try:
        follow_up = parse_local_time(values["follow_up"], view.tz, _("follow-up"))
    except InvalidInput:
        errors["follow_up"] = _("Give the follow-up as a date and time.")
    if follow_up is not None and follow_up <= view.now():
        errors["follow_up"] = _("The follow-up must be in the future.")
    if not (values["topic"] or values["result"] or values["comment"]):
        errors["_"] = _("Choose a result or write a comment: the wrap-up is empty.")
    return values, errors, follow_up


@routes.get("/wrapup/options")
async def wrapup_options(request: web.Request) -> web.StreamResponse:
    """What the pop's wrap-up card offers this user (their team's results: the stored
    value and its words in the user's language) and whether the wrap-up is required."""
    view = await rep_view(request)
    settings = await wrapup.load(view.rt.service)
    results = [{"value": r, "label": _(r)} for r in settings.results_for(view.user)]
    return web.json_response({"results": results, "required": settings.required})


@routes.post(r"/calls/{call_id:\d+}/notes")
async def save_wrapup(request: web.Request) -> web.StreamResponse:
    view, call = await call_in_path(request)
    settings = await wrapup.load(view.rt.service)
    values, errors, follow_up = validate(await request.post(), settings.all_results(), view)
    saved = None
    if not errors:
        try:
            saved = await wrapup.save(
                view.rt.service,
                callback_work(view.rt),
                view.user,
                call,
                settings,
                result=values["result"],
                comment=values["comment"],
                topic=values["topic"],
                follow_up_at=follow_up,
            )
        except InvalidInput as exc:
            errors["_"] = refusal(exc)
    if saved is not None:
        view.rt.presence.clear_wrapup(view.user.extensions)
    if wants_json(request):
        if errors:
            return web.json_response({"ok": False, "errors": errors}, status=400)
        assert saved is not None
        task = saved.follow_up
        return web.json_response(
            {"ok": True, "note_id": saved.note.id, "follow_up_task": task.id if task else None}
        )
    if errors:
        ctx = await _call_context(request, view, call)
        ctx.update(form=values, errors=errors)
        return render(request, "call.html", ctx, status=400)
    flag = "followup" if saved is not None and saved.follow_up else "noted"
    raise web.HTTPSeeOther(f"/calls/{call.id}?{flag}=1#notes")


@routes.post(r"/calls/{call_id:\d+}/notes/{note_id:\d+}")
async def edit_note(request: web.Request) -> web.StreamResponse:
    view, call = await call_in_path(request)
    note_id = int(request.match_info["note_id"])
    form = await request.post()
    error, status = "", 400
    try:
        note = await view.rt.store.get_note(note_id)
        if note is None or note.call_id != call.id:
            raise NotFound(f"note {note_id}")
        await view.rt.service.edit_note(
            view.user,
            note_id,
            form_str(form, "topic", TOPIC_MAX + 1),
            form_str(form, "result", 200),
            form_str(form, "comment", COMMENT_MAX + 1),
        )
    except NotFound:
        raise not_found("note") from None
    except Forbidden:
        error, status = _("Only the author of a note, or a manager, can change it."), 403
    except InvalidInput as exc:
        error = refusal(exc)
    if error:
        ctx = await _call_context(request, view, call)
        ctx["errors"] = {"edit": error, "edit_id": str(note_id)}
        return render(request, "call.html", ctx, status=status)
    raise web.HTTPSeeOther(f"/calls/{call.id}?edited=1#notes")


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
