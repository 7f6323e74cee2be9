"""Web sessions: starting one at login, finding the live one behind a request, ending
them (logout, "log out everywhere", password change, deactivation), and closing the
event streams they hold open.

The rows live in the store (``web_sessions``) so every web process agrees on which
sessions are alive; the end of a session is also announced on the event bus
(``streams_close``), which the PostgreSQL fan-out carries to every process, so an open
``/events`` stream of an ended session closes wherever it is connected.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from crm.events import Event
from crm.models import User, WebSession

from .runtime import Runtime
from .security import (
    SESSION_COOKIE,
    Session,
    SessionPolicy,
    client_address,
    cookie_secure,
    session_key,
    trusted_networks,
)

STREAMS_CLOSE = "streams_close"
"""Bus event: ``{"user_id": int, "session": key or None, "keep": key or None}``; every
process closes that user's ``/events`` streams (one session's, or all but ``keep``)."""


def policy(rt: Runtime) -> SessionPolicy:
    return SessionPolicy.from_settings(rt.settings)


@functools.lru_cache(maxsize=8)
def _trusted(values: tuple[str, ...]) -> Any:
    return trusted_networks(values)


def address_of(request: web.Request, rt: Runtime) -> str:
    """The client's address, through the trusted reverse proxies (``server.trusted_proxies``)."""
    proxies = tuple(str(p) for p in rt.settings.get("server", {}).get("trusted_proxies", ()))
    return client_address(request.remote, request.headers.getall("X-Forwarded-For", []),
                          _trusted(proxies))  # fmt: skip


async def session_user(rt: Runtime, cookie: str,
                       touch: bool = True) -> tuple[User, Session] | None:  # fmt: skip
    """The active user and live session a cookie names, noting the activity unless
    ``touch`` is false (an event stream's heartbeat is not the user doing something);
    else None (forged, ended, idle or too old, user deactivated or password changed)."""
    session = rt.signer.peek(cookie)
    if session is None:
        return None
    now = rt.service.clock()
    rules = policy(rt)
    user = await rt.store.get_user(session.user_id)
    if user is None or not user.active or not rt.signer.verify(
        cookie, user.password_hash, now, max_age=rules.absolute
    ):
        return None
    row = await rt.store.get_web_session(session.key)
    if (row is None or row.user_id != user.id or row.ended_at is not None
            or not rules.alive(row.created_at, row.last_seen_at, now)):  # fmt: skip
        return None
    if touch and now - row.last_seen_at >= rules.touch_every:
        await rt.store.touch_web_session(row.id, now)
    return user, session


def set_cookie(rt: Runtime, response: web.StreamResponse, cookie: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, cookie, httponly=True, samesite="Lax", secure=cookie_secure(rt.settings),
        max_age=int(policy(rt).absolute), path="/",
    )  # fmt: skip


async def start(request: web.Request, rt: Runtime, user: User) -> str:
    """A new session for ``user`` (just authenticated): its row, and the cookie naming it."""
    assert user.id is not None
    now = rt.service.clock()
    rules = policy(rt)
    await rt.store.purge_web_sessions(now - max(rules.absolute, rules.idle) - 86400)
    cookie = rt.signer.issue(user.id, user.password_hash, now)
    session = rt.signer.peek(cookie)
    assert session is not None
    await rt.store.add_web_session(WebSession(
        session.key, user.id, now, now, None, address_of(request, rt),
        request.headers.get("User-Agent", ""),
    ))  # fmt: skip
    return cookie


def reissue(rt: Runtime, user: User, nonce: str) -> str:
    """The current session's cookie, signed again after the user changed their password."""
    assert user.id is not None
    return rt.signer.issue(user.id, user.password_hash, rt.service.clock(), nonce)


async def end(rt: Runtime, user_id: int, *, only: str | None = None,
              keep: str | None = None) -> int:  # fmt: skip
    """End the user's sessions (one, all but one, or all) and close their streams."""
    count = await rt.store.end_web_sessions(user_id, rt.service.clock(), only=only, keep=keep)
    close_streams(rt, user_id, session=only, keep=keep)
    return count


def close_streams(rt: Runtime, user_id: int, *, session: str | None = None,
                  keep: str | None = None) -> None:  # fmt: skip
    """Close the user's open ``/events`` streams in every process (after a role change
    they reconnect and are rebuilt for the new role; an ended session cannot reconnect)."""
    rt.bus.publish(Event(STREAMS_CLOSE, {"user_id": user_id, "session": session, "keep": keep}))


__all__ = ["SESSION_COOKIE", "STREAMS_CLOSE", "address_of", "close_streams", "end", "reissue",
           "session_key", "session_user", "set_cookie", "start"]
