"""Every route of the application, as nobody and as every role, from the router itself.

The routes are read from ``app.router`` when the test runs, so a route added later is
covered without touching this file, except that ``DECISIONS`` must say who may use it:
a route without a decision fails the test (and so does a decision for a route that no
longer exists).  Path parameters are filled with real objects of alice's (her call, her
customer, her lead, the recording of her call), so "bob asks for alice's call" is a real
question with a real answer, and refused answers are searched for alice's data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from web.recordings_view import sign
from web.runtime import Runtime

from .conftest import ALICE_MARK, Clients, World, snapshot

NOBODY, REP, MANAGER, ADMIN = "nobody", "rep", "manager", "admin"
PUBLIC = frozenset({NOBODY, REP, MANAGER, ADMIN})
USERS = frozenset({REP, MANAGER, ADMIN})
SUPERVISORS = frozenset({MANAGER, ADMIN})
ADMINS = frozenset({ADMIN})
ROLE_OF = {"nobody": NOBODY, "alice": REP, "bob": REP, "maria": MANAGER, "otto": MANAGER,
           "admin": ADMIN}  # fmt: skip
SEES_ALICE = frozenset({"alice", "maria", "admin"})
"""Alice herself, her team's manager, the admin; bob (other rep) and otto (other team's
manager) must not see her objects."""


@dataclass(frozen=True)
class Decision:
    roles: frozenset[str]
    """Who may use the route at all (``nobody`` = without logging in)."""
    alices: bool = False
    """The path names one of alice's objects: only ``SEES_ALICE`` get it."""
    lists: bool = False
    """A list or report: allowed to bob and otto, but without alice's data."""
    moves: bool = False
    """May answer with a redirect to another page of the site (checked on its own)."""


