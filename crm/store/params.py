"""The small types the store's methods take, apart from ``interface`` so the query
mixins (which ``Store`` is built from) can name them without importing it."""

from __future__ import annotations

import enum
from collections.abc import Sequence

UserIds = Sequence[int] | None
"""A visibility filter (``Scope.ids()``): None means no restriction."""

CallCursor = tuple[float, int]
"""(started_at, id) of the last call on the previous page, newest first."""


class AnyLink(enum.Enum):
    """A linkedid lookup that does not care which PBX link wrote the call."""

    ANY = "any"


ANY_LINK = AnyLink.ANY
