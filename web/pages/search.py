"""The header's search box (every page): contacts by name, company, e-mail or any part of
a number, and calls by any part of a number, within what the user may see.

The rules are the lists' own (``CrmService.search_contacts`` and the calls list's number
filter through ``crm.phones.number_fragment``), so the header and the Contacts and Calls
pages never disagree on what a search finds.  Each half shows its first results and links
to its full, paged list.
"""

from __future__ import annotations

from aiohttp import web

from crm.errors import InvalidInput
from crm.models import CallFilter
from crm.phones import number_search

from ..render import render
from .rep_common import rep_view

routes = web.RouteTableDef()
SHOWN = 10
"""Results per half; the "all" links open the full lists."""
QUERY_MAX = 200


@routes.get("/search")
async def search(request: web.Request) -> web.StreamResponse:
    view = await rep_view(request)
    query = request.query.get("q", "").strip()[:QUERY_MAX]
    contacts, calls = [], []
    by_number = False
    if query:
        contacts = await view.rt.service.search_contacts(query, SHOWN + 1, scope=view.scope)
        e164, fragment = number_search(query, view.rt.service.policy.default_region)
        by_number = bool(e164 or fragment)
        if by_number:
            flt = CallFilter(number_e164=e164, number_digits=fragment)
            try:
                page = await view.rt.service.list_calls(flt, SHOWN, scope=view.scope)
                calls = page.items
            except InvalidInput:
                calls = []
    found = await view.rt.store.contacts_by_ids(
        c.contact_id for c in calls if c.contact_id is not None
    )
    return render(
        request,
        "search.html",
        {
            "view": view,
            "q": query,
            "contacts": contacts[:SHOWN],
            "more_contacts": len(contacts) > SHOWN,
            "calls": calls,
            "call_contacts": {k: c for k, c in found.items() if not c.erased},
            "by_number": by_number,
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
