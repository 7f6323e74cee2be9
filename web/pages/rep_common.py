"""What the rep-facing pages (home, calls, contacts, leads) share: who is asking and what
they may see, the display time zone, keyset-pagination links that keep the filters, and
batched look-ups of the names a list shows.

Objects a user may not see are answered with 404 (never 403), so a page never tells a
rep that another rep's call or contact exists.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from multidict import MultiDict

from crm.access import Scope, can_see_contact
from crm.errors import InvalidInput
from crm.models import Contact, User

from ..app import current_user, runtime
from ..formatting import tzinfo
from ..i18n import N_, _
from ..runtime import Runtime

TRAIL_MAX = 30
"""How many earlier pages a "Newer" link can walk back through."""


@dataclass
class RepView:
    """The per-request view: the runtime, the user, their scope, every user by id."""

    rt: Runtime
    user: User
    scope: Scope
    users: dict[int, User]
    tz: ZoneInfo
    _by_ext: dict[str, User] = field(default_factory=dict)

    @property
    def user_id(self) -> int:
        assert self.user.id is not None
        return self.user.id

    @property
    def supervisor(self) -> bool:
        return self.user.role in ("manager", "admin")

    def can_open(self, contact: Contact | None) -> bool:
        return contact is not None and not contact.erased and can_see_contact(self.scope, contact)

    def by_ext(self, ext: str | None) -> User | None:
        if not self._by_ext:
            self._by_ext = {e: u for u in self.users.values() for e in u.extensions}
        return self._by_ext.get(ext or "")

    def visible_users(self) -> list[User]:
        """The users whose work this user sees (a rep: themself), by name."""
        users = [u for u in self.users.values() if self.scope.covers(u.id)]
        return sorted(users, key=lambda u: u.display_name.lower())

    def owner_choices(self) -> list[User]:
        """Who this user may make a contact's owner (besides "shared")."""
        if self.user.role == "rep":
            return [self.user]
        return [u for u in self.visible_users() if u.active]

    def now(self) -> float:
        return self.rt.clock()

    def today_start(self) -> float:
        local = dt.datetime.fromtimestamp(self.now(), self.tz)
        return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def display_tz(rt: Runtime) -> ZoneInfo:
    name = str(rt.settings.get("server", {}).get("display_tz", "UTC"))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


async def rep_view(request: web.Request) -> RepView:
    rt = runtime(request)
    user = current_user(request)
    scope = await rt.service.scope_for(user)
    users = {u.id: u for u in await rt.service.list_users(include_inactive=True) if u.id}
    tz = tzinfo()  # the reader's own time zone (web.language), else the install's
    return RepView(rt, user, scope, users, tz if isinstance(tz, ZoneInfo) else display_tz(rt))


NOT_FOUND = {
    "call": N_("No such call, or it is not yours to see."),
    "contact": N_("No such contact, or it is not yours to see."),
    "page": N_("No such page, or it is not yours to see."),
}


def not_found(what: str = "page") -> web.HTTPNotFound:
    return web.HTTPNotFound(text=_(NOT_FOUND.get(what, NOT_FOUND["page"])))


def int_param(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise InvalidInput(f"not a number: {value!r}") from exc


def parse_day(value: str | None, tz: dt.tzinfo, label: str) -> float | None:
    """``YYYY-MM-DD`` as local midnight (epoch seconds)."""
    if not value or not value.strip():
        return None
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidInput(_("%(field)s: use a date like 2026-11-22", field=label)) from exc
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def next_day(value: float, tz: dt.tzinfo) -> float:
    local = dt.datetime.fromtimestamp(value, tz).date() + dt.timedelta(days=1)
    return dt.datetime(local.year, local.month, local.day, tzinfo=tz).timestamp()


def url_with(path: str, params: Mapping[str, Any]) -> str:
    """``path`` with the non-empty ``params`` as its query string."""
    from urllib.parse import urlencode

    items = [(k, str(v)) for k, v in params.items() if v not in (None, "")]
    return f"{path}?{urlencode(items)}" if items else path


@dataclass(frozen=True)
class Pager:
    """Keyset links: ``next`` (older items), ``newer`` (the page before), ``newest``."""

    next: str | None
    newer: str | None
    newest: str | None


def pager(request: web.Request, next_cursor: str | None, keep: Iterable[str]) -> Pager:
    """Links that keep the filters ``keep``.  The cursors of the pages already seen travel
    in ``trail`` (at most ``TRAIL_MAX``), so "Newer" works without JavaScript or state."""
    q = request.query
    base = {k: q.get(k, "") for k in keep}
    cursor = q.get("cursor", "")
    trail = [t for t in q.get("trail", "").split(",") if t][-TRAIL_MAX:]
    nxt = None
    if next_cursor:
        new_trail = [*trail, cursor or "_"][-TRAIL_MAX:]
        nxt = url_with(request.path, {**base, "cursor": next_cursor, "trail": ",".join(new_trail)})
    newer = newest = None
    if cursor:
        newest = url_with(request.path, base)
        if trail:
            back = trail[-1]
            newer = url_with(
                request.path,
                {**base, "cursor": "" if back == "_" else back, "trail": ",".join(trail[:-1])},
            )
    return Pager(nxt, newer, newest)


async def contacts_by_id(rt: Runtime, ids: Iterable[int | None]) -> dict[int, Contact]:
    """The contacts a page's rows name, erased ones left out (shown as none): one query
    for them and one for their phones, not two per row."""
    found = await rt.store.contacts_by_ids({i for i in ids if i is not None})
    return {cid: contact for cid, contact in found.items() if not contact.erased}


def form_str(form: MultiDict[Any] | Mapping[str, Any], name: str, limit: int = 200) -> str:
    value = form.get(name, "")
    return (value if isinstance(value, str) else "").strip()[:limit]


def parse_local_time(value: str | None, tz: dt.tzinfo, label: str) -> float | None:
    """A ``datetime-local`` field (``YYYY-MM-DDTHH:MM``, in the display time zone) as
    epoch seconds; empty is None."""
    if not value or not value.strip():
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidInput(
            _("%(label)s: use a time like %(example)s", label=label, example="2026-11-22T14:30")
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.timestamp()


def local_input(epoch: float, tz: dt.tzinfo) -> str:
    """Epoch seconds as a ``datetime-local`` value in the display time zone."""
    return dt.datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%dT%H:%M")
