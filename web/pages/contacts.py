"""Contacts and leads: lists with search (name, company, e-mail, or any number in any
format), the contact card with every call, note and callback in one timeline, create,
edit, merge, lead status and conversion.

A rep sees the contacts they own and the shared ones (no owner), a manager their team's
and the shared ones, an admin all; anything else is a 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from crm.access import can_see_call, can_see_callback
from crm.errors import Forbidden, InvalidInput, NotFound
from crm.models import (
    LEAD_STATUSES,
    AuditEntry,
    Call,
    CallbackTask,
    Contact,
    Note,
    PhoneNumber,
)
from crm.services import OPEN_LEAD_STATUSES

from ..i18n import _
from ..refusals import refusal
from ..render import render
from .rep_common import RepView, form_str, int_param, not_found, pager, rep_view

routes = web.RouteTableDef()
PAGE_SIZE = 50
LEAD_FILTERS = {
    "open": OPEN_LEAD_STATUSES,
    **{s: (s,) for s in LEAD_STATUSES},
    "all": LEAD_STATUSES,
}


# -- lists -----------------------------------------------------------------------------
def _after(request: web.Request) -> int | None:
    try:
        return int_param(request.query.get("cursor"))
    except InvalidInput:
        raise web.HTTPBadRequest(text=_("bad page cursor")) from None


@routes.get("/contacts")
async def contacts_list(request: web.Request) -> web.StreamResponse:
    view = await rep_view(request)
    query = request.query.get("q", "").strip()[:200]
    found = await view.rt.service.search_contacts(
        query, PAGE_SIZE + 1, _after(request), scope=view.scope
    )
    items, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
    next_cursor = str(items[-1].id) if more and items else None
    return render(
        request,
        "contacts.html",
        {
            "view": view,
            "contacts": items,
            "q": query,
            "pager": pager(request, next_cursor, ("q",)),
            "leads": False,
        },
    )


@routes.get("/leads")
async def leads_list(request: web.Request) -> web.StreamResponse:
    """The leads of one status (or the open ones, or all), filtered and paged by the
    store (``CrmService.list_leads``): a page reads one page of rows at any size."""
    view = await rep_view(request)
    query = request.query.get("q", "").strip()[:200]
    status = request.query.get("status", "open")
    if status not in LEAD_FILTERS:
        status = "open"
    after = _after(request)
    try:
        page = await view.rt.service.list_leads(
            view.scope,
            LEAD_FILTERS[status],
            query=query,
            limit=PAGE_SIZE,
            cursor=str(after) if after is not None else None,
        )
    except InvalidInput:
        raise web.HTTPBadRequest(text=_("bad page cursor")) from None
    return render(
        request,
        "leads.html",
        {
            "view": view,
            "contacts": page.items,
            "q": query,
            "status": status,
            "statuses": list(LEAD_FILTERS),
            "pager": pager(request, page.next_cursor, ("q", "status")),
            "leads": True,
        },
    )


@routes.get(r"/leads/{contact_id:\d+}")
async def lead_card(request: web.Request) -> web.StreamResponse:
    """A lead is a contact with a lead status: its card is the contact's."""
    raise web.HTTPFound(f"/contacts/{int(request.match_info['contact_id'])}")


# -- one contact -----------------------------------------------------------------------
async def visible_contact(view: RepView, contact_id: int) -> Contact:
    """The contact, if this viewer may open it; 404 otherwise (no hint it exists)."""
    try:
        contact = await view.rt.service.get_contact(contact_id)
    except NotFound:
        raise not_found("contact") from None
    if not view.can_open(contact):
        raise not_found("contact")
    return contact


async def contact_in_path(request: web.Request) -> tuple[RepView, Contact]:
    """The reader's view and the contact the path names, if they may open it (else 404)."""
    view = await rep_view(request)
    return view, await visible_contact(view, int(request.match_info["contact_id"]))


async def _timeline(view: RepView, contact: Contact) -> list[dict[str, Any]]:
    """The card's history, newest first, without what the user may not see."""
    items = await view.rt.service.contact_timeline(contact.id or 0)
    calls: dict[int, Call] = {}
    visible_calls: set[int] = set()
    for item in items:
        if isinstance(item.item, Call) and item.item.id is not None:
            call = item.item
            calls[call.id] = call
            if can_see_call(view.scope, call) or await view.rt.service.can_see_call(
                view.scope, call
            ):
                visible_calls.add(call.id)
    out: list[dict[str, Any]] = []
    for item in items:
        obj = item.item
        if isinstance(obj, Call):
            if obj.id in visible_calls:
                out.append({"kind": "call", "at": item.at, "call": obj})
        elif isinstance(obj, Note):
            if obj.call_id in visible_calls:
                out.append(
                    {"kind": "note", "at": item.at, "note": obj, "call": calls.get(obj.call_id)}
                )
        elif isinstance(obj, CallbackTask) and can_see_callback(view.scope, obj):
            out.append({"kind": "callback", "at": item.at, "task": obj})
        elif isinstance(obj, AuditEntry):
            out.append({"kind": "lead", "at": item.at, "entry": obj, "who": _by_name(view, obj)})
    return out


