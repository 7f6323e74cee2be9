"""The managers' missed-calls audit: every unanswered inbound call, who was rung, how
long it rang, what became of it, and who called back how fast; with the period's figures
on top and a CSV export of exactly what the filters show.

Managers see their team (``scope_for``), admins everyone, reps nothing (403).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from aiohttp import web

from crm.errors import InvalidInput
from crm.models import Contact, MissedCallRow, Page, User
from crm.services import Scope

from ..app import current_user, roles, runtime
from ..i18n import N_, _
from ..labels import label
from ..refusals import refusal
from ..render import format_time, piece, render
from ..runtime import Runtime
from .rep_common import contacts_by_id
from .reports import Period, period_csv, period_of

routes = web.RouteTableDef()
OUTCOMES = ("missed", "abandoned", "busy", "no_answer")
CALLBACK_STATES = ("open", "closed", "none")
PAGE_SIZE = 50
BATCH = 500
EXPORT_MAX = 100_000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class MissedFilter:
    """The audit's filters beyond the period; empty means "any".  The store applies them
    (``CrmService.missed_calls_audit``): rep = rung, answered, owns or closed the
    callback; line = the DID; callback = ``open``, ``closed`` or ``none`` (no task)."""

    rep_id: int | None = None
    line: str = ""
    outcome: str = ""
    callback: str = ""

    def query(self) -> dict[str, str]:
        out = {"rep": str(self.rep_id) if self.rep_id is not None else ""}
        out.update(line=self.line, outcome=self.outcome, callback=self.callback)
        return {k: v for k, v in out.items() if v}


def filter_of(request: web.Request) -> MissedFilter:
    q = request.query
    rep = q.get("rep", "").strip()
    try:
        rep_id = int(rep) if rep else None
    except ValueError:
        raise InvalidInput(_("rep: choose one from the list")) from None
    outcome = q.get("outcome", "").strip()
    if outcome and outcome not in OUTCOMES:
        raise InvalidInput(_("outcome must be one of %(values)s", values=", ".join(OUTCOMES)))
    callback = q.get("callback", "").strip()
    if callback and callback not in CALLBACK_STATES:
        raise InvalidInput(
            _("callback status must be one of %(values)s", values=", ".join(CALLBACK_STATES))
        )
    return MissedFilter(rep_id, q.get("line", "").strip()[:40], outcome, callback)


async def fetch(
    rt: Runtime,
    period: Period,
    flt: MissedFilter,
    scope: Scope,
    limit: int,
    cursor: str | None,
) -> Page[MissedCallRow]:
    """A keyset page of up to ``limit`` rows passing ``flt``, read from the store in
    pieces of at most ``BATCH`` (the service's page limit); every filter runs in SQL, so
    each piece is full and the cursor is the store's own."""
    out: list[MissedCallRow] = []
    while True:
        page = await rt.service.missed_calls_audit(
            period.since,
            period.until,
            min(BATCH, limit - len(out)),
            cursor,
            scope,
            rep_id=flt.rep_id,
            line=flt.line or None,
            outcome=flt.outcome or None,
            callback=flt.callback or None,
        )
        out.extend(page.items)
        cursor = page.next_cursor
        if cursor is None or len(out) >= limit:
            return Page(out, cursor)


@dataclass(frozen=True, slots=True)
class MissedView:
    """One audit row as the page and the CSV show it."""

    row: MissedCallRow
    contact: Contact | None
    rung: list[str]
    owner: str
    called_back_by: str
    within_sla: bool | None


class AuditRow(NamedTuple):
    """What one row of the audit's table shows, and all it reads (``_missed_row.html``):
    the key its rendering is kept under (``render.piece``)."""

    call_id: int | None
    started_at: float
    contact_id: int | None
    contact_name: str | None
    caller: str | None
    did: str | None
    rung: tuple[str, ...]
    ring_seconds: float
    outcome: str
    task_status: str | None
    owner: str
    called_back_by: str
    time_to_callback: float | None
    within_sla: bool | None

    @classmethod
    def of(cls, v: MissedView) -> AuditRow:
        c, contact = v.row.call, v.contact
        return cls(
            c.id, c.started_at, contact.id if contact else None, contact.name if contact else None,
            c.caller, c.did, tuple(v.rung), c.ring_seconds, c.outcome, v.row.task_status,
            v.owner, v.called_back_by, v.row.time_to_callback, v.within_sla,
        )  # fmt: skip


class People:
    """Names for user ids and extensions, read once per request."""

    def __init__(self, users: list[User]) -> None:
        self.by_id = {u.id: u for u in users}
        self.by_ext = {e: u for u in users for e in u.extensions}

    def name(self, user_id: int | None) -> str:
        user = self.by_id.get(user_id) if user_id is not None else None
        return user.display_name if user else ""

    def rung(self, ext: str) -> str:
        user = self.by_ext.get(ext)
        return f"{user.display_name} ({ext})" if user else ext


async def _views(rt: Runtime, rows: list[MissedCallRow], people: People) -> list[MissedView]:
    contacts = await contacts_by_id(rt, (r.call.contact_id for r in rows))
    sla = rt.service.policy.callback_sla_seconds
    out = []
    for r in rows:
        cid = r.call.contact_id
        ttc = r.time_to_callback
        out.append(
            MissedView(
                row=r,
                contact=contacts.get(cid) if cid is not None else None,
                rung=[
                    people.rung(e) + (" " + _("(declined)") if e in r.call.declined else "")
                    for e in r.call.rang
                ],
                owner=people.name(r.owner_id),
                called_back_by=people.name(r.closed_by_user_id),
                within_sla=None if ttc is None else ttc <= sla,
            )
        )
    return out


def _reps_in_scope(people: People, scope: Scope) -> list[User]:
    users = [u for u in people.by_id.values() if scope.covers(u.id)]
    return sorted(users, key=lambda u: (u.role != "rep", u.display_name.lower()))


async def _context(
    request: web.Request,
) -> tuple[Runtime, User, Period, MissedFilter, Scope, People, list[str]]:
    rt = runtime(request)
    user = current_user(request)
    period, error = period_of(request)
    errors = [error] if error else []
    try:
        flt = filter_of(request)
    except InvalidInput as exc:
        flt, errors = MissedFilter(), [*errors, refusal(exc)]
    scope = await rt.service.scope_for(user)
    people = People(await rt.service.list_users(include_inactive=True))
    return rt, user, period, flt, scope, people, errors


@routes.get("/missed")
@roles("manager", "admin")
async def missed(request: web.Request) -> web.StreamResponse:
    rt, _user, period, flt, scope, people, errors = await _context(request)
    summary = await rt.service.missed_summary(period.since, period.until, scope)
    cursor = request.query.get("after") or None
    try:
        page = await fetch(rt, period, flt, scope, PAGE_SIZE, cursor)
    except InvalidInput as exc:
        errors.append(refusal(exc))
        page = await fetch(rt, period, flt, scope, PAGE_SIZE, None)
    query = {"from": period.first.isoformat(), "to": period.last.isoformat(), **flt.query()}
    lines = sorted({r.did for r in summary.by_line if r.did})
    if flt.line and flt.line not in lines:
        lines.append(flt.line)
    ctx: dict[str, Any] = {
        "period": period,
        "flt": flt,
        "errors": errors,
        "summary": summary,
        "sla_minutes": rt.service.policy.callback_sla_minutes,
        "rows": [
            piece(request, "_missed_row.html", "row", AuditRow.of(v))
            for v in await _views(rt, page.items, people)
        ],
        "next_cursor": page.next_cursor,
        "first_page": cursor is None,
        "query": query,
        "reps": _reps_in_scope(people, scope),
        "lines": lines,
        "outcomes": OUTCOMES,
        "callback_states": CALLBACK_STATES,
    }
    return render(request, "missed.html", ctx)


def neutralise(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP: leading ')."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


CSV_HEADER = (
    # TRANSLATORS: CSV column names: short, lower case, no spaces, like the English ones
    N_("started"),
    N_("caller"),
    N_("contact"),
    N_("line"),
    N_("rang"),
    N_("ring_seconds"),
    N_("outcome"),
    N_("callback_status"),
    N_("callback_owner"),
    N_("called_back_by"),
    N_("time_to_callback_seconds"),
    N_("within_sla"),
    N_("started_local"),
)
"""Column names in the reader's language. ``started`` is ISO 8601 UTC for machines;
``started_local`` the same moment in the reader's time zone, as the page shows it."""


def csv_header() -> list[str]:
    return [_(h) for h in CSV_HEADER]


def iso_utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


CALLBACK_WORDS = {"open": N_("open"), "closed": N_("called back"), "none": N_("no task")}


def csv_rows(views: list[MissedView], when: Callable[[float], str]) -> list[list[str]]:
    out = []
    for v in views:
        c = v.row.call
        ttc = v.row.time_to_callback
        cells = [
            iso_utc(c.started_at),
            c.caller or _("withheld"),
            v.contact.name if v.contact else "",
            c.did or "",
            "; ".join(v.rung),
            f"{c.ring_seconds:.0f}",
            label(c.outcome),
            _(CALLBACK_WORDS.get(v.row.task_status or "none", v.row.task_status or "?")),
            v.owner,
            v.called_back_by,
            "" if ttc is None else f"{ttc:.0f}",
            "" if v.within_sla is None else (_("yes") if v.within_sla else _("no")),
            when(c.started_at),
        ]
        out.append([neutralise(x) for x in cells])
    return out


@routes.get("/missed.csv")
@roles("manager", "admin")
async def missed_csv(request: web.Request) -> web.StreamResponse:
    rt, _user, period, flt, scope, people, errors = await _context(request)
    if errors:
        raise web.HTTPBadRequest(text="; ".join(errors))
    page = await fetch(rt, period, flt, scope, EXPORT_MAX, None)
    views = await _views(rt, page.items, people)
    rows = [csv_header(), *csv_rows(views, lambda t: format_time(t, "datetime_s"))]
    return await period_csv(
        request, rows, period, stem="missed-calls", action="missed_calls.exported",
        subject="missed calls", before={"rows": len(views)}, after=asdict(flt),
    )  # fmt: skip


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
