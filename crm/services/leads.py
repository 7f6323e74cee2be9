"""Leads as people work them: the filtered list, a status change, the conversion to a
customer.  Which calls make leads is the ingest's business (``crm.leads``)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from ..access import Scope
from ..errors import InvalidInput
from ..models import LEAD_SOURCES, LEAD_STATUSES, Contact, LeadStatus, Page, User
from ..store import ContactSearch
from .contacts import ContactServices


class Unset(enum.Enum):
    """A keyword left out (``owner_id`` may be set to None, which means "shared")."""

    UNSET = "unset"


UNSET = Unset.UNSET

OPEN_LEAD_STATUSES: tuple[LeadStatus, ...] = ("new", "contacted", "qualified")
"""A lead still being worked: neither converted nor junk."""


class LeadServices(ContactServices):
    async def list_leads(
        self,
        scope: Scope | None = None,
        statuses: str | Iterable[str] | None = None,
        source: str | None = None,
        query: str = "",
        limit: int = 50,
        cursor: str | None = None,
        owner_id: int | None = None,
    ) -> Page[Contact]:
        """Leads by id, filtered by the database (not by reading contacts in batches):
        ``statuses`` one or several of ``LEAD_STATUSES``, or ``open`` (not converted nor
        junk), None for every lead; ``source`` one of ``LEAD_SOURCES``; ``query`` as in
        ``search_contacts``; within ``scope``.  ``cursor`` is the previous page's
        ``next_cursor`` (the last contact id)."""
        if statuses is None:
            wanted: set[str] = set(LEAD_STATUSES)
        else:
            names = [statuses] if isinstance(statuses, str) else list(statuses)
            wanted = set()
            for name in names:
                if name == "open":
                    wanted.update(OPEN_LEAD_STATUSES)
                elif name in LEAD_STATUSES:
                    wanted.add(name)
                else:
                    raise InvalidInput(
                        f"lead status must be open or one of {', '.join(LEAD_STATUSES)}"
                    )
            if not wanted:
                raise InvalidInput("choose at least one lead status")
        if source is not None and source not in LEAD_SOURCES:
            raise InvalidInput(f"lead source must be one of {', '.join(LEAD_SOURCES)}")
        after_id: int | None = None
        if cursor:
            try:
                after_id = int(cursor)
            except ValueError:
                after_id = -1
            if after_id < 0:
                raise InvalidInput("bad page cursor")
        limit = max(1, min(limit, 1000))
        text, e164, digits = self._search_terms(query)
        found = await self.store.list_leads(
            [s for s in LEAD_STATUSES if s in wanted],
            ContactSearch(text, e164, digits, owner_id, scope.ids() if scope else None),
            source,
            limit + 1,
            after_id,
        )
        if len(found) > limit:
            found = found[:limit]
            return Page(found, str(found[-1].id))
        return Page(found, None)

    async def set_lead_status(self, contact_id: int, status: LeadStatus, actor: str) -> Contact:
        self._check_lead_status(status)
        contact = await self.get_contact(contact_id)
        if contact.lead is None:
            raise InvalidInput("this contact is not a lead")
        before = contact.lead.status
        if before == status:
            return contact
        contact.lead.status = status
        contact.updated_at = self.clock()
        async with self.store.transaction() as tx:
            await tx.update_contact(contact)
            if before == "converted":
                await tx.set_lead_converted_at(contact_id, None)
            # the contact's timeline shows who changed the status and when
            await self.audit(
                actor, "lead.status", f"contact:{contact_id}", {"from": before, "to": status}, tx
            )
        return contact

    # Keyword-only options, alike in shape to other services' signatures, not in job.
    async def convert_lead(
        self,
        contact_id: int,
        actor: str,
        *,
        name: str | None = None,
        company: str | None = None,
        owner_id: int | Unset | None = UNSET,
        by: User | None = None,
    ) -> Contact:
        """The lead becomes a customer, named by the rep (not the machine-made "+44 20 ...
        (missed call, 3 Mar 10:12)"), with the company and owner they chose; the time is
        kept for the lead statistics and the change goes on the contact's timeline."""
        contact = await self.get_contact(contact_id)
        if contact.lead is None:
            raise InvalidInput("this contact is not a lead")
        if contact.lead.status == "converted":
            raise InvalidInput("this lead is already converted")
        fields: dict[str, Any] = {}
        if name is not None:
            if not name.strip():
                raise InvalidInput("the customer needs a name")
            fields["name"] = name.strip()
        if company is not None:
            fields["company"] = company.strip()
        if not isinstance(owner_id, Unset):
            fields["owner_id"] = owner_id
        if fields:
            contact = await self.update_contact(contact_id, actor, by=by, **fields)
        before = contact.lead.status if contact.lead else "new"
        assert contact.lead is not None
        contact.lead.status = "converted"
        now = self.clock()
        contact.updated_at = now
        async with self.store.transaction() as tx:
            await tx.update_contact(contact)
            await tx.set_lead_converted_at(contact_id, now)
            await self.audit(
                actor,
                "lead.converted",
                f"contact:{contact_id}",
                {"from": before, "to": "converted", **{k: v for k, v in fields.items()}},
                tx,
            )
        return contact
