"""Admin: users and roles, teams, and which extension rings whom.

Every change goes through a CRM service that leaves an audit entry.  An admin cannot
demote or deactivate themself (the last way back in would be the command line).
"""

from __future__ import annotations

import re

from aiohttp import web

from crm.errors import InvalidInput, NotFound
from crm.models import ROLES, CallFilter, User

from .. import sessions
from ..app import current_user, runtime
from ..i18n import N_, _, gettext_or_none
from ..refusals import refusal
from ..render import render
from ..runtime import Runtime
from .admin_routes import AdminRoutes

routes = AdminRoutes()
SCAN_CALLS = 1000
"""Recent calls read to offer the extensions the PBX uses."""
NOTICES = {
    "created": N_("User created."),
    "role": N_("Role changed."),
    "team": N_("Team changed."),
    "teams": N_("Teams changed for the chosen users."),
    "team-created": N_("Team created."),
    "password": N_("Password reset; the user's other sessions have ended."),
    "deactivated": N_("User deactivated: they can no longer log in."),
    "reactivated": N_("User reactivated."),
    "extensions": N_("Extensions saved."),
    "sessions": N_("Logged out everywhere: every session of the user has ended."),
}


async def _form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: str(v) for k, v in form.items() if k != "_csrf" and isinstance(v, str)}


def _user_id(request: web.Request) -> int:
    try:
        return int(request.match_info["user_id"])
    except ValueError:
        raise web.HTTPNotFound() from None


def _exts(text: str) -> list[str]:
    return [e for e in re.split(r"[\s,;]+", text) if e]


async def seen_extensions(rt: Runtime) -> list[str]:
    """Extensions the PBX has shown in recent calls (rung, answering, dialling), so the
    admin picks from what exists rather than typing."""
    pattern = re.compile(str(rt.settings.get("pbx", {}).get("extension_pattern", r"\d{2,6}")))
    page = await rt.service.list_calls(CallFilter(), limit=SCAN_CALLS)
    seen: set[str] = set()
    for c in page.items:
        names = [*c.rang, c.answered_by, c.final_agent]
        if c.direction in ("outbound", "internal"):
            names.append(c.caller)
        if c.direction == "internal":
            names.append(c.callee)
        seen.update(n for n in names if n and pattern.fullmatch(n))
    return sorted(seen, key=lambda e: (len(e), e))


