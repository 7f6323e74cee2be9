"""Calls: the filtered, keyset-paginated list and a call's own page (timeline, notes,
recording, the contact it belongs to).

A rep sees the calls they handled (and missed calls whose callback is theirs or
nobody's), a manager their team's, an admin all; anything else is a 404.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ami_bridge.facts import Direction, Outcome
from crm import wrapup
from crm.errors import InvalidInput, NotFound
from crm.limits import NOTE_COMMENT_MAX, NOTE_TOPIC_MAX
from crm.models import Call, CallFilter, Contact
from crm.phones import number_search

from ..i18n import N_, _
from ..labels import label
from ..refusals import refusal
from ..render import format_duration, render
from .rep_common import (
    RepView,
    contacts_by_id,
    form_str,
    int_param,
    next_day,
    not_found,
    pager,
    parse_day,
    rep_view,
    url_with,
)

log = logging.getLogger(__name__)

routes = web.RouteTableDef()
PAGE_SIZE = 50
FILTERS = ("since", "until", "direction", "outcome", "rep", "number", "contact")
DIRECTIONS: tuple[Direction, ...] = ("inbound", "outbound", "internal")
OUTCOMES: tuple[Outcome, ...] = ("answered", "missed", "abandoned", "busy", "no_answer", "failed")
NOTE_TOPICS = (
    N_("New enquiry"), N_("Follow-up"), N_("Quote"), N_("Order"), N_("Complaint"),
    N_("Billing"), N_("Other"),
)  # fmt: skip
"""Suggestions only: a topic is free text, kept as the rep typed it.  The results a rep
picks are the admin's (``crm.wrapup``, Admin > Wrap-up)."""
TOPIC_MAX, COMMENT_MAX = NOTE_TOPIC_MAX, NOTE_COMMENT_MAX  # the service checks the same
HANGUP_WORDS = {
    "caller": N_("the caller hung up"),
    "callee": N_("the callee hung up"),
    "pbx": N_("the PBX ended the call"),
}


# -- the list --------------------------------------------------------------------------
@routes.get("/calls")
async def calls_list(request: web.Request) -> web.StreamResponse:
    view = await rep_view(request)
    q = request.query
    values = {k: q.get(k, "").strip() for k in FILTERS}
    errors: list[str] = []
    flt = CallFilter()
    contact: Contact | None = None
    try:
        flt.since = parse_day(values["since"], view.tz, _("From"))
        until = parse_day(values["until"], view.tz, _("To"))
        flt.until = next_day(until, view.tz) if until is not None else None
        if flt.since is not None and flt.until is not None and flt.until <= flt.since:
            raise InvalidInput(_("the 'To' date is before the 'From' date"))
    except InvalidInput as exc:
        errors.append(refusal(exc))
    if values["direction"]:
        if values["direction"] in DIRECTIONS:
            flt.direction = values["direction"]  # type: ignore[assignment]
        else:
            errors.append(_("direction: inbound, outbound or internal"))
    if values["outcome"]:
        if values["outcome"] in OUTCOMES:
            flt.outcome = values["outcome"]  # type: ignore[assignment]
        else:
            errors.append(_("outcome: one of %(outcomes)s",
                            outcomes=", ".join(label(o) for o in OUTCOMES)))  # fmt: skip
    try:
        rep = int_param(values["rep"])
        if rep is not None and not (rep in view.users and view.scope.covers(rep)):
            raise InvalidInput(_("rep: choose one from the list"))
        flt.user_id = rep
        contact_id = int_param(values["contact"])
        if contact_id is not None:
            contact = (await contacts_by_id(view.rt, [contact_id])).get(contact_id)
            if not view.can_open(contact):
                raise InvalidInput(_("contact: no such contact"))
            flt.contact_id = contact_id
    except InvalidInput as exc:
        errors.append(refusal(exc))
    if values["number"]:
        # A whole number finds its calls exactly; part of one (4+ digits), every number
        # with those digits in it: the same rule as the contacts' search.
        e164, fragment = number_search(values["number"], view.rt.service.policy.default_region)
        if e164 is None and fragment is None:
            errors.append(_("number: type a phone number or at least %(n)d of its digits", n=4))
        flt.number_e164, flt.number_digits = e164, fragment
    calls: list[Call] = []
    next_cursor = None
    if not errors:
        try:
            page = await view.rt.service.list_calls(
                flt, PAGE_SIZE, q.get("cursor") or None, scope=view.scope
            )
            calls, next_cursor = page.items, page.next_cursor
        except InvalidInput as exc:
            errors.append(refusal(exc))
    contacts = await contacts_by_id(view.rt, (c.contact_id for c in calls))
    filtered = any(values.values())
    return render(
        request,
        "calls.html",
        {
            "view": view,
            "calls": calls,
            "contacts": contacts,
            "values": values,
            "errors": errors,
            "filter_contact": contact,
            "without_contact": url_with(
                "/calls", {k: v for k, v in values.items() if k != "contact"}
            ),
            "filtered": filtered,
            "first_page": not q.get("cursor"),
            "pager": pager(request, next_cursor, FILTERS),
            "directions": DIRECTIONS,
            "outcomes": OUTCOMES,
            "reps": view.visible_users() if view.supervisor else [],
        },
        status=400 if errors else 200,
    )


