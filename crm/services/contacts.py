"""Contacts: create, read, change (held to the ownership rule), search by name or any
form of a number, list, merge two cards, delete, erase (GDPR), and a contact's history."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from ..access import Scope, merge_refusal, owner_change_refusal
from ..errors import Forbidden, InvalidInput, NotFound
from ..limits import check_contact_fields, check_custom
from ..models import (
    LEAD_STATUSES,
    AuditEntry,
    CallFilter,
    Contact,
    Lead,
    LeadStatus,
    PhoneNumber,
    TimelineItem,
    User,
)
from ..phones import normalize, number_fragment
from .teams import TeamServices

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ContactServices(TeamServices):
    def _check_email(self, email: str) -> str:
        email = (email or "").strip()
        if email and not _EMAIL.match(email):
            raise InvalidInput(f"not an e-mail address: {email!r}")
        return email

    def _phones(self, phones: Iterable[str | PhoneNumber]) -> list[PhoneNumber]:
        """Typed numbers normalised, each number once (the first label wins)."""
        return _dedupe([self.phone(p) for p in phones])

    @staticmethod
    def _check_lead_status(status: str) -> None:
        if status not in LEAD_STATUSES:
            raise InvalidInput(f"lead status must be one of {', '.join(LEAD_STATUSES)}")

    async def create_contact(
        self,
        name: str,
        company: str = "",
        email: str = "",
        phones: Sequence[str | PhoneNumber] = (),
        owner_id: int | None = None,
        tags: Iterable[str] = (),
        custom: dict[str, Any] | None = None,
        lead_status: LeadStatus | None = None,
        actor: str = "system",
    ) -> Contact:
        name = (name or "").strip()
        check_contact_fields(name, company, email, tags, phones, custom)
        if not name and not phones:
            raise InvalidInput("a contact needs a name or a number")
        if lead_status is not None:
            self._check_lead_status(lead_status)
        now = self.clock()
        contact = Contact(
            id=None,
            name=name,
            company=(company or "").strip(),
            email=self._check_email(email),
            owner_id=owner_id,
            tags=_tags(tags),
            custom=dict(custom or {}),
            phones=self._phones(phones),
            lead=Lead(lead_status, "manual", now) if lead_status else None,
            created_at=now,
            updated_at=now,
        )
        return await self.store.add_contact(contact)

    async def get_contact(self, contact_id: int) -> Contact:
        contact = await self.store.get_contact(contact_id)
        if contact is None or contact.erased:
            raise NotFound(f"contact {contact_id}")
        return contact

    async def update_contact(
        self, contact_id: int, actor: str = "system", by: User | None = None, **fields: Any
    ) -> Contact:
        """Change any of name, company, email, phones, owner_id, tags, custom.  ``by``, the
        user making the change, is held to the ownership rule (``owner_change_refusal``):
        Forbidden when they may not give the contact that owner."""
        allowed = {"name", "company", "email", "phones", "owner_id", "tags", "custom"}
        unknown = set(fields) - allowed
        if unknown:
            raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}")
        check_contact_fields(fields.get("name"), fields.get("company"), fields.get("email"),
                             fields.get("tags"), fields.get("phones"))  # fmt: skip
        if "custom" in fields:
            fields["custom"] = dict(check_custom(fields["custom"]))
        contact = await self.get_contact(contact_id)
        if by is not None and "owner_id" in fields:
            why = owner_change_refusal(by, await self.scope_for(by), contact.owner_id,
                                       fields["owner_id"])  # fmt: skip
            if why:
                raise Forbidden(why)
        if "email" in fields:
            fields["email"] = self._check_email(fields["email"])
        if "phones" in fields:
            fields["phones"] = self._phones(fields["phones"])
        if "tags" in fields:
            fields["tags"] = _tags(fields["tags"])
        contact = replace(contact, **fields, updated_at=self.clock())
        await self.store.update_contact(contact)
        return contact

    async def delete_contact(self, contact_id: int, actor: str) -> None:
        async with self.store.transaction() as tx:
            await tx.delete_contact(contact_id)
            await self.audit(actor, "contact.deleted", f"contact:{contact_id}", None, tx)

    async def search_contacts(
        self,
        query: str,
        limit: int = 50,
        after_id: int | None = None,
        owner_id: int | None = None,
        scope: Scope | None = None,
    ) -> list[Contact]:
        """By name, company or e-mail (substring, any case) or by any number in any
        format (+1 415..., (415) 555-..., 00 44 ..., or a run of its digits); within
        ``scope`` (owned by someone in it, or by nobody)."""
        text, e164, digits = self._search_terms(query)
        return await self.store.search_contacts(
            text=text,
            e164=e164,
            digits=digits,
            owner_id=owner_id,
            limit=limit,
            after_id=after_id,
            user_ids=scope.ids() if scope else None,
        )

    async def list_contacts(
        self,
        after_id: int | None = None,
        limit: int = 50,
        owner_id: int | None = None,
        scope: Scope | None = None,
    ) -> list[Contact]:
        """Contacts by id (keyset: pass the last id as ``after_id``), within ``scope``."""
        limit = max(1, min(limit, 1000))
        return await self.store.list_contacts(
            after_id, limit, owner_id, scope.ids() if scope else None
        )

    def _search_terms(self, query: str) -> tuple[str | None, str | None, str | None]:
        """(text, e164, digits) of a search box, read as ``search_contacts`` reads it."""
        query = (query or "").strip()
        e164 = normalize(query, self.policy.default_region) if query else None
        return query or None, e164, number_fragment(query)

    async def merge_contacts(self, keep_id: int, drop_id: int, actor: str,
                             by: User | None = None) -> Contact:  # fmt: skip
        """``drop_id``'s calls, callbacks and numbers move to ``keep_id``; blank fields of
        the kept contact are filled from the other; tags are united.  ``by`` is held to
        ``merge_refusal`` (a rep merges only cards with the same owner)."""
        if keep_id == drop_id:
            raise InvalidInput("cannot merge a contact into itself")
        async with self.store.transaction() as tx:
            keep, drop = await tx.get_contact(keep_id), await tx.get_contact(drop_id)
            if keep is None or drop is None or keep.erased or drop.erased:
                raise NotFound("contact to merge")
            why = merge_refusal(by, keep, drop) if by is not None else None
            if why:
                raise Forbidden(why)
            keep.name = keep.name or drop.name
            keep.company = keep.company or drop.company
            keep.email = keep.email or drop.email
            keep.owner_id = keep.owner_id if keep.owner_id is not None else drop.owner_id
            keep.tags = sorted(set(keep.tags) | set(drop.tags))
            keep.custom = {**drop.custom, **keep.custom}
            if keep.lead is not None and drop.lead is None:
                keep.lead = None  # one side is already a customer: so is the person
            times = [t for t in (keep.last_contact_at, drop.last_contact_at) if t is not None]
            keep.last_contact_at = max(times) if times else None
            keep.updated_at = self.clock()
            await tx.update_contact(keep)
            await tx.merge_contacts(keep_id, drop_id, keep.updated_at)
            await self.audit(actor, "contact.merged", f"contact:{keep_id}", {"merged": drop_id}, tx)
            merged = await tx.get_contact(keep_id)
        assert merged is not None
        return merged

    async def erase_contact(self, contact_id: int, actor: str) -> list[tuple[int, str]]:
        """GDPR erasure: personal data goes, anonymous call statistics stay.  Returns
        the (recording id, path) pairs whose files the recordings module must delete."""
        async with self.store.transaction() as tx:
            contact = await tx.get_contact(contact_id)
            if contact is None or contact.erased:
                raise NotFound(f"contact {contact_id}")
            recordings = await tx.erase_contact(contact_id, self.clock())
            await self.audit(
                actor,
                "contact.erased",
                f"contact:{contact_id}",
                {"recordings": len(recordings)},
                tx,
            )
        return recordings

    async def contact_timeline(self, contact_id: int, limit: int = 200) -> list[TimelineItem]:
        """A contact's history for its page: calls, notes, callbacks and lead status
        changes, newest first."""
        await self.get_contact(contact_id)
        calls = await self.store.list_calls(CallFilter(contact_id=contact_id), limit)
        notes = await self.store.notes_for_contact(contact_id, limit)
        tasks = await self.store.callbacks_for_contact(contact_id, limit)
        history = await self.lead_history(contact_id, limit)
        items = [
            *(TimelineItem("call", c.started_at, c) for c in calls),
            *(TimelineItem("note", n.created_at, n) for n in notes),
            *(TimelineItem("callback", t.opened_at, t) for t in tasks),
            *(TimelineItem("lead", e.at, e) for e in history),
        ]
        items.sort(key=lambda i: (i.at, i.item.id or 0), reverse=True)
        return items[:limit]

    async def lead_history(self, contact_id: int, limit: int = 100) -> list[AuditEntry]:
        """The lead's status changes (who, when, from, to), newest first."""
        return await self.store.audit_for_target(f"contact:{contact_id}", "lead.", limit)


def _dedupe(phones: list[PhoneNumber]) -> list[PhoneNumber]:
    seen: set[str] = set()
    out: list[PhoneNumber] = []
    for p in phones:
        key = p.e164 or p.raw
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _tags(tags: Iterable[str]) -> list[str]:
    return sorted({t.strip() for t in tags if t.strip()})