# -- users list and creation ----------------------------------------------------------
@routes.get("/admin/users")
async def users(
    request: web.Request,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    rt = runtime(request)
    users = await rt.service.list_users(include_inactive=True)
    teams = await rt.service.list_teams()
    ctx = {
        "section": "users",
        "users": sorted(users, key=lambda u: (not u.active, u.display_name.lower())),
        "teams": {t.id: t.name for t in teams},
        "team_list": teams,
        "roles": ROLES,
        "form": form
        or {"username": "", "display_name": "", "role": "rep", "extensions": "", "team_id": ""},
        "error": error,
        "notice": gettext_or_none(NOTICES.get(request.query.get("done", ""))),
    }
    return render(request, "admin_users.html", ctx, status=status)


def _team_id(text: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(_("team: choose one from the list")) from None


@routes.post("/admin/users")
async def create_user(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    actor = current_user(request)
    form = await _form(request)
    try:
        role = form.get("role", "rep")
        if role not in ROLES:
            raise InvalidInput(_("role must be one of %(roles)s", roles=", ".join(ROLES)))
        user = await rt.service.create_user(
            form.get("username", "").strip(),
            form.get("display_name", "").strip(),
            form.get("password", ""),
            role,  # type: ignore[arg-type]
            _exts(form.get("extensions", "")),
            _team_id(form.get("team_id", "")),
            actor=actor.username,
        )
    except (InvalidInput, NotFound) as exc:
        form.pop("password", None)
        return await users(request, form, refusal(exc), status=400)
    raise web.HTTPSeeOther(f"/admin/users/{user.id}?done=created")


@routes.post("/admin/teams")
async def create_team(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    form = await _form(request)
    try:
        await rt.service.create_team(form.get("name", ""), current_user(request).username)
    except InvalidInput as exc:
        return await users(request, None, refusal(exc), status=400)
    raise web.HTTPSeeOther("/admin/users?done=team-created")


@routes.post("/admin/users/team")
async def bulk_team(request: web.Request) -> web.StreamResponse:
    """The users ticked in the list into one team (or none), in one go."""
    rt, form = runtime(request), await request.post()
    try:
        ids = [int(str(v)) for v in form.getall("user", [])]
        await rt.service.set_teams(
            ids, _team_id(str(form.get("team_id", ""))), current_user(request).username
        )
    except ValueError:
        return await users(request, None, "choose users from the list", status=400)
    except (InvalidInput, NotFound) as exc:
        return await users(request, None, str(exc).strip("'\""), status=400)
    raise web.HTTPSeeOther("/admin/users?done=teams")


# -- one user --------------------------------------------------------------------------
@routes.get("/admin/users/{user_id}")
async def user_page(
    request: web.Request, error: str | None = None, status: int = 200
) -> web.Response:
    rt = runtime(request)
    user = await rt.store.get_user(_user_id(request))
    if user is None:
        raise web.HTTPNotFound(text=_("no such user"))
    everyone = await rt.service.list_users(include_inactive=True)
    ctx = {
        "section": "users",
        "u": user,
        "me": current_user(request),
        "roles": ROLES,
        "teams": await rt.service.list_teams(),
        "others": [o for o in everyone if o.active and o.id != user.id],
        "error": error,
        "notice": _notice(request),
        "open_sessions": len(await rt.store.list_web_sessions(user.id or 0)),
    }
    return render(request, "admin_user.html", ctx, status=status)


def _notice(request: web.Request) -> str | None:
    q = request.query
    if q.get("done") == "reassigned":
        contacts, callbacks = q.get("contacts", "0"), q.get("callbacks", "0")
        if contacts.isdigit() and callbacks.isdigit():
            return _("Handed over %(contacts)s contacts and %(callbacks)s open callbacks.",
                     contacts=contacts, callbacks=callbacks)  # fmt: skip
    return gettext_or_none(NOTICES.get(q.get("done", "")))


async def _change(
    request: web.Request, what: str, target: User, actor: User, form: dict[str, str]
) -> str:
    """Apply one change to ``target``; returns the notice key.  InvalidInput on refusal."""
    rt = runtime(request)
    uid = target.id or 0
    if what == "role":
        role = form.get("role", "")
        if role not in ROLES:
            raise InvalidInput(_("role must be one of %(roles)s", roles=", ".join(ROLES)))
        if target.id == actor.id and role != "admin":
            raise InvalidInput(_("you cannot take away your own admin role"))
        await rt.service.set_role(uid, role, actor.username)  # type: ignore[arg-type]
        return "role"
    if what == "team":
        await rt.service.set_team(uid, _team_id(form.get("team_id", "")), actor.username)
        return "team"
    if what == "password":
        await rt.service.set_password(uid, form.get("password", ""), actor.username)
        return "password"
    if what == "deactivate":
        if target.id == actor.id:
            raise InvalidInput(_("you cannot deactivate yourself"))
        await rt.service.deactivate_user(uid, actor.username)
        return "deactivated"
    if what == "reactivate":
        await rt.service.reactivate_user(uid, actor.username)
        return "reactivated"
    if what == "extensions":
        await rt.service.set_extensions(uid, _exts(form.get("extensions", "")), actor.username)
        return "extensions"
    if what == "reassign":
        try:
            to = int(form.get("to", ""))
        except ValueError:
            raise InvalidInput(_("choose who takes over")) from None
        contacts, callbacks = await rt.service.reassign(uid, to, actor.username)
        return f"reassigned:{contacts}:{callbacks}"
    if what == "sessions":
        await rt.service.audit(actor.username, "user.logged_out_everywhere", f"user:{uid}")
        return "sessions"
    raise web.HTTPNotFound()


ENDS_SESSIONS = frozenset({"password", "deactivated", "sessions"})
"""Changes after which none of the user's sessions may go on (nor their open streams)."""
REBUILDS_STREAMS = frozenset({"role", "team", "extensions"})
"""Changes to what the user's open streams were built for (role, scope, extensions)."""


@routes.post("/admin/users/{user_id}/{what}")
async def change_user(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    actor = current_user(request)
    target = await rt.store.get_user(_user_id(request))
    if target is None:
        raise web.HTTPNotFound(text=_("no such user"))
    form = await _form(request)
    back = form.get("back", "")
    try:
        done = await _change(request, request.match_info["what"], target, actor, form)
    except (InvalidInput, NotFound) as exc:
        if back == "extensions":
            return await extensions(request, refusal(exc), status=400)
        return await user_page(request, refusal(exc), status=400)
    if target.id is not None and done in ENDS_SESSIONS:
        await sessions.end(rt, target.id)
    elif target.id is not None and done in REBUILDS_STREAMS:
        sessions.close_streams(rt, target.id)  # they reconnect with the new view
    if back == "extensions":
        raise web.HTTPSeeOther("/admin/extensions?done=extensions")
    if done.startswith("reassigned:"):
        _what, contacts, callbacks = done.split(":")
        raise web.HTTPSeeOther(
            f"/admin/users/{target.id}?done=reassigned&contacts={contacts}&callbacks={callbacks}"
        )
    raise web.HTTPSeeOther(f"/admin/users/{target.id}?done={done}")


# -- extensions ------------------------------------------------------------------------
@routes.get("/admin/extensions")
async def extensions(
    request: web.Request, error: str | None = None, status: int = 200
) -> web.Response:
    rt = runtime(request)
    users = [u for u in await rt.service.list_users() if u.active]
    assigned = {e for u in users for e in u.extensions}
    seen = await seen_extensions(rt)
    ctx = {
        "section": "extensions",
        "users": sorted(users, key=lambda u: u.display_name.lower()),
        "seen": seen,
        "free": [e for e in seen if e not in assigned],
        "link_up": (rt.link_status is not None and rt.link_status.state == "connected"),
        "error": error,
        "notice": gettext_or_none(NOTICES.get(request.query.get("done", ""))),
    }
    return render(request, "admin_extensions.html", ctx, status=status)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
