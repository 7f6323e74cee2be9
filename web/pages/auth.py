"""Login and logout, the health check, and the static files."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from .. import i18n, sessions
from ..app import current_user, public, runtime, safe_next
from ..i18n import _
from ..language import LANG_COOKIE
from ..linkstate import link_down
from ..render import render, visitor
from ..security import SESSION_COOKIE, cookie_secure

STATIC = Path(__file__).resolve().parent.parent / "static"
routes = web.RouteTableDef()
log = logging.getLogger(__name__)
_warned_plain_http = False


def _warn_if_plain_http(request: web.Request, secure: bool) -> None:
    """A Secure cookie sent over plain HTTP never comes back: the user is logged in and
    at once out again.  Say so in the log, once (``server.secure_cookies``)."""
    global _warned_plain_http
    if not secure or _warned_plain_http or request.secure:
        return
    if request.headers.get("X-Forwarded-Proto", "").lower() == "https":
        return
    _warned_plain_http = True
    log.warning("session cookies are Secure (server.secure_cookies) but this login came over "
                "plain HTTP: browsers will not send the cookie back; serve HTTPS (a reverse "
                "proxy) or set server.secure_cookies = false")  # fmt: skip


@routes.get("/login")
@public
async def login_form(request: web.Request) -> web.StreamResponse:
    if visitor(request).user is not None:
        raise web.HTTPFound(safe_next(request.query.get("next")))
    # The language switcher: ?lang= shows the page in that language and remembers it (a
    # cookie) until the user chooses one on My account.
    chosen = request.query.get("lang")
    lang = chosen if chosen in i18n.LANGUAGES else None
    if lang is not None:
        i18n.CURRENT_LANGUAGE.set(lang)
    response = render(request, "login.html", {"next": safe_next(request.query.get("next")),
                                              "error": None, "username": ""})  # fmt: skip
    if lang is not None:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True,
                            samesite="Lax", secure=cookie_secure(runtime(request).settings),
                            path="/")  # fmt: skip
    return response


@routes.post("/login")
@public
async def login(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    form = await request.post()
    username = str(form.get("username", "")).strip()[:64]
    password = str(form.get("password", ""))[:1024]
    target = safe_next(str(form.get("next", "")))
    address = sessions.address_of(request, rt)
    wait = rt.limiter.retry_after(username, address)
    if wait > 0:
        response = render(
            request,
            "login.html",
            {"next": target, "username": username,
             "error": _("Too many failed attempts. Try again in %(seconds)d seconds.",
                        seconds=int(wait) + 1)},
            status=429,
        )  # fmt: skip
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    user = await rt.service.authenticate(username, password) if username else None
    if user is None or user.id is None:
        rt.limiter.failed(username, address)
        return render(
            request,
            "login.html",
            {"next": target, "username": username, "error": _("Wrong username or password.")},
            status=401,
        )
    rt.limiter.succeeded(username, address)
    _warn_if_plain_http(request, cookie_secure(rt.settings))
    response = web.HTTPFound(target)
    sessions.set_cookie(rt, response, await sessions.start(request, rt, user))
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    """Ends this session on the server (the old cookie stops working everywhere, and this
    session's open event streams close), not only in this browser."""
    user = current_user(request)
    key = visitor(request).session
    if key is not None and user.id is not None:
        await sessions.end(runtime(request), user.id, only=key)
    response = web.HTTPFound("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


@routes.get("/healthz")
@public
async def health(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    status = rt.link_status
    holding = rt.holding_status
    held = holding.held if holding is not None else 0
    statuses = [link.status for link in rt.links.values()]
    # facts received from the PBX and not handled yet; a backlog past the merge point
    # (``ami.merge_after``) or full for longer than ``ami.backlog_alarm`` means this
    # process cannot keep up with its PBX
    overloaded = any(st.overloaded for st in statuses)
    too_old = status.pbx_too_old if status is not None else None
    down = link_down(rt)
    body = {
        "ok": held == 0 and too_old is None and not overloaded and down is None,
        "link": status.state if status is not None else "not configured",
        "calls_waiting_for_database": held,
        "backlog": sum(st.backlog for st in statuses),
        "backlog_max": sum(st.backlog_max for st in statuses),
        "backlog_full": any(st.full_since is not None for st in statuses),
        "behind": any(st.behind_since is not None for st in statuses),
        "overloaded": overloaded,
    }
    if too_old is not None:
        body["pbx"] = too_old  # an Asterisk before 13: no calls are being recorded
    if down is not None:
        # a configured link is down: a load balancer or monitor must hear "not ok"
        body["link_down_since"] = down.since
        body["links_down"] = len(down.endpoints)
        return web.json_response(body, status=503)
    return web.json_response(body)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.router.add_static("/static", STATIC, name="static", append_version=True)
