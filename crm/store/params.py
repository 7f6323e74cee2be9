"""The small types the store's methods take, apart from ``interface`` so the query
mixins (which ``Store`` is built from) can name them without importing it."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

UserIds = Sequence[int] | None
"""A visibility filter (``Scope.ids()``): None means no restriction."""

CallCursor = tuple[float, int]
"""(started_at, id) of the last call on the previous page, newest first."""


class AnyLink(enum.Enum):
    """A linkedid lookup that does not care which PBX link wrote the call."""

    ANY = "any"


ANY_LINK = AnyLink.ANY


@dataclass(frozen=True, slots=True)
class ContactSearch:
    """What the contact lists (``search_contacts``, ``list_leads``) are narrowed by,
    each term optional: a name, company or e-mail containing ``text``, or the number
    ``e164``, or a number containing ``digits``; the owner; and visibility (owned by one
    of ``user_ids``, or by nobody)."""

    text: str | None = None
    e164: str | None = None
    digits: str | None = None
    owner_id: int | None = None
    user_ids: UserIds = None
