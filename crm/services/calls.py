"""Calls as people read them: one call, the filtered list, the managers' missed-calls
audit (keyset pages), and a call moved to the right contact."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from ..access import Scope
from ..errors import InvalidInput, NotFound
from ..models import MISSED_OUTCOMES, Call, CallFilter, MissedCallRow, Page
from ..phones import FRAGMENT_MIN_DIGITS, digits_only, normalize
from ..store import CallCursor
from .core import ServiceCore

T = TypeVar("T")


def encode_cursor(cursor: CallCursor) -> str:
    return f"{cursor[0]!r}~{cursor[1]}"


def decode_cursor(text: str | None) -> CallCursor | None:
    if not text:
        return None
    try:
        started, ident = text.split("~", 1)
        return float(started), int(ident)
    except ValueError as exc:
        raise InvalidInput("bad page cursor") from exc


class CallServices(ServiceCore):
    async def get_call(self, call_id: int) -> Call:
        call = await self.store.get_call(call_id)
        if call is None:
            raise NotFound(f"call {call_id}")
        return call

    # Alike in shape to list_contacts: a filter, a page and a scope; not one query.
    async def list_calls(
        self,
        flt: CallFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
        scope: Scope | None = None,
    ) -> Page[Call]:
        flt = flt or CallFilter()
        if flt.number_digits is not None:
            digits = digits_only(flt.number_digits)
            if len(digits) < FRAGMENT_MIN_DIGITS - 1:
                raise InvalidInput(f"type at least {FRAGMENT_MIN_DIGITS} digits of the number")
            flt = replace(flt, number_digits=digits)
        if flt.number_e164 and not flt.number_e164.startswith("+"):
            e164 = normalize(flt.number_e164, self.policy.default_region)
            if e164 is None:
                raise InvalidInput(f"not a phone number: {flt.number_e164!r}")
            flt = replace(flt, number_e164=e164)
        limit = max(1, min(limit, 500))
        calls = await self.store.list_calls(
            flt, limit + 1, decode_cursor(cursor), scope.ids() if scope else None
        )
        return _page(calls, limit, lambda c: (c.started_at, c.id or 0))

    # Same filters as Store.missed_calls on purpose: the service passes them through.
    async def missed_calls_audit(
        self,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
        scope: Scope | None = None,
        *,
        rep_id: int | None = None,
        line: str | None = None,
        outcome: str | None = None,
        callback: str | None = None,
    ) -> Page[MissedCallRow]:
        """The audit's rows, every filter applied by the store (see ``Store.missed_calls``:
        ``rep_id`` rung, answered, owns or closed the callback; ``line`` the DID;
        ``outcome``; ``callback`` ``open``/``closed``/``none``)."""
        if outcome and outcome not in MISSED_OUTCOMES:
            raise InvalidInput(f"outcome must be one of {', '.join(sorted(MISSED_OUTCOMES))}")
        if callback and callback not in ("open", "closed", "none"):
            raise InvalidInput("callback status must be one of open, closed, none")
        limit = max(1, min(limit, 500))
        rows = await self.store.missed_calls(
            since,
            until,
            limit + 1,
            decode_cursor(cursor),
            scope.ids() if scope else None,
            rep_id=rep_id,
            line=line or None,
            outcome=outcome or None,
            callback=callback or None,
        )
        return _page(rows, limit, lambda r: (r.call.started_at, r.call.id or 0))

    async def relink_call(self, call_id: int, contact_id: int, actor: str) -> Call:
        """A user picks the right contact for a call (several contacts share a number,
        or the match was wrong).  Stored with match reason ``manual``, which later
        re-ingests of the same call keep."""
        async with self.store.transaction() as tx:
            call = await tx.get_call(call_id)
            if call is None:
                raise NotFound(f"call {call_id}")
            if call.match_reason == "erased":
                raise InvalidInput("this call's personal data was erased")
            contact = await tx.get_contact(contact_id)
            if contact is None or contact.erased:
                raise NotFound(f"contact {contact_id}")
            previous = call.contact_id
            await tx.set_call_contact(call_id, contact_id, "manual", self.clock())
            await tx.touch_contact(contact_id, call.started_at)
            await self.audit(
                actor,
                "call.relinked",
                f"call:{call_id}",
                {"from": previous, "to": contact_id},
                tx,
            )
            updated = await tx.get_call(call_id)
        assert updated is not None
        return updated


def _page(items: list[T], limit: int, key: Callable[[T], CallCursor]) -> Page[T]:
    if len(items) > limit:
        items = items[:limit]
        return Page(items, encode_cursor(key(items[-1])))
    return Page(items, None)
