"""The callbacks page: the tasks a rep works on (their own, and unowned ones for calls
that rang them), a manager's team's, everyone's for an admin; claim, log an attempt,
snooze, close with a reason.  Every action is a plain form (CSRF, redirect after POST),
so the page works without JavaScript; the live lists follow over SSE.

The rules (who may do what, what an attempt closes) are ``crm.callback_work``'s; this
module only reads forms and shows pages.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crm.callback_work import CLOSE_REASONS, CallbackView
from crm.errors import Forbidden, InvalidInput, NotFound
from crm.models import ATTEMPT_RESULTS

from ..i18n import _
from ..refusals import refusal
from ..render import render
from ..runtime import callback_work
from ..words import words
from .rep_common import (
    RepView,
    contacts_by_id,
    form_str,
    local_input,
    not_found,
    parse_local_time,
    rep_view,
)

routes = web.RouteTableDef()
ACTIONS = ("claim", "attempt", "snooze", "close")
SNOOZE_DEFAULT_SECONDS = 3600.0


def attempt_words() -> dict[str, str]:
    return words("attempt")


def reason_words() -> dict[str, str]:
    return words("close_reason")


def done_message(action: str) -> str:
    return {
        "claim": _("The callback is yours now."),
        "attempt": _("Attempt logged."),
        "snooze": _("Snoozed."),
        "close": _("Callback closed."),
    }.get(action, "")


def sections(views: list[CallbackView], now: float) -> dict[str, list[CallbackView]]:
    """Open tasks as the rep works them: overdue, due later, snoozed."""
    out: dict[str, list[CallbackView]] = {"overdue": [], "due": [], "snoozed": []}
    for v in views:
        t = v.task
        if t.snoozed_until is not None and t.snoozed_until > now:
            out["snoozed"].append(v)
        elif t.due_at < now:
            out["overdue"].append(v)
        else:
            out["due"].append(v)
    return out


async def _page(
    request: web.Request, view: RepView, errors: list[str] | None = None, status: int = 200
) -> web.StreamResponse:
    state = "closed" if request.query.get("status") == "closed" else "open"
    work = callback_work(view.rt)
    views = await work.for_user(view.user, view.scope, state)
    contacts = await contacts_by_id(view.rt, [v.task.contact_id for v in views])
    now = view.now()
    ctx: dict[str, Any] = {
        "view": view,
        "state": state,
        "views": views,
        "sections": sections(views, now) if state == "open" else {},
        "contacts": contacts,
        "now": now,
        "snooze_default": local_input(now + SNOOZE_DEFAULT_SECONDS, view.tz),
        "attempt_results": ATTEMPT_RESULTS,
        "attempt_words": attempt_words(),
        "close_reasons": CLOSE_REASONS,
        "reason_words": reason_words(),
        "message": done_message(request.query.get("done", "")),
        "errors": errors or [],
    }
    return render(request, "callbacks.html", ctx, status=status)


@routes.get("/callbacks")
async def callbacks_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, await rep_view(request))


@routes.post(r"/callbacks/{task_id:\d+}/{action}")
async def callback_action(request: web.Request) -> web.StreamResponse:
    view = await rep_view(request)
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise not_found()
    task_id = int(request.match_info["task_id"])
    form = await request.post()
    work = callback_work(view.rt)
    try:
        if action == "claim":
            await work.claim(view.user, task_id, view.scope)
        elif action == "attempt":
            await work.attempt(
                view.user,
                task_id,
                view.scope,
                form_str(form, "result", 40),
                form_str(form, "comment", 4000),
            )
        elif action == "snooze":
            until = parse_local_time(form_str(form, "until", 40), view.tz, _("snooze until"))
            if until is None:
                raise InvalidInput(_("snooze: choose a time"))
            await work.snooze(view.user, task_id, view.scope, until)
        else:
            await work.close(view.user, task_id, view.scope, form_str(form, "reason", 40))
    except NotFound:
        raise not_found("callback") from None
    except Forbidden as exc:
        return await _page(request, view, [refusal(exc)], status=403)
    except InvalidInput as exc:
        return await _page(request, view, [refusal(exc)], status=400)
    raise web.HTTPSeeOther(f"/callbacks?done={action}")


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
