"""The aiohttp application: middlewares that make every route safe by default, and the
page modules that add routes.

Safe by default means: a handler is reachable only by a logged-in user unless it is
marked ``@public``; ``@roles(...)`` narrows it further; every state-changing request that
rides on the session cookie must carry the CSRF token.  A page module cannot forget a
check it never had to write.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web

from crm.models import Role, User

from . import language
from .i18n import N_, gettext, js_messages
from .render import ENV_KEY, Visitor, make_env, render, visitor
from .runtime import Runtime
from .security import ANON_COOKIE, CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, cookie_secure
from .security import safe_next as safe_next
from .sessions import session_user

log = logging.getLogger(__name__)
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def public(handler: H) -> H:
    """Reachable without logging in (login page, health check)."""
    handler.__crm_public__ = True  # type: ignore[attr-defined]
    return handler


def roles(*allowed: Role) -> Callable[[H], H]:
    """Only users with one of these roles; others get 403."""

    def mark(handler: H) -> H:
        handler.__crm_roles__ = frozenset(allowed)  # type: ignore[attr-defined]
        return handler

    return mark


def runtime(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


def current_user(request: web.Request) -> User:
    """The logged-in user (the middleware guarantees one on non-public routes)."""
    user = visitor(request).user
    if user is None:
        raise web.HTTPUnauthorized()
    return user


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )


def _handler_of(request: web.Request) -> Any:
    return getattr(request.match_info, "handler", None)


REASONS = (
    N_("Bad Request"), N_("Unauthorized"), N_("Forbidden"), N_("Not Found"),
    N_("Method Not Allowed"), N_("Conflict"), N_("Gone"), N_("Request Entity Too Large"),
    N_("Unsupported Media Type"), N_("Range Not Satisfiable"), N_("Too Many Requests"),
    N_("Internal Server Error"), N_("Bad Gateway"), N_("Service Unavailable"),
    N_("Gateway Timeout"),
)  # fmt: skip
"""HTTP reasons as the error page shows them (translated; the API keeps them English)."""
CSRF_FAILED = N_(
    "the form expired or did not come from this site (CSRF check failed); reload the page "
    "and try again"
)


def _message(exc: web.HTTPException) -> str:
    text = exc.text or ""
    return exc.reason if not text or text.startswith(f"{exc.status}:") else text


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as a page for people and as ``{"error": {...}}`` for the API: never a
    traceback, never a bare aiohttp text page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        keep = {k: v for k, v in exc.headers.items()
                if k in ("Retry-After", "Allow", "WWW-Authenticate", "Content-Range")}  # fmt: skip
        if wants_json(request):
            body = {"error": {"status": exc.status, "message": _message(exc)}}
            return web.json_response(body, status=exc.status, headers=keep)
        ctx = {"status": exc.status, "reason": gettext(exc.reason),
               "message": gettext(_message(exc))}  # fmt: skip
        response = render(request, "error.html", ctx, status=exc.status)
        response.headers.update(keep)
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json(request):
            body = {"error": {"status": 500, "message": "internal error"}}
            return web.json_response(body, status=500)
        ctx = {"status": 500, "reason": gettext("Something went wrong"), "message": ""}
        return render(request, "error.html", ctx, status=500)


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    h = response.headers
    h.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'",
    )
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("X-Frame-Options", "DENY")
    if visitor(request).user is not None:
        h.setdefault("Cache-Control", "no-store")
    return response


async def _session_user(request: web.Request, v: Visitor) -> None:
    rt = runtime(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        found = await session_user(rt, cookie)
        if found is not None:
            user, session = found
            v.user, v.auth, v.csrf_nonce, v.session = user, "session", session.nonce, session.key
            return
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        found_token = await rt.service.api_token_auth(auth[7:].strip())
        if found_token is None:
            raise web.HTTPUnauthorized(text="invalid, expired or revoked API token")
        token_user, token = found_token
        if token.scope == "read" and request.method not in ("GET", "HEAD"):
            raise web.HTTPForbidden(text="this API token is read-only")
        v.user, v.auth = token_user, "token"


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    v = visitor(request)
    settings = runtime(request).settings
    language.apply(request, None, settings)
    await _session_user(request, v)
    if v.user is not None:
        language.apply(request, v.user, settings)
    new_anon = None
    if not v.csrf_nonce:
        nonce = request.cookies.get(ANON_COOKIE, "")
        if len(nonce) < 16:
            nonce = new_anon = secrets.token_urlsafe(16)
        v.csrf_nonce = nonce
    v.csrf_token = runtime(request).signer.csrf_token(v.csrf_nonce)

    target = _handler_of(request)
    is_public = getattr(target, "__crm_public__", False) or request.path.startswith("/static/")
    user = v.user
    if not is_public and user is None:
        if wants_json(request) or request.method in UNSAFE:
            raise web.HTTPUnauthorized(text=N_("log in first"))
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}")
    allowed = getattr(target, "__crm_roles__", None)
    if allowed is not None and (user is None or user.role not in allowed):
        raise web.HTTPForbidden(text=N_("your role does not allow this page"))
    if request.method in UNSAFE and v.auth != "token":
        token = request.headers.get(CSRF_HEADER)
        if token is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            form = await request.post()
            value = form.get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
        if not runtime(request).signer.check_csrf(v.csrf_nonce, token):
            raise web.HTTPForbidden(text=CSRF_FAILED)
    response = await handler(request)
    if new_anon is not None:
        response.set_cookie(
            ANON_COOKIE, new_anon, httponly=True, samesite="Lax",
            secure=cookie_secure(runtime(request).settings),
        )  # fmt: skip
    return response


def create_app(rt: Runtime) -> web.Application:
    app = web.Application(
        middlewares=[headers_middleware, error_middleware, auth_middleware],
        client_max_size=20 * 1024 * 1024,
    )
    app[RUNTIME] = rt
    app[ENV_KEY] = make_env(rt.settings)
    # The scripts' browser strings are read from the scripts themselves (30 ms quiet, over
    # 100 ms under load): once here, before serving, not in the first page's loop turn.
    js_messages()
    from . import pages

    pages.setup(app)
    return app