# The allow-list: one explicit decision per route (HEAD follows GET).
DECISIONS: dict[str, Decision] = {
    "GET /login": Decision(PUBLIC, moves=True),  # logged in: on to the home page
    "POST /login": Decision(PUBLIC),
    "POST /logout": Decision(USERS),
    "GET /account": Decision(USERS),
    "POST /account/password": Decision(USERS),
    "POST /account/preferences": Decision(USERS),
    "POST /account/sessions": Decision(USERS),
    "GET /healthz": Decision(PUBLIC),
    # from this machine (the test client is loopback); from elsewhere an admin's API
    # token only (tests/web/test_metrics.py::test_who_may_read_the_metrics)
    "GET /metrics": Decision(PUBLIC),
    "GET /static": Decision(PUBLIC),
    "GET /": Decision(USERS, lists=True),
    "GET /events": Decision(USERS),
    "GET /calls": Decision(USERS, lists=True),
    "GET /calls/{call_id}": Decision(USERS, alices=True),
    "POST /calls/{call_id}/notes": Decision(USERS, alices=True),
    "POST /calls/{call_id}/contact": Decision(USERS, alices=True),
    "POST /calls/{call_id}/notes/{note_id}": Decision(USERS, alices=True),
    "GET /wrapup/options": Decision(USERS),
    "GET /callbacks": Decision(USERS, lists=True),
    "POST /callbacks/{task_id}/{action}": Decision(USERS, alices=True),
    "GET /contacts": Decision(USERS, lists=True),
    "GET /leads": Decision(USERS, lists=True),
    "GET /contacts/new": Decision(USERS),
    "GET /leads/new": Decision(USERS, moves=True),
    "POST /contacts/new": Decision(USERS),
    "GET /contacts/{contact_id}": Decision(USERS, alices=True),
    "GET /leads/{contact_id}": Decision(USERS, alices=True, moves=True),
    "GET /contacts/{contact_id}/edit": Decision(USERS, alices=True),
    "POST /contacts/{contact_id}/edit": Decision(USERS, alices=True),
    "GET /contacts/{contact_id}/merge": Decision(USERS, alices=True),
    "POST /contacts/{contact_id}/merge": Decision(USERS, alices=True),
    "GET /contacts/{contact_id}/convert": Decision(USERS, alices=True, moves=True),
    "POST /contacts/{contact_id}/convert": Decision(USERS, alices=True),
    "GET /search": Decision(USERS, lists=True),
    "POST /contacts/{contact_id}/lead-status": Decision(USERS, alices=True),
    "GET /contacts/import": Decision(SUPERVISORS),
    "POST /contacts/import": Decision(SUPERVISORS),
    "GET /contacts/export.csv": Decision(SUPERVISORS, lists=True),
    "GET /contacts/{contact_id}/erase": Decision(SUPERVISORS, alices=True),
    "POST /contacts/{contact_id}/erase": Decision(SUPERVISORS, alices=True),
    "GET /dial": Decision(USERS),
    "POST /dial": Decision(USERS),
    "GET /missed": Decision(SUPERVISORS, lists=True),
    "GET /missed.csv": Decision(SUPERVISORS, lists=True),
    "GET /reports": Decision(SUPERVISORS, lists=True),
    "GET /board": Decision(SUPERVISORS, lists=True),
    "GET /board/wall": Decision(SUPERVISORS, lists=True),
    "GET /board/events": Decision(SUPERVISORS),
    "POST /board/pause": Decision(SUPERVISORS),
    "POST /board/membership": Decision(SUPERVISORS),
    "GET /reports/leads": Decision(SUPERVISORS, lists=True),
    "GET /handover": Decision(SUPERVISORS, lists=True),
    "POST /handover": Decision(SUPERVISORS),
    "GET /reports/leads.csv": Decision(SUPERVISORS, lists=True),
    "GET /reports/queues": Decision(SUPERVISORS, lists=True),
    "GET /reports/queues.csv": Decision(SUPERVISORS, lists=True),
    "GET /recordings/{rec_id}/stream": Decision(USERS, alices=True),
    "GET /recordings/{rec_id}/waveform": Decision(USERS, alices=True),
    "GET /recordings/{rec_id}/download": Decision(SUPERVISORS, alices=True),
    "GET /admin": Decision(ADMINS),
    "GET /admin/link-status": Decision(ADMINS),
    "POST /admin/pbx": Decision(ADMINS),
    "POST /admin/pbx/test": Decision(ADMINS),
    "GET /admin/settings": Decision(ADMINS),
    "GET /admin/wrapup": Decision(ADMINS),
    "POST /admin/wrapup": Decision(ADMINS),
    "POST /admin/settings": Decision(ADMINS),
    "GET /admin/queues": Decision(ADMINS),
    "POST /admin/queues": Decision(ADMINS),
    "POST /admin/queues/reset": Decision(ADMINS),
    "GET /admin/audit": Decision(ADMINS),
    "GET /admin/users": Decision(ADMINS),
    "POST /admin/users": Decision(ADMINS),
    "POST /admin/teams": Decision(ADMINS),
    "POST /admin/users/team": Decision(ADMINS),
    "GET /admin/users/{user_id}": Decision(ADMINS),
    "POST /admin/users/{user_id}/{what}": Decision(ADMINS),
    "GET /admin/extensions": Decision(ADMINS),
    "GET /admin/recordings": Decision(ADMINS),
    "POST /admin/recordings": Decision(ADMINS),
    "POST /admin/recordings/purge": Decision(ADMINS),
    "GET /admin/tokens": Decision(ADMINS),
    "POST /admin/tokens": Decision(ADMINS),
    "POST /admin/tokens/{token_id}/revoke": Decision(ADMINS),
    "GET /api/v1/openapi.json": Decision(PUBLIC),
    "GET /api/v1/me": Decision(USERS),
    "GET /api/v1/contacts": Decision(USERS, lists=True),
    "POST /api/v1/contacts": Decision(USERS),
    "GET /api/v1/contacts/{id}": Decision(USERS, alices=True),
    "PATCH /api/v1/contacts/{id}": Decision(USERS, alices=True),
    "DELETE /api/v1/contacts/{id}": Decision(SUPERVISORS, alices=True),
    "GET /api/v1/leads": Decision(USERS, lists=True),
    "POST /api/v1/leads/{id}/convert": Decision(USERS, alices=True),
    "GET /api/v1/calls": Decision(USERS, lists=True),
    "GET /api/v1/calls/{id}": Decision(USERS, alices=True),
    "POST /api/v1/calls": Decision(USERS),
    "GET /api/v1/callbacks": Decision(USERS, lists=True),
}
FORM = {
    "name": "Changed Name", "company": "X", "email": "", "phones": "+14155550100",
    "topic": "t", "result": "r", "comment": "c", "contact_id": "1", "keep": "1", "drop": "1",
    "status": "won", "number": "+14155550100", "username": "eve", "display_name": "Eve",
    "password": "long-enough-password-1", "role": "rep", "extensions": "109", "team_id": "",
    "host": "127.0.0.1", "port": "5038", "secret": "x", "default_region": "US",
    "create_on": "every_call", "repeat_window_hours": "1", "callback_sla_minutes": "1",
    "to": "1", "next": "/", "confirm": "erase", "retention_days": "1",
    "user_id": "1", "reason": "other", "until": "2030-01-01T10:00", "results": "A\nB",
}  # fmt: skip
"""One form that fills what every state-changing page reads, so the request would do
something if it were let through."""
JSON_BODY = {"name": "Changed Name", "number": "+14155550100", "phones": ["+14155550100"]}