def _by_name(view: RepView, entry: AuditEntry) -> str:
    """Who changed the lead: their display name, or the actor as logged."""
    for u in view.users.values():
        if u.username == entry.actor:
            return u.display_name
    return entry.actor


def _message(request: web.Request) -> str:
    q = request.query
    if "created" in q:
        return _("Contact created.")
    if "saved" in q:
        return _("Changes saved.")
    if "merged" in q:
        return _("Contacts merged: calls, callbacks and numbers are all on this card now.")
    if "converted" in q:
        return _("Lead converted: this is a customer now.")
    if "status" in q:
        return _("Lead status changed.")
    return ""


async def _card(
    request: web.Request, view: RepView, contact: Contact, errors: Mapping[str, str] | None = None
) -> dict[str, Any]:
    timeline = await _timeline(view, contact)
    calls = [i["call"] for i in timeline if i["kind"] == "call"]
    open_tasks = [
        i["task"] for i in timeline if i["kind"] == "callback" and i["task"].status == "open"
    ]
    return {
        "view": view,
        "contact": contact,
        "timeline": timeline,
        "call_count": len(calls),
        "last_call": calls[0] if calls else None,
        "open_tasks": open_tasks,
        "owner": view.users.get(contact.owner_id) if contact.owner_id else None,
        "lead_statuses": LEAD_STATUSES,
        "message": _message(request),
        "errors": dict(errors or {}),
    }


@routes.get(r"/contacts/{contact_id:\d+}")
async def contact_card(request: web.Request) -> web.StreamResponse:
    view, contact = await contact_in_path(request)
    return render(request, "contact.html", await _card(request, view, contact))


# -- create and edit -------------------------------------------------------------------
def _phones_text(phones: list[PhoneNumber]) -> str:
    return "\n".join(f"{p.label}: {p.raw}" if p.label else p.raw for p in phones)


def parse_phones(text: str) -> list[PhoneNumber]:
    """One number a line, optionally ``label: number`` (``mobile: +1 415 555 0100``)."""
    out = []
    for line in text.splitlines()[:20]:
        line = line.strip()
        if not line:
            continue
        label, _, number = line.rpartition(":")
        out.append(PhoneNumber(raw=number.strip(), e164=None, label=label.strip()[:40]))
    return out


def _form_values(contact: Contact | None = None, **overrides: str) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": contact.name if contact else "",
        "company": contact.company if contact else "",
        "email": contact.email if contact else "",
        "phones": _phones_text(contact.phones) if contact else "",
        "owner": str(contact.owner_id) if contact and contact.owner_id else "",
        "tags": ", ".join(contact.tags) if contact else "",
        "lead": "",
    }
    values.update(overrides)
    return values


def _read_form(form: Any) -> dict[str, Any]:
    return {
        "name": form_str(form, "name", 200),
        "company": form_str(form, "company", 200),
        "email": form_str(form, "email", 200),
        "phones": form_str(form, "phones", 2000),
        "owner": form_str(form, "owner", 20),
        "tags": form_str(form, "tags", 500),
        "lead": "1" if form_str(form, "lead") else "",
    }


def _owner_id(view: RepView, value: str, current: int | None = None) -> int | None:
    owner = int_param(value)
    allowed = {u.id for u in view.owner_choices()}
    if owner is not None and owner not in allowed and owner != current:
        raise InvalidInput(_("owner: choose someone from the list"))
    return owner


def _form_ctx(
    view: RepView, values: dict[str, Any], contact: Contact | None, error: str = ""
) -> dict[str, Any]:
    owners = view.owner_choices()
    if contact is not None and contact.owner_id and all(u.id != contact.owner_id for u in owners):
        current = view.users.get(contact.owner_id)
        if current is not None:
            owners = [*owners, current]
    return {"view": view, "values": values, "contact": contact, "owners": owners, "error": error}


@routes.get("/contacts/new")
async def new_contact_form(request: web.Request) -> web.StreamResponse:
    view = await rep_view(request)
    values = _form_values(
        phones=request.query.get("phone", "")[:40],
        owner=str(view.user_id) if view.user.role == "rep" else "",
        lead="1" if request.query.get("lead") else "",
    )
    return render(request, "contact_form.html", _form_ctx(view, values, None))


