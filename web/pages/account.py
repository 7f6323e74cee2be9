"""My account, for every role: one's own language and time zone, change one's own
password (the current one is asked for, so a session left open on a shared desk cannot
take the account over) and end one's other sessions ("log out everywhere else") or all
of them."""

from __future__ import annotations

from aiohttp import web

from crm.errors import InvalidInput

from .. import i18n, language, sessions
from ..app import current_user, runtime
from ..i18n import N_, _
from ..render import render, visitor
from ..security import SESSION_COOKIE

routes = web.RouteTableDef()
NOTICES = {
    "password": N_("Password changed; your other sessions have ended."),
    "others": N_("Logged out everywhere else."),
    "preferences": N_("Language and time zone saved."),
}


async def _page(request: web.Request, error: str | None = None,
                status: int = 200) -> web.Response:  # fmt: skip
    rt = runtime(request)
    user = current_user(request)
    notice = NOTICES.get(request.query.get("done", ""))
    ctx = {
        "error": error,
        "notice": _(notice) if notice else None,
        "open_sessions": len(await rt.store.list_web_sessions(user.id or 0)),
        "timezones": language.timezone_choices(),
        "install_language": i18n.language_name(language.install_language(rt.settings)),
        "install_timezone": language.install_timezone(rt.settings),
        "now_ts": rt.service.clock(),
    }
    return render(request, "account.html", ctx, status=status)


@routes.get("/account")
async def account(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@routes.post("/account/password")
async def change_password(request: web.Request) -> web.StreamResponse:
    rt, user, v = runtime(request), current_user(request), visitor(request)
    form = await request.post()
    current, new, again = (str(form.get(k, ""))[:1024] for k in ("current", "password", "again"))
    address = sessions.address_of(request, rt)
    wait = rt.limiter.retry_after(user.username, address)
    if wait > 0:
        message = _("Too many wrong passwords. Try again in %(seconds)d seconds.",
                    seconds=int(wait) + 1)  # fmt: skip
        response = await _page(request, message, status=429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    if await rt.service.authenticate(user.username, current) is None:
        rt.limiter.failed(user.username, address)
        return await _page(request, _("Your current password is not right."), status=400)
    if new != again:
        return await _page(request, _("The two new passwords differ."), status=400)
    assert user.id is not None
    try:
        await rt.service.set_password(user.id, new, user.username)
    except InvalidInput:
        return await _page(request, _("The new password needs at least 8 characters."),
                           status=400)  # fmt: skip
    await sessions.end(rt, user.id, keep=v.session)
    response = web.HTTPSeeOther("/account?done=password")
    changed = await rt.store.get_user(user.id)
    if changed is not None and v.session is not None:
        sessions.set_cookie(rt, response, sessions.reissue(rt, changed, v.csrf_nonce))
    raise response


@routes.post("/account/preferences")
async def set_preferences(request: web.Request) -> web.StreamResponse:
    """The user's own language and time zone; an empty choice goes back to "as the browser
    says" (language) or the install's (time zone)."""
    rt = runtime(request)
    user = current_user(request)
    form = await request.post()
    lang = str(form.get("language", "")).strip() or None
    tz = str(form.get("timezone", "")).strip() or None
    if lang is not None and lang not in i18n.LANGUAGES:
        return await _page(request, _("Choose a language from the list."), status=400)
    if tz is not None and not language.valid_timezone(tz):
        return await _page(request, _("Choose a time zone from the list."), status=400)
    assert user.id is not None
    await rt.service.set_preferences(user.id, lang, tz, user.username)
    raise web.HTTPSeeOther("/account?done=preferences")


@routes.post("/account/sessions")
async def end_sessions(request: web.Request) -> web.StreamResponse:
    rt, user, v = runtime(request), current_user(request), visitor(request)
    form = await request.post()
    assert user.id is not None
    if form.get("which") == "all" or v.session is None:
        await sessions.end(rt, user.id)
        await rt.service.audit(user.username, "user.logged_out_everywhere", f"user:{user.id}")
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response
    await sessions.end(rt, user.id, keep=v.session)
    await rt.service.audit(user.username, "user.logged_out_elsewhere", f"user:{user.id}")
    raise web.HTTPSeeOther("/account?done=others")


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