@dataclass(frozen=True)
class Target:
    key: str
    method: str
    decision: Decision


def _key(route: web.AbstractRoute) -> str:
    method = "GET" if route.method == "HEAD" else route.method
    assert route.resource is not None
    return f"{method} {route.resource.canonical}"


def targets(app: web.Application) -> Iterator[Target]:
    for route in app.router.routes():
        yield Target(_key(route), route.method, DECISIONS[_key(route)])


def url_for(app: web.Application, rt: Runtime, w: World, t: Target, who: str) -> str:
    """The route's path with alice's objects in it (a recording link signed for ``who``,
    the way the call page would give it to them)."""
    path = t.key.split(" ", 1)[1]
    if path == "/static":
        return str(app.router["static"].url_for(filename="app.css"))
    rec = w.recording.id
    assert rec is not None and w.alice_contact.id is not None
    ids = {"{call_id}": w.alice_call.id, "{contact_id}": w.alice_contact.id, "{rec_id}": rec,
           "{user_id}": w.people.alice.id, "{what}": "team", "{token_id}": 1,
           "{task_id}": w.alice_task, "{action}": "close", "{note_id}": w.alice_note}  # fmt: skip
    if path.startswith("/leads/") or "/leads/{id}" in path:
        ids["{contact_id}"] = ids["{id}"] = w.alice_lead.id
    elif path.startswith("/api/v1/calls/"):
        ids["{id}"] = w.alice_call.id
    else:
        ids["{id}"] = w.alice_contact.id
    for name, value in ids.items():
        path = path.replace(name, str(value))
    if path.startswith("/recordings/"):
        user = {"nobody": w.people.alice, "alice": w.people.alice, "bob": w.people.bob,
                "maria": w.people.manager, "otto": w.people.other_manager,
                "admin": w.people.admin}[who]  # fmt: skip
        assert user.id is not None
        path = sign(rt, rec, user.id).url(path.rsplit("/", 1)[1])
    return path


async def send(c: TestClient, method: str, url: str, csrf: str | None) -> tuple[int, str, Any]:
    """(status, body text, headers); SSE answers only their status (the stream never ends)."""
    if method == "HEAD" and url == "/events":
        status, head, _ = await raw_head(c, url)
        return status, "", head
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    kw: dict[str, Any] = {"headers": headers, "allow_redirects": False}
    if method in ("POST", "PATCH", "DELETE", "PUT"):
        if url.startswith("/api/"):
            kw["json"] = JSON_BODY
        else:
            kw["data"] = FORM
    resp = await c.request(method, url, **kw)
    try:
        if resp.headers.get("Content-Type", "").startswith("text/event-stream"):
            try:
                chunk = await asyncio.wait_for(resp.content.readany(), 0.3)
            except TimeoutError:
                chunk = b""
            return resp.status, chunk.decode("utf-8", "replace"), resp.headers
        return resp.status, (await resp.read()).decode("utf-8", "replace"), resp.headers
    finally:
        resp.close()


