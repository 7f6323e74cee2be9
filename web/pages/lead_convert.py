"""Converting a lead into a customer: a form asking for the customer's name, company and
owner (prefilled: the caller-ID name, not the machine-made lead name; the lead's company;
its owner, or the rep converting it), then the conversion (``CrmService.convert_lead``),
which goes on the contact's timeline with who and when.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crm.errors import Forbidden, InvalidInput
from crm.leads import customer_name_suggestion
from crm.limits import COMPANY_MAX, NAME_MAX
from crm.models import Contact

from ..i18n import _
from ..refusals import refusal
from ..render import render
from .contacts import contact_in_path
from .rep_common import RepView, form_str, int_param

routes = web.RouteTableDef()


def _owners(view: RepView, contact: Contact) -> list[Any]:
    owners = view.owner_choices()
    if contact.owner_id and all(u.id != contact.owner_id for u in owners):
        current = view.users.get(contact.owner_id)
        if current is not None:
            owners = [*owners, current]
    return owners


def _page(
    request: web.Request,
    view: RepView,
    contact: Contact,
    values: dict[str, str],
    error: str = "",
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "lead_convert.html",
        {
            "view": view,
            "contact": contact,
            "values": values,
            "owners": _owners(view, contact),
            "error": error,
        },
        status=status,
    )


async def _lead(request: web.Request) -> tuple[RepView, Contact]:
    view, contact = await contact_in_path(request)
    if contact.lead is None or contact.lead.status == "converted":
        raise web.HTTPSeeOther(f"/contacts/{contact.id}")
    return view, contact


@routes.get(r"/contacts/{contact_id:\d+}/convert")
async def convert_form(request: web.Request) -> web.StreamResponse:
    view, contact = await _lead(request)
    owner = contact.owner_id if contact.owner_id is not None else view.user_id
    values = {
        "name": customer_name_suggestion(contact.name),
        "company": contact.company,
        "owner": str(owner),
    }
    return _page(request, view, contact, values)


@routes.post(r"/contacts/{contact_id:\d+}/convert")
async def convert(request: web.Request) -> web.StreamResponse:
    view, contact = await contact_in_path(request)
    form = await request.post()
    # A field left out of the form keeps its value (a client posting only the token
    # converts the lead as it is); a field sent empty is what the user typed.
    values = {
        "name": form_str(form, "name", NAME_MAX + 1),
        "company": form_str(form, "company", COMPANY_MAX + 1),
        "owner": form_str(form, "owner", 20),
    }
    try:
        fields: dict[str, Any] = {}
        if "name" in form:
            if not values["name"]:
                raise InvalidInput(_("Give the customer a name."))
            fields["name"] = values["name"]
        if "company" in form:
            fields["company"] = values["company"]
        if "owner" in form:
            owner = int_param(values["owner"])
            if owner is not None and owner not in {u.id for u in _owners(view, contact)}:
                raise InvalidInput(_("owner: choose someone from the list"))
            fields["owner_id"] = owner
        await view.rt.service.convert_lead(
            contact.id or 0, view.user.username, by=view.user, **fields
        )
    except (InvalidInput, Forbidden) as exc:
        if contact.lead is None or contact.lead.status == "converted":
            raise web.HTTPBadRequest(text=refusal(exc)) from None
        return _page(request, view, contact, values, refusal(exc), status=400)
    raise web.HTTPSeeOther(f"/contacts/{contact.id}?converted=1")


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