# -- one call --------------------------------------------------------------------------
async def _visible_call(view: RepView, call_id: int) -> Call:
    try:
        call = await view.rt.service.get_call(call_id)
    except NotFound:
        raise not_found("call") from None
    if not await view.rt.service.can_see_call(view.scope, call):
        raise not_found("call")
    return call


async def call_in_path(request: web.Request) -> tuple[RepView, Call]:
    """The reader's view and the call the path names, if they may see it (else 404)."""
    view = await rep_view(request)
    return view, await _visible_call(view, int(request.match_info["call_id"]))


@dataclass
class Step:
    """One line of a call's timeline: ``title``, then ``number`` as a click-to-call
    button when there is one, then ``tail``."""

    at: float | None
    title: str
    detail: str = ""
    kind: str = "info"
    number: str | None = None
    tail: str = ""


def _who(view: RepView, ext: str | None) -> str:
    if not ext:
        return "?"
    if ext.startswith("+"):
        return ext  # an outside party (a transfer out of the PBX), named in E.164
    user = view.by_ext(ext)
    if user:
        return _("ext %(ext)s (%(name)s)", ext=ext, name=user.display_name)
    return _("ext %(ext)s", ext=ext)


TRANSFER_WORDS = {"blind": N_("Blind transfer"), "attended": N_("Attended transfer")}


def call_timeline(view: RepView, call: Call, remote: str | None) -> list[Step]:
    """The call's story from its stored fields, in order, in the reader's language.
    ``remote`` is the outside party's number (None when unknown)."""
    steps: list[Step] = []
    if call.direction == "inbound":
        line = " " + _("on line %(line)s", line=call.did) if call.did else ""
        title = _("Call from") if remote else _("Call from an unknown number")
        steps.append(Step(call.started_at, title, call.caller_name or "", number=remote,
                          tail=line))  # fmt: skip
    elif call.direction == "outbound":
        who = _who(view, call.caller)
        title = (_("%(who)s dialled", who=who) if remote
                 else _("%(who)s dialled an unknown number", who=who))  # fmt: skip
        steps.append(Step(call.started_at, title, number=remote))
    else:
        steps.append(Step(call.started_at, _("%(caller)s called %(callee)s",
                                             caller=_who(view, call.caller),
                                             callee=_who(view, call.callee))))  # fmt: skip
    if call.queue:
        steps.append(Step(None, _("Queued in %(queue)s", queue=call.queue), kind="queue"))
    for ext in call.rang:
        # a phone that rejected the call (SIP 403/603) was offered it too: say who
        declined = _("declined the call") if ext in call.declined else ""
        steps.append(Step(None, _("Rang %(who)s", who=_who(view, ext)), declined, kind="rang"))
    if call.answered and call.answered_at is not None:
        by = call.answered_by
        ring = (_("after %(duration)s ringing", duration=format_duration(call.ring_seconds))
                if call.ring_seconds else "")  # fmt: skip
        if (call.direction == "outbound" and view.by_ext(by) is None) or not by:
            title = _("Answered by") if remote else _("Answered")
            steps.append(Step(call.answered_at, title, ring, "answered", number=remote))
        else:
            steps.append(Step(call.answered_at, _("Answered by %(who)s", who=_who(view, by)),
                              ring, "answered"))  # fmt: skip
    for t in call.transfers:
        kind = TRANSFER_WORDS.get(t.kind)
        steps.append(
            Step(
                t.at,
                _(kind) if kind else f"{t.kind.capitalize()} transfer",
                _(
                    "from %(source)s to %(target)s",
                    source=_who(view, t.from_),
                    target=_who(view, t.to),
                ),
                "transfer",
            )
        )
    if not call.answered:
        steps.append(Step(call.ended_at, _("Not answered (%(outcome)s)",
                                           outcome=label(call.outcome)), "", "missed"))  # fmt: skip
    words = HANGUP_WORDS.get(call.hangup_by or "")
    detail = _(words) if words else ""
    if call.hangup_cause is not None:
        cause = _("cause %(cause)s", cause=call.hangup_cause)
        detail = f"{detail} ({cause})" if detail else cause
    title = (_("Ended · talked %(duration)s", duration=format_duration(call.talk_seconds))
             if call.answered else _("Ended"))  # fmt: skip
    steps.append(Step(call.ended_at, title, detail, "ended"))
    timed = sorted((s for s in steps if s.at is not None), key=lambda s: s.at or 0.0)
    # steps without a time of their own (rang, queued) follow the start
    return [timed[0], *(s for s in steps if s.at is None), *timed[1:]]