async def raw_head(c: TestClient, url: str) -> tuple[int, dict[str, str], bytes]:
    """HEAD over a raw socket: (status, headers, whatever came after the headers within
    0.5 s).  aiohttp's client cannot read a HEAD answer that carries a body."""
    cookies = c.session.cookie_jar.filter_cookies(c.make_url(url))
    cookie = "; ".join(f"{k}={m.value}" for k, m in cookies.items())
    reader, writer = await asyncio.open_connection(c.host, c.port)
    try:
        writer.write(f"HEAD {url} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
        raw = await reader.readuntil(b"\r\n\r\n")
        try:
            extra = await asyncio.wait_for(reader.read(4096), 0.5)
        except TimeoutError:
            extra = b""
    finally:
        writer.close()
    lines = raw.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, extra


def _refused_anonymous(status: int, headers: Any) -> bool:
    return status == 401 or (status == 302 and headers["Location"].startswith("/login?"))


async def test_every_route_has_a_decision(clients: Clients) -> None:
    """A new route fails here until someone writes down who may use it."""
    app = clients.server.app
    assert app is not None
    seen = {_key(r) for r in app.router.routes()}
    assert seen - DECISIONS.keys() == set(), "routes without an access decision"
    assert DECISIONS.keys() - seen == set(), "decisions for routes that do not exist"


@pytest.mark.parametrize("who", ["nobody", "alice", "bob", "maria", "otto", "admin"])
async def test_reading_every_route_as(who: str, clients: Clients, rt: Runtime,
                                      world: World) -> None:  # fmt: skip
    """GET and HEAD on every route: the right people get it, everyone else is refused
    and sees none of alice's data."""
    app = clients.server.app
    assert app is not None
    role, c = ROLE_OF[who], clients.by_name[who]
    problems: list[str] = []
    for t in targets(app):
        if t.method not in ("GET", "HEAD"):
            continue
        url = url_for(app, rt, world, t, who)
        status, body, headers = await send(c, t.method, url, None)
        leaked = ALICE_MARK in body
        d = t.decision
        moved = status in (301, 302, 303, 307, 308)
        if d.moves and moved and not leaked and not headers["Location"].startswith(
            ("/login", "http")
        ):
            continue
        if role not in d.roles:
            ok = _refused_anonymous(status, headers) if role == NOBODY else status == 403
            ok = ok and not leaked
        elif d.alices and who not in SEES_ALICE:
            ok = status in (403, 404) and not leaked
        else:
            ok = status == 200 and not (d.lists and who not in SEES_ALICE and leaked)
        if not ok:
            problems.append(f"{t.method} {url} -> {status} (leaked alice's data: {leaked})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("who", ["nobody", "alice", "bob", "maria", "otto"])
async def test_changing_every_route_as(who: str, clients: Clients, rt: Runtime,
                                       world: World) -> None:  # fmt: skip
    """Every state-changing route with a valid CSRF token: refused for those who may not
    use it (nobody, the wrong role, the wrong rep or team), and nothing in the database
    changed.  Allowed requests are the other test files' business."""
    app = clients.server.app
    assert app is not None
    role, c = ROLE_OF[who], clients.by_name[who]
    problems: list[str] = []
    for t in targets(app):
        if t.method in ("GET", "HEAD"):
            continue
        d = t.decision
        if role in d.roles and not (d.alices and who not in SEES_ALICE):
            continue
        before = snapshot(rt)
        url = url_for(app, rt, world, t, who)
        status, body, headers = await send(c, t.method, url, clients.csrf[who])
        if role not in d.roles:
            ok = _refused_anonymous(status, headers) if role == NOBODY else status == 403
        else:
            ok = status in (403, 404)
        if not ok or ALICE_MARK in body:
            problems.append(f"{t.method} {url} -> {status}")
        if snapshot(rt) != before:
            problems.append(f"{t.method} {url} -> {status} CHANGED the database")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("token", [None, "forged-token", "other-users-token"])
async def test_no_state_change_without_the_csrf_token(
    token: str | None, clients: Clients, rt: Runtime, world: World
) -> None:
    """The admin may do everything, so only the CSRF check stands between these requests
    and a change: every state-changing route must answer 403 and change nothing.  The
    token of another session (bob's) is as bad as none."""
    app = clients.server.app
    assert app is not None
    c = clients.by_name["admin"]
    sent = clients.csrf["bob"] if token == "other-users-token" else token
    problems: list[str] = []
    for t in targets(app):
        if t.method in ("GET", "HEAD"):
            continue
        before = snapshot(rt)
        url = url_for(app, rt, world, t, "admin")
        status, body, _ = await send(c, t.method, url, sent)
        if status != 403 or "CSRF" not in body:
            problems.append(f"{t.method} {url} -> {status}")
        if snapshot(rt) != before:
            problems.append(f"{t.method} {url} CHANGED the database without a CSRF token")
    assert not problems, "\n".join(problems)
    # the session is still good: the refusal was about the token only
    assert (await c.get("/admin")).status == 200


async def test_login_form_needs_its_csrf_token(clients: Clients) -> None:
    """Login CSRF: a foreign site cannot log a visitor in as the attacker."""
    c = clients.by_name["nobody"]
    form = {"username": "alice", "password": "correct-horse-1", "next": "/"}
    resp = await c.post("/login", data=form, allow_redirects=False)
    assert resp.status == 403
    assert "crm_session" not in {m.key for m in c.session.cookie_jar}


async def test_head_on_the_event_stream_sends_no_body(clients: Clients) -> None:
    """Regression (web/pages/live.py, ``events``): aiohttp answers HEAD with the GET handler, and
    the SSE handler writes its stream anyway, so a HEAD gets a never-ending body, which
    breaks keep-alive clients and proxies (RFC 9110 9.3.2: HEAD has no content)."""
    status, _headers, extra = await raw_head(clients.by_name["alice"], "/events")
    assert status == 200
    assert extra == b""
