"""``/api/v1``: contacts, leads, calls, callbacks and click-to-call as JSON.

Every list and get goes through the caller's ``Scope`` (the same rule as the UI): a rep's
token sees the rep's own work, a manager's their team's.  Things outside the scope answer
404, so an integration cannot even learn that they exist.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crm.errors import Forbidden, InvalidInput
from crm.events import Event
from crm.models import CallFilter, Contact, User
from crm.phones import number_search

from ..app import current_user, public, roles, runtime
from ..pages.dial import click_json, clicktocall_of
from ..render import visitor
from .common import (
    ApiError,
    api,
    choice_param,
    int_param,
    json_body,
    limit_param,
    scope,
    time_param,
)
from .schema import API_PREFIX, DIRECTIONS, LEAD_STATUSES, OUTCOMES, openapi_document
from .serialize import call_json, callback_json, contact_json, me_json

routes = web.RouteTableDef()
P = API_PREFIX
MAX_ID = 2**63 - 1


def _id(request: web.Request, name: str = "id") -> int:
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise ApiError(404, "not found") from None
    if not 1 <= value <= MAX_ID:
        raise ApiError(404, "not found")
    return value


def _cursor_id(request: web.Request) -> int | None:
    raw = request.query.get("cursor")
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_ID:
        raise ApiError(400, "cursor: not a cursor this API gave out", "cursor")
    return value


def _page(items: list[dict[str, Any]], next_cursor: str | None) -> web.Response:
    return web.json_response({"items": items, "next_cursor": next_cursor})


@routes.get(f"{P}/openapi.json")
@public
@api
async def openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(openapi_document())


@routes.get(f"{P}/me")
@api
async def me(request: web.Request) -> web.StreamResponse:
    return web.json_response(me_json(current_user(request), visitor(request).auth))


# -- contacts ----------------------------------------------------------------------------


async def _visible_contact(request: web.Request, contact_id: int) -> Contact:
    rt = runtime(request)
    contact = await rt.service.get_contact(contact_id)
    if not rt.service.can_see_contact(await scope(request), contact):
        raise ApiError(404, f"not found: contact {contact_id}")
    return contact


async def _check_owner(request: web.Request, owner_id: int | None) -> None:
    """A user may give contacts only to people in their own scope (a rep: themself)."""
    if owner_id is None:
        return
    if not 1 <= owner_id <= MAX_ID:
        raise ApiError(422, "owner_id: no such active user", "owner_id")
    sc = await scope(request)
    if not sc.covers(owner_id):
        raise ApiError(403, "owner_id: you can only assign contacts within your own scope",
                       "owner_id")  # fmt: skip
    owner = await runtime(request).store.get_user(owner_id)
    if owner is None or not owner.active:
        raise ApiError(422, "owner_id: no such active user", "owner_id")


@routes.get(f"{P}/contacts")
@api
async def contacts(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    limit = limit_param(request)
    after = _cursor_id(request)
    sc = await scope(request)
    q = (request.query.get("q") or "").strip()
    if len(q) > 200:
        raise ApiError(400, "q: at most 200 characters", "q")
    if q:
        found = await rt.service.search_contacts(q, limit + 1, after_id=after, scope=sc)
    else:
        found = await rt.service.list_contacts(after, limit + 1, scope=sc)
    more = len(found) > limit
    found = found[:limit]
    cursor = str(found[-1].id) if more and found else None
    return _page([contact_json(c) for c in found], cursor)


@routes.post(f"{P}/contacts")
@api
async def create_contact(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    user = current_user(request)
    body = await json_body(request, "ContactCreate")
    owner = body.get("owner_id", user.id if user.role == "rep" else None)
    await _check_owner(request, owner)
    contact = await rt.service.create_contact(
        body.get("name", ""), body.get("company", ""), body.get("email", ""),
        body.get("phones", []), owner, body.get("tags", []), body.get("custom"),
        body.get("lead_status"), actor=user.username,
    )  # fmt: skip
    if contact.lead is not None:
        publish_lead_created(request, contact, user)
    return web.json_response(contact_json(contact), status=201,
                             headers={"Location": f"{P}/contacts/{contact.id}"})  # fmt: skip


def publish_lead_created(request: web.Request, contact: Contact, user: User) -> None:
    """Leads made by hand announce themselves like the ones calls make (webhooks)."""
    targets = frozenset({contact.owner_id} if contact.owner_id is not None else ())
    runtime(request).bus.publish(Event("lead_created", contact, user_ids=targets))


@routes.get(P + "/contacts/{id}")
@api
async def get_contact(request: web.Request) -> web.StreamResponse:
    return web.json_response(contact_json(await _visible_contact(request, _id(request))))


@routes.patch(P + "/contacts/{id}")
@api
async def patch_contact(request: web.Request) -> web.StreamResponse:
    contact = await _visible_contact(request, _id(request))
    body = await json_body(request, "ContactPatch")
    if "owner_id" in body and body["owner_id"] != contact.owner_id:
        await _check_owner(request, body["owner_id"])
    if "custom" in body and body["custom"] is None:
        body["custom"] = {}
    user = current_user(request)
    try:
        updated = await runtime(request).service.update_contact(
            contact.id or 0, actor=user.username, by=user, **body
        )
    except Forbidden as exc:  # only the owner rule refuses a visible contact
        raise ApiError(403, str(exc), "owner_id") from None
    return web.json_response(contact_json(updated))


@routes.delete(P + "/contacts/{id}")
@roles("manager", "admin")
@api
async def delete_contact(request: web.Request) -> web.StreamResponse:
    contact = await _visible_contact(request, _id(request))
    await runtime(request).service.delete_contact(contact.id or 0, current_user(request).username)
    return web.Response(status=204)


# -- leads -------------------------------------------------------------------------------


@routes.get(f"{P}/leads")
@api
async def leads(request: web.Request) -> web.StreamResponse:
    """Contacts that carry a lead status (all of them, or ``status``), by id; the store
    filters and pages them (``CrmService.list_leads``), so a page costs one page."""
    limit = limit_param(request)
    status = choice_param(request, "status", LEAD_STATUSES)
    after = _cursor_id(request)
    page = await runtime(request).service.list_leads(
        await scope(request),
        status,
        limit=limit,
        cursor=str(after) if after is not None else None,
    )
    return _page([contact_json(c) for c in page.items], page.next_cursor)


@routes.post(P + "/leads/{id}/convert")
@api
async def convert_lead(request: web.Request) -> web.StreamResponse:
    contact = await _visible_contact(request, _id(request))
    if contact.lead is None:
        raise ApiError(422, "this contact is not a lead", "id")
    done = await runtime(request).service.convert_lead(
        contact.id or 0, current_user(request).username
    )
    return web.json_response(contact_json(done))


# -- calls -------------------------------------------------------------------------------


@routes.get(f"{P}/calls")
@api
async def calls(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    number = (request.query.get("number") or "").strip() or None
    if number is not None and len(number) > 40:
        raise ApiError(400, "number: at most 40 characters", "number")
    # the pages' rule: a whole number exactly, else any number with these digits in it
    e164, digits = number_search(number or "", rt.service.policy.default_region)
    if number is not None and e164 is None and digits is None:
        raise ApiError(400, "number: a phone number or at least 4 of its digits", "number")
    flt = CallFilter(
        since=time_param(request, "since"),
        until=time_param(request, "until"),
        direction=choice_param(request, "direction", DIRECTIONS),  # type: ignore[arg-type]
        outcome=choice_param(request, "outcome", OUTCOMES),  # type: ignore[arg-type]
        user_id=int_param(request, "user", high=MAX_ID),
        number_e164=e164,
        contact_id=int_param(request, "contact", high=MAX_ID),
        number_digits=digits,
    )
    cursor = request.query.get("cursor") or None
    limit, sc = limit_param(request), await scope(request)
    try:
        page = await rt.service.list_calls(flt, limit, cursor, scope=sc)
    except InvalidInput as exc:  # a query parameter the service could not read
        field = "cursor" if "cursor" in str(exc) else "number"
        raise ApiError(400, f"{field}: {exc}", field) from None
    return _page([call_json(c) for c in page.items], page.next_cursor)


@routes.get(P + "/calls/{id}")
@api
async def get_call(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    call_id = _id(request)
    call = await rt.service.get_call(call_id)
    if not await rt.service.can_see_call(await scope(request), call):
        raise ApiError(404, f"not found: call {call_id}")
    return web.json_response(call_json(call))


@routes.post(f"{P}/calls")
@api
async def click_to_call(request: web.Request) -> web.StreamResponse:
    body = await json_body(request, "ClickToCallRequest")
    c2c = clicktocall_of(runtime(request))
    if c2c is None:
        raise ApiError(503, "click-to-call is not configured (see the [dial] settings)")
    result = await c2c.start(current_user(request), body["number"], body.get("extension"),
                             body.get("request_key"))  # fmt: skip
    return web.json_response(click_json(result), status=202)


# -- callbacks ---------------------------------------------------------------------------


@routes.get(f"{P}/callbacks")
@api
async def callbacks(request: web.Request) -> web.StreamResponse:
    """Oldest due first; the store answers by position, so the cursor is an offset."""
    rt = runtime(request)
    limit = limit_param(request)
    status = choice_param(request, "status", ["open", "closed", "all"]) or "open"
    owner = int_param(request, "owner", high=MAX_ID)
    raw = request.query.get("cursor") or ""
    try:
        offset = int(raw[2:]) if raw else 0
        if raw and (not raw.startswith("o:") or offset < 0):
            raise ValueError
    except ValueError:
        raise ApiError(400, "cursor: not a cursor this API gave out", "cursor") from None
    if offset + limit >= 1000:
        raise ApiError(400, "cursor: too deep; narrow the list with status or owner", "cursor")
    tasks = await rt.service.list_callbacks(
        owner, None if status == "all" else status,  # type: ignore[arg-type]
        offset + limit + 1, scope=await scope(request),
    )  # fmt: skip
    window = tasks[offset : offset + limit + 1]
    more = len(window) > limit
    window = window[:limit]
    return _page([callback_json(t) for t in window], f"o:{offset + limit}" if more else None)


def setup_api(app: web.Application) -> None:
    app.router.add_routes(routes)
