"""Contacts and their phone numbers: add, find by number or text, merge, hand over,
and erase (GDPR: the person's calls, notes, recordings and callbacks lose what names them).

A mixin of ``SqlStore`` (uses ``_use``, ``_use_read``, ``_tx``, ``_ids_in``, ``_ids_param``,
``_texts_in``, ``_texts_param``, ``_icontains``, and ``_count_task_calls`` of
``sql_figures``); ``_contacts`` and ``_contact_filters`` serve the lead lists and handover.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..models import Contact, Lead, PhoneNumber
from .params import ContactSearch, UserIds
from .sql_common import CONTACT_COLS, Row, children, columns, dumps, loads

if TYPE_CHECKING:
    from .sql import Conn


_CONTACT_NAMES = columns(CONTACT_COLS)


def _contact_row(row: Row, phones: list[PhoneNumber]) -> Contact:
    """The contact of a row of ``CONTACT_COLS``: the contact's fields by name, but the
    three ``lead_*`` columns, which make its ``Lead`` (none without a status)."""
    fields = {name: row[name] for name in _CONTACT_NAMES}
    status, source, created_at = (
        fields.pop(name) for name in ("lead_status", "lead_source", "lead_created_at")
    )
    lead = None
    if status is not None:
        lead = Lead(status=status, source=source or "manual", created_at=created_at or 0.0)
    fields["tags"] = list(loads(fields["tags"]) or [])
    fields["custom"] = dict(loads(fields["custom"]) or {})
    fields["erased"] = bool(fields["erased"])
    return Contact(**fields, phones=phones, lead=lead)


_PHONES = "SELECT contact_id, raw, e164, label FROM contact_phones"


def _phone(r: Row) -> PhoneNumber:
    return PhoneNumber(r["raw"], r["e164"], r["label"])


class ContactQueries:
    async def _phones(self, c: Conn, contact_ids: Sequence[int]) -> dict[int, list[PhoneNumber]]:
        return await children(self, c, contact_ids, _PHONES, "contact_id", "id", _phone)

    async def _contacts(self, c: Conn, rows: list[Row]) -> list[Contact]:
        phones = await self._phones(c, [r["id"] for r in rows])
        return [_contact_row(r, phones[r["id"]]) for r in rows]

    @staticmethod
    def _contact_args(contact: Contact) -> tuple[Any, ...]:
        lead = contact.lead
        return (
            contact.name,
            contact.company,
            contact.email,
            contact.owner_id,
            dumps(contact.tags),
            dumps(contact.custom),
            lead.status if lead else None,
            lead.source if lead else None,
            lead.created_at if lead else None,
            contact.created_at,
            contact.updated_at,
            contact.last_contact_at,
            contact.erased,
        )

    async def _insert_phones(self, c: Conn, contact_id: int, phones: list[PhoneNumber]) -> None:
        await c.executemany(
            "INSERT INTO contact_phones (contact_id, raw, e164, label) VALUES ($1, $2, $3, $4)",
            [(contact_id, p.raw, p.e164, p.label) for p in phones],
        )

    async def add_contact(self, contact: Contact) -> Contact:
        async with self._tx() as c:
            contact.id = await c.fetchval(
                "INSERT INTO contacts (name, company, email, owner_id, tags, custom, "
                "lead_status, lead_source, lead_created_at, created_at, updated_at, "
                "last_contact_at, erased) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
                *self._contact_args(contact),
            )
            assert contact.id is not None
            await self._insert_phones(c, contact.id, contact.phones)
        return contact

    async def bulk_load_contacts(self, contacts: Sequence[Contact]) -> int:
        """Fast path for imports and benchmarks: ids are assigned here, phones included."""
        async with self._tx() as c:
            first = int(await c.fetchval("SELECT COALESCE(MAX(id), 0) FROM contacts")) + 1
            for offset, contact in enumerate(contacts):
                contact.id = first + offset
            await c.executemany(
                "INSERT INTO contacts (id, name, company, email, owner_id, tags, custom, "
                "lead_status, lead_source, lead_created_at, created_at, updated_at, "
                "last_contact_at, erased) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                [(ct.id, *self._contact_args(ct)) for ct in contacts],
            )
            await c.executemany(
                "INSERT INTO contact_phones (contact_id, raw, e164, label) VALUES ($1, $2, $3, $4)",
                [(ct.id, p.raw, p.e164, p.label) for ct in contacts for p in ct.phones],
            )
        return len(contacts)

    async def update_contact(self, contact: Contact) -> None:
        """Writes every field; phones are replaced by ``contact.phones``."""
        async with self._tx() as c:
            await c.execute(
                "UPDATE contacts SET name = $2, company = $3, email = $4, owner_id = $5, "
                "tags = $6, custom = $7, lead_status = $8, lead_source = $9, "
                "lead_created_at = $10, created_at = $11, updated_at = $12, "
                # maintained by touch_contact: a stale object must not move it backwards
                "last_contact_at = CASE WHEN last_contact_at IS NULL OR last_contact_at < $13 "
                "THEN $13 ELSE last_contact_at END, erased = $14 WHERE id = $1",
                contact.id,
                *self._contact_args(contact),
            )
            await c.execute("DELETE FROM contact_phones WHERE contact_id = $1", contact.id)
            assert contact.id is not None
            await self._insert_phones(c, contact.id, contact.phones)

    async def get_contact(self, contact_id: int) -> Contact | None:
        async with self._use_read() as c:
            rows = await c.fetch(f"SELECT {CONTACT_COLS} FROM contacts WHERE id = $1", contact_id)
            found = await self._contacts(c, rows)
        return found[0] if found else None

    async def contacts_by_ids(self, contact_ids: Iterable[int]) -> dict[int, Contact]:
        """The contacts with these ids (erased ones included) by id, phones included;
        ids that do not exist are left out.  Two queries, whatever the number of ids."""
        ids = list(dict.fromkeys(contact_ids))
        if not ids:
            return {}
        async with self._use() as c:
            rows = await c.fetch(
                f"SELECT {CONTACT_COLS} FROM contacts WHERE id {self._ids_in(1)}",
                self._ids_param(ids),
            )
            found = await self._contacts(c, rows)
        return {ct.id: ct for ct in found if ct.id is not None}

    async def delete_contact(self, contact_id: int) -> None:
        async with self._use() as c:
            await c.execute("DELETE FROM contacts WHERE id = $1", contact_id)

    _BY_E164 = (
        "FROM contacts c WHERE c.id IN "
        "(SELECT p.contact_id FROM contact_phones p WHERE p.e164 = $1) AND NOT c.erased "
        "ORDER BY c.last_contact_at DESC NULLS LAST, c.id DESC"
    )

    async def contact_ids_by_e164(self, e164: str) -> list[int]:
        """The same order as ``contacts_by_e164``, ids only: the hot path of matching."""
        async with self._use_read() as c:
            rows = await c.fetch(f"SELECT c.id {self._BY_E164}", e164)
        return [r["id"] for r in rows]

    async def contacts_by_e164(self, e164: str) -> list[Contact]:
        """Live contacts having this number, most recently in contact first."""
        async with self._use() as c:
            rows = await c.fetch(f"SELECT {CONTACT_COLS} {self._BY_E164}", e164)
            return await self._contacts(c, rows)

    def _contact_filters(self, args: list[Any], search: ContactSearch) -> list[str]:
        """The search and visibility terms of the contact lists (alias ``c``), binding
        their values onto ``args``: shared by ``search_contacts`` and ``list_leads``."""
        text, e164, digits = search.text, search.e164, search.digits
        alternatives: list[str] = []
        if text:
            args.append("%" + text.lower().replace("%", "").replace("_", "") + "%")
            n = len(args)
            alternatives.append(self._icontains("c.name", n))
            alternatives.append(self._icontains("c.company", n))
            alternatives.append(self._icontains("c.email", n))
        if e164:
            args.append(e164)
            alternatives.append(
                f"c.id IN (SELECT contact_id FROM contact_phones WHERE e164 = ${len(args)})"
            )
        if digits:
            args.append("%" + digits + "%")
            alternatives.append(
                f"c.id IN (SELECT contact_id FROM contact_phones WHERE e164 LIKE ${len(args)})"
            )
        where = ["NOT c.erased"]
        if alternatives:
            where.append("(" + " OR ".join(alternatives) + ")")
        if search.owner_id is not None:
            args.append(search.owner_id)
            where.append(f"c.owner_id = ${len(args)}")
        if search.user_ids is not None:
            args.append(self._ids_param(search.user_ids))
            where.append(f"(c.owner_id IS NULL OR c.owner_id {self._ids_in(len(args))})")
        return where

    # Alike in shape to list_audit: optional filters, a page, a cursor (tests and
    # services name them as keywords).
    async def search_contacts(
        self,
        text: str | None = None,
        e164: str | None = None,
        digits: str | None = None,
        owner_id: int | None = None,
        limit: int = 50,
        after_id: int | None = None,
        user_ids: UserIds = None,
    ) -> list[Contact]:
        """Contacts whose name/company contains ``text``, or having number ``e164``,
        or a number containing ``digits``; ordered by id.  With ``user_ids``, only
        contacts owned by one of them or by nobody."""
        search = ContactSearch(text, e164, digits, owner_id, user_ids)
        args: list[Any] = [after_id or 0, limit]
        where = ["c.id > $1", *self._contact_filters(args, search)]
        async with self._use() as c:
            rows = await c.fetch(
                f"SELECT {CONTACT_COLS} FROM contacts c WHERE {' AND '.join(where)} "
                "ORDER BY c.id LIMIT $2",
                *args,
            )
            return await self._contacts(c, rows)

    async def list_contacts(
        self,
        after_id: int | None = None,
        limit: int = 500,
        owner_id: int | None = None,
        user_ids: UserIds = None,
    ) -> list[Contact]:
        return await self.search_contacts(
            owner_id=owner_id, limit=limit, after_id=after_id, user_ids=user_ids
        )

    async def count_contacts(self) -> int:
        async with self._use() as c:
            return int(await c.fetchval("SELECT COUNT(*) FROM contacts WHERE NOT erased"))

    async def touch_contact(self, contact_id: int, at: float) -> None:
        """Record that we were in contact at ``at`` (never moves backwards)."""
        async with self._use() as c:
            await c.execute(
                "UPDATE contacts SET last_contact_at = $2 WHERE id = $1 "
                "AND (last_contact_at IS NULL OR last_contact_at < $2)",
                contact_id,
                at,
            )

    async def merge_contacts(self, keep_id: int, drop_id: int, at: float) -> None:
        """Move calls, tasks and numbers of ``drop_id`` to ``keep_id``, then delete it;
        field-level merging of the contact itself is the caller's job."""
        async with self._tx() as c:
            await c.execute(
                "UPDATE calls SET contact_id = $1, updated_at = $3 WHERE contact_id = $2",
                keep_id,
                drop_id,
                at,
            )
            await c.execute(
                "UPDATE callback_tasks SET contact_id = $1 WHERE contact_id = $2", keep_id, drop_id
            )
            await c.execute(
                "UPDATE contact_phones SET contact_id = $1 WHERE contact_id = $2 AND "
                "(e164 IS NULL OR e164 NOT IN "
                "(SELECT e164 FROM contact_phones WHERE contact_id = $1 AND e164 IS NOT NULL))",
                keep_id,
                drop_id,
            )
            await c.execute("DELETE FROM contacts WHERE id = $1", drop_id)

    async def reassign_owner(self, from_user_id: int, to_user_id: int) -> tuple[int, int]:
        """Contacts and open callbacks of one rep to another: (contacts, callbacks)."""
        async with self._tx() as c:
            moved = await c.fetch(
                "UPDATE contacts SET owner_id = $2 WHERE owner_id = $1 RETURNING id",
                from_user_id,
                to_user_id,
            )
            # The tasks' calls change owner for the visibility rule: their figures move.
            task_ids = [
                r["id"]
                for r in await c.fetch(
                    "SELECT id FROM callback_tasks WHERE owner_id = $1 AND status = 'open'",
                    from_user_id,
                )
            ]
            await self._count_task_calls(c, task_ids, -1)
            tasks = await c.fetch(
                "UPDATE callback_tasks SET owner_id = $2 WHERE owner_id = $1 AND status = 'open' "
                "RETURNING id",
                from_user_id,
                to_user_id,
            )
            await self._count_task_calls(c, task_ids, 1)
        return len(moved), len(tasks)

    async def erase_contact(self, contact_id: int, at: float) -> list[tuple[int, str]]:
        """Remove personal data, keep anonymous call rows; returns the (id, path) of the
        recordings that must now be deleted from disk."""
        async with self._tx() as c:
            numbers = [
                r["e164"]
                for r in await c.fetch(
                    "SELECT DISTINCT e164 FROM contact_phones "
                    "WHERE contact_id = $1 AND e164 IS NOT NULL",
                    contact_id,
                )
            ]
            # The person's calls: those linked to them, and unlinked calls from their numbers.
            call_ids = {
                r["id"]
                for r in await c.fetch("SELECT id FROM calls WHERE contact_id = $1", contact_id)
            }
            for number in numbers:
                rows = await c.fetch(
                    "SELECT id FROM calls WHERE remote_e164 = $1 AND contact_id IS NULL", number
                )
                call_ids.update(r["id"] for r in rows)
            ids = self._ids_param(sorted(call_ids))
            recordings = [
                (r["id"], r["path"])
                for r in await c.fetch(
                    f"SELECT id, path FROM call_recordings WHERE call_id {self._ids_in(1)} "
                    "ORDER BY id",
                    ids,
                )
            ]
            await c.execute(f"DELETE FROM call_recordings WHERE call_id {self._ids_in(1)}", ids)
            await c.execute(
                "UPDATE notes SET topic = '', result = '', comment = '' "
                f"WHERE call_id {self._ids_in(1)}",
                ids,
            )
            await c.execute(
                "UPDATE calls SET caller = NULL, caller_raw = NULL, caller_name = NULL, "
                "remote_e164 = NULL, recordings = '[]', contact_id = NULL, "
                "match_reason = 'erased', updated_at = $2 "
                f"WHERE direction = 'inbound' AND id {self._ids_in(1)}",
                ids,
                at,
            )
            await c.execute(
                "UPDATE calls SET callee = NULL, callee_e164 = NULL, remote_e164 = NULL, "
                "recordings = '[]', contact_id = NULL, match_reason = 'erased', updated_at = $2 "
                f"WHERE direction <> 'inbound' AND id {self._ids_in(1)}",
                ids,
                at,
            )
            # what reps wrote about their attempts to ring the person back
            await c.execute(
                "UPDATE callback_attempts SET comment = '' WHERE task_id IN ("
                "SELECT id FROM callback_tasks WHERE contact_id = $1 "
                f"OR number_e164 {self._texts_in(2)})",
                contact_id,
                self._texts_param(numbers),
            )
            await c.execute(
                "UPDATE callback_tasks SET number_e164 = NULL, contact_id = NULL, "
                "status = 'closed', closed_at = COALESCE(closed_at, $2) "
                "WHERE contact_id = $1",
                contact_id,
                at,
            )
            for number in numbers:
                await c.execute(
                    "UPDATE callback_tasks SET number_e164 = NULL, status = 'closed', "
                    "closed_at = COALESCE(closed_at, $2) WHERE number_e164 = $1",
                    number,
                    at,
                )
            await c.execute("DELETE FROM contact_phones WHERE contact_id = $1", contact_id)
            await c.execute(
                "UPDATE contacts SET name = '', company = '', email = '', tags = '[]', "
                "custom = '{}', erased = $2, updated_at = $3 WHERE id = $1",
                contact_id,
                True,
                at,
            )
        return recordings