@routes.get("/leads/new")
async def new_lead_form(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/contacts/new?lead=1")


@routes.post("/contacts/new")
async def create_contact(request: web.Request) -> web.StreamResponse:
    view = await rep_view(request)
    values = _read_form(await request.post())
    try:
        contact = await view.rt.service.create_contact(
            values["name"],
            values["company"],
            values["email"],
            parse_phones(values["phones"]),
            owner_id=_owner_id(view, values["owner"]),
            tags=values["tags"].split(","),
            lead_status="new" if values["lead"] else None,
            actor=view.user.username,
        )
    except InvalidInput as exc:
        return render(
            request, "contact_form.html", _form_ctx(view, values, None, refusal(exc)), status=400
        )
    raise web.HTTPSeeOther(f"/contacts/{contact.id}?created=1")


@routes.get(r"/contacts/{contact_id:\d+}/edit")
async def edit_contact_form(request: web.Request) -> web.StreamResponse:
    view, contact = await contact_in_path(request)
    return render(request, "contact_form.html", _form_ctx(view, _form_values(contact), contact))


@routes.post(r"/contacts/{contact_id:\d+}/edit")
async def edit_contact(request: web.Request) -> web.StreamResponse:
    view, contact = await contact_in_path(request)
    values = _read_form(await request.post())
    try:
        await view.rt.service.update_contact(
            contact.id or 0,
            actor=view.user.username,
            by=view.user,
            name=values["name"] or contact.name,
            company=values["company"],
            email=values["email"],
            phones=parse_phones(values["phones"]),
            owner_id=_owner_id(view, values["owner"], contact.owner_id),
            tags=values["tags"].split(","),
        )
    except (InvalidInput, Forbidden) as exc:
        status = 403 if isinstance(exc, Forbidden) else 400
        return render(
            request,
            "contact_form.html",
            _form_ctx(view, values, contact, refusal(exc)),
            status=status,
        )
    raise web.HTTPSeeOther(f"/contacts/{contact.id}?saved=1")


# -- merge, lead status, conversion ----------------------------------------------------
@routes.get(r"/contacts/{contact_id:\d+}/merge")
async def merge_form(request: web.Request) -> web.StreamResponse:
    view, keep = await contact_in_path(request)
    query = request.query.get("q", "").strip()[:200]
    other: Contact | None = None
    error = ""
    try:
        other_id = int_param(request.query.get("other"))
    except InvalidInput:
        other_id = None
    if other_id is not None:
        if other_id == keep.id:
            error = _("Choose a different contact: a card cannot be merged into itself.")
        else:
            other = await visible_contact(view, other_id)
    results: list[Contact] = []
    if query:
        found = await view.rt.service.search_contacts(query, 20, scope=view.scope)
        results = [c for c in found if c.id != keep.id]
    elif other is None:
        numbers = [p.e164 for p in keep.phones if p.e164]
        for e164 in numbers[:5]:
            for c in await view.rt.store.contacts_by_e164(e164):
                if c.id != keep.id and view.can_open(c) and all(r.id != c.id for r in results):
                    results.append(c)
    return render(
        request,
        "contact_merge.html",
        {
            "view": view,
            "keep": keep,
            "other": other,
            "q": query,
            "results": results,
            "error": error,
            "suggested": not query,
        },
    )


@routes.post(r"/contacts/{contact_id:\d+}/merge")
async def merge(request: web.Request) -> web.StreamResponse:
    view, keep = await contact_in_path(request)
    form = await request.post()
    try:
        other_id = int_param(form_str(form, "other_id"))
    except InvalidInput:
        other_id = None
    if other_id is None or other_id == keep.id:
        raise web.HTTPBadRequest(text=_("Choose another contact to merge into this one."))
    other = await visible_contact(view, other_id)
    try:
        await view.rt.service.merge_contacts(keep.id or 0, other.id or 0, view.user.username,
                                             by=view.user)  # fmt: skip
    except Forbidden as exc:
        raise web.HTTPForbidden(text=refusal(exc)) from None
    except (InvalidInput, NotFound) as exc:
        raise web.HTTPBadRequest(text=refusal(exc)) from None
    raise web.HTTPSeeOther(f"/contacts/{keep.id}?merged=1")


@routes.post(r"/contacts/{contact_id:\d+}/lead-status")
async def lead_status(request: web.Request) -> web.StreamResponse:
    view, contact = await contact_in_path(request)
    status = form_str(await request.post(), "status", 20)
    try:
        if status == "converted" and contact.lead and contact.lead.status != "converted":
            # converting asks for the customer's name, company and owner first
            raise web.HTTPSeeOther(f"/contacts/{contact.id}/convert")
        await view.rt.service.set_lead_status(
            contact.id or 0,
            status,  # type: ignore[arg-type]
            view.user.username,
        )
    except InvalidInput as exc:
        ctx = await _card(request, view, contact, {"lead": refusal(exc)})
        return render(request, "contact.html", ctx, status=400)
    raise web.HTTPSeeOther(f"/contacts/{contact.id}?status=1")


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