async def _player_items(request: web.Request, call: Call) -> list[Any] | None:
    """The recordings player's items when the recordings view is installed, else None."""
    try:
        module = importlib.import_module("web.recordings_view")
    except ImportError:
        return None
    func = getattr(module, "player_items", None)
    if func is None:
        return None
    try:
        return list(await func(request, call))
    except web.HTTPException:
        raise
    except Exception:
        log.exception("recordings player for call %s", call.id)
        return None


async def _call_context(request: web.Request, view: RepView, call: Call) -> dict[str, Any]:
    rt = view.rt
    remote = call.remote_e164 or (call.caller if call.direction == "inbound" else call.callee)
    contacts = await contacts_by_id(rt, [call.contact_id])
    contact = contacts.get(call.contact_id) if call.contact_id else None
    candidates: list[Contact] = []
    if call.remote_e164 and call.match_reason != "erased":
        candidates = [
            c
            for c in await rt.store.contacts_by_e164(call.remote_e164)
            if view.can_open(c) and c.id != call.contact_id
        ]
    notes = await rt.service.notes(call.id or 0)
    player = await _player_items(request, call)
    recordings = [] if player is not None else await rt.service.recordings_for_call(call.id or 0)
    task = await rt.store.callback_for_call(call.id or 0) if call.id else None
    wrapup_settings = await wrapup.load(rt.service)
    return {
        "view": view,
        "call": call,
        "remote": remote,
        "contact": contact,
        "can_open_contact": view.can_open(contact),
        "contact_owner": view.users.get(contact.owner_id) if contact and contact.owner_id else None,
        "candidates": candidates,
        "notes": notes,
        "timeline": call_timeline(view, call, remote),
        "player_items": player,
        "recordings": recordings,
        "recording_names": [os.path.basename(r) for r in call.recordings],
        "task": task,
        "rep": view.users.get(call.user_id) if call.user_id else None,
        "results": wrapup_settings.results_for(view.user),
        "wrapup_required": wrapup_settings.required,
        "topics": NOTE_TOPICS,
        "form": {"topic": "", "result": "", "comment": "", "follow_up": ""},
        "note_editable": lambda n: n.author_id == view.user.id or view.supervisor,
        "errors": {},
        "message": _message(request),
    }


def _message(request: web.Request) -> str:
    if "noted" in request.query:
        return _("Wrap-up saved.")
    if "followup" in request.query:
        return _("Wrap-up saved; the follow-up is on your callbacks list.")
    if "edited" in request.query:
        return _("Note changed; the previous text is kept in the audit log.")
    if "relinked" in request.query:
        return _("The call now belongs to the contact you chose.")
    return ""


@routes.get(r"/calls/{call_id:\d+}")
async def call_page(request: web.Request) -> web.StreamResponse:
    view, call = await call_in_path(request)
    return render(request, "call.html", await _call_context(request, view, call))


@routes.post(r"/calls/{call_id:\d+}/contact")
async def relink(request: web.Request) -> web.StreamResponse:
    view, call = await call_in_path(request)
    form = await request.post()
    ctx = await _call_context(request, view, call)
    error = ""
    try:
        contact_id = int_param(form_str(form, "contact_id"))
    except InvalidInput:
        contact_id = None
    if contact_id is None or all(c.id != contact_id for c in ctx["candidates"]):
        error = _("Choose one of the contacts that have this call's number.")
    else:
        try:
            await view.rt.service.relink_call(call.id or 0, contact_id, view.user.username)
        except (InvalidInput, NotFound) as exc:
            error = refusal(exc)
    if error:
        ctx["errors"] = {"relink": error}
        return render(request, "call.html", ctx, status=400)
    raise web.HTTPSeeOther(f"/calls/{call.id}?relinked=1")


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
