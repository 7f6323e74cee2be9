"""Sessions end on the server: a cookie copied before a logout, an idle or absolute
timeout, "log out everywhere" (the user's own or the admin's) or a password change is
worth nothing afterwards (ASVS 3.3.1, 3.3.2), and the event streams such a session holds
open close at once.  The old cookie is replayed from a client that has only that cookie,
the way a thief who copied it would."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.web.conftest import PASSWORD, People, login, make_people, web_settings
from tests.web.test_live import Stream, progress, ring
from web.app import create_app
from web.live import LIVE_HUB
from web.runtime import Runtime, open_runtime
from web.security import SESSION_COOKIE

HOUR = 3600.0


class Clock:
    """A hand-moved clock for the CRM service (sessions read the time from it)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(rt: Runtime) -> Clock:
    c = Clock()
    rt.service.clock = c
    return c


@pytest.fixture
async def server(rt: Runtime, people: People) -> AsyncIterator[TestServer]:
    srv = TestServer(create_app(rt))
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


async def browser(server: TestServer) -> TestClient:
    """A browser of its own (cookie jar).  Closing one closes the server too: close them
    all at the end of the test."""
    c = TestClient(server)
    await c.start_server()
    return c


def cookie_of(c: TestClient) -> str:
    value = c.session.cookie_jar.filter_cookies(c.make_url("/")).get(SESSION_COOKIE)
    assert value is not None, "not logged in"
    return value.value


async def replay(server: TestServer, cookie: str, path: str = "/api/v1/me") -> int:
    """The status a request gets with nothing but this session cookie."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
        url = f"http://{server.host}:{server.port}{path}"
        async with s.get(url, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
                         allow_redirects=False) as resp:  # fmt: skip
            return resp.status


async def open_events(c: TestClient) -> Stream:
    resp = await c.get("/events")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    return Stream(resp)


async def closes(stream: Stream, within: float = 2.0) -> None:
    """The server ends the stream within ``within`` seconds (whatever it sent before)."""
    with pytest.raises(EOFError):
        while True:
            await stream.next(within)


async def pops(stream: Stream, rt: Runtime, linkedid: str, to: str = "101") -> None:
    """The stream is alive: a call ringing ``to`` pops on it."""
    await ring(rt, progress(ringing=(to,), linkedid=linkedid))
    deadline = time.monotonic() + 2.0
    while (await stream.next_of("call_progress", deadline - time.monotonic()))[
        "linkedid"
    ] != linkedid:
        pass  # a new connection first hears of the calls already ringing


# -- logout ----------------------------------------------------------------------------
async def test_the_cookie_is_dead_after_logout(server: TestServer) -> None:
    alice = await browser(server)
    try:
        csrf = await login(alice, "alice")
        old = cookie_of(alice)
        assert await replay(server, old) == 200  # the control: a copy works while logged in
        out = await alice.post("/logout", data={"_csrf": csrf}, allow_redirects=False)
        assert out.status == 302
        assert await replay(server, old) == 401
        assert await replay(server, old, "/calls") == 302  # pages send it to the login
    finally:
        await alice.close()


async def test_logout_ends_only_that_session(server: TestServer) -> None:
    desk, phone = await browser(server), await browser(server)
    try:
        csrf = await login(desk, "alice")
        await login(phone, "alice")
        await desk.post("/logout", data={"_csrf": csrf}, allow_redirects=False)
        assert await replay(server, cookie_of(phone)) == 200
    finally:
        await desk.close()
        await phone.close()


# -- timeouts ----------------------------------------------------------------------------
async def test_an_idle_session_times_out(server: TestServer, rt: Runtime, clock: Clock) -> None:
    rt.settings["server"]["session_idle_hours"] = 12
    alice = await browser(server)
    try:
        await login(alice, "alice")
        cookie = cookie_of(alice)
        clock.now += 11 * HOUR
        assert await replay(server, cookie) == 200  # used within 12 h: still alive ...
        clock.now += 11 * HOUR
        assert await replay(server, cookie) == 200  # ... counted from the last use
        clock.now += 12 * HOUR + 120
        assert await replay(server, cookie) == 401
        clock.now += 60
        assert await replay(server, cookie) == 401  # and it stays dead
    finally:
        await alice.close()


@pytest.mark.parametrize("days", [7, 30])
async def test_a_busy_session_still_ends_after_the_absolute_limit(
    server: TestServer, rt: Runtime, clock: Clock, days: int
) -> None:
    rt.settings["server"]["session_max_days"] = days
    alice = await browser(server)
    try:
        await login(alice, "alice")
        cookie, start = cookie_of(alice), clock.now
        while clock.now + 10 * HOUR < start + days * 24 * HOUR:
            clock.now += 10 * HOUR
            assert await replay(server, cookie) == 200
        clock.now = start + days * 24 * HOUR + 60
        assert await replay(server, cookie) == 401
    finally:
        await alice.close()


# -- log out everywhere ------------------------------------------------------------------
async def test_log_out_everywhere_else_and_everywhere(server: TestServer) -> None:
    desk, phone, laptop = [await browser(server) for _ in range(3)]
    try:
        csrf = await login(desk, "alice")
        await login(phone, "alice")
        await login(laptop, "alice")
        page = await desk.get("/account")
        assert page.status == 200 and "3 times" in await page.text()
        resp = await desk.post("/account/sessions", data={"_csrf": csrf, "which": "others"},
                               allow_redirects=False)  # fmt: skip
        assert resp.status == 303
        assert await replay(server, cookie_of(phone)) == 401
        assert await replay(server, cookie_of(laptop)) == 401
        mine = cookie_of(desk)
        assert await replay(server, mine) == 200
        resp = await desk.post("/account/sessions", data={"_csrf": csrf, "which": "all"},
                               allow_redirects=False)  # fmt: skip
        assert resp.status == 303 and resp.headers["Location"] == "/login"
        assert await replay(server, mine) == 401
    finally:
        for c in (desk, phone, laptop):
            await c.close()


async def test_the_admin_logs_a_user_out_everywhere(server: TestServer, people: People) -> None:
    alice, phone, admin = await browser(server), await browser(server), await browser(server)
    try:
        await login(alice, "alice")
        await login(phone, "alice")
        admin_csrf = await login(admin, "admin")
        page = await admin.get(f"/admin/users/{people.alice.id}")
        assert "2 open sessions" in await page.text()
        resp = await admin.post(f"/admin/users/{people.alice.id}/sessions",
                                data={"_csrf": admin_csrf}, allow_redirects=False)  # fmt: skip
        assert resp.status == 303
        assert await replay(server, cookie_of(alice)) == 401
        assert await replay(server, cookie_of(phone)) == 401
        assert await replay(server, cookie_of(admin)) == 200  # the admin's own is untouched
        audit = await (await admin.get("/admin/audit")).text()
        assert "user.logged_out_everywhere" in audit
    finally:
        for c in (alice, phone, admin):
            await c.close()


# -- my account: password ----------------------------------------------------------------
async def test_changing_my_password_needs_the_current_one_and_ends_my_other_sessions(
    server: TestServer,
) -> None:
    desk, phone = await browser(server), await browser(server)
    try:
        csrf = await login(desk, "alice")
        await login(phone, "alice")
        form = {"_csrf": csrf, "current": "not-my-password", "password": "brand-new-pass-7",
                "again": "brand-new-pass-7"}  # fmt: skip
        wrong = await desk.post("/account/password", data=form, allow_redirects=False)
        assert wrong.status == 400 and "current password is not right" in await wrong.text()
        assert await replay(server, cookie_of(phone)) == 200  # nothing changed
        differ = await desk.post("/account/password", allow_redirects=False,
                                 data={**form, "current": PASSWORD, "again": "other-pass-77"})
        assert differ.status == 400
        ok = await desk.post("/account/password", data={**form, "current": PASSWORD},
                             allow_redirects=False)  # fmt: skip
        assert ok.status == 303
        assert await replay(server, cookie_of(phone)) == 401  # the other session ended
        assert await replay(server, cookie_of(desk)) == 200  # this one goes on
        assert "Password changed" in await (await desk.get("/account?done=password")).text()
        fresh = await browser(server)
        try:
            await login(fresh, "alice", "brand-new-pass-7")
        finally:
            await fresh.close()
    finally:
        await desk.close()
        await phone.close()


async def test_every_role_has_my_account(server: TestServer) -> None:
    made = [await browser(server) for _ in range(3)]
    try:
        for c, name in zip(made, ("alice", "maria", "admin"), strict=True):
            await login(c, name)
            page = await c.get("/account")
            text = await page.text()
            assert page.status == 200 and "Change password" in text
            assert 'href="/account"' in await (await c.get("/")).text()
    finally:
        for c in made:
            await c.close()


# -- open event streams ------------------------------------------------------------------
async def test_deactivating_a_rep_closes_their_open_stream(
    server: TestServer, rt: Runtime, people: People
) -> None:
    alice, admin = await browser(server), await browser(server)
    try:
        await login(alice, "alice")
        stream = await open_events(alice)
        await pops(stream, rt, "before-1")  # the control: the stream delivers pops
        csrf = await login(admin, "admin")
        resp = await admin.post(f"/admin/users/{people.alice.id}/deactivate",
                                data={"_csrf": csrf}, allow_redirects=False)  # fmt: skip
        assert resp.status == 303
        await closes(stream)
        assert not [c for c in server.app[LIVE_HUB].clients if c.viewer.user_id == people.alice.id]
    finally:
        await alice.close()
        await admin.close()


async def test_logout_closes_that_sessions_stream_only(
    server: TestServer, rt: Runtime
) -> None:
    desk, phone = await browser(server), await browser(server)
    try:
        csrf = await login(desk, "alice")
        await login(phone, "alice")
        desk_stream, phone_stream = await open_events(desk), await open_events(phone)
        await desk.post("/logout", data={"_csrf": csrf}, allow_redirects=False)
        await closes(desk_stream)
        await pops(phone_stream, rt, "after-logout")
    finally:
        await desk.close()
        await phone.close()


async def test_password_role_and_extension_changes_close_streams(
    server: TestServer, rt: Runtime, people: People
) -> None:
    desk, phone, admin = [await browser(server) for _ in range(3)]
    try:
        csrf = await login(desk, "alice")
        await login(phone, "alice")
        desk_stream, phone_stream = await open_events(desk), await open_events(phone)
        form = {"_csrf": csrf, "current": PASSWORD, "password": "brand-new-pass-7",
                "again": "brand-new-pass-7"}  # fmt: skip
        assert (await desk.post("/account/password", data=form,
                                allow_redirects=False)).status == 303  # fmt: skip
        await closes(phone_stream)
        await pops(desk_stream, rt, "still-mine")  # the session that changed it goes on
        admin_csrf = await login(admin, "admin")
        resp = await admin.post(f"/admin/users/{people.alice.id}/role",
                                data={"_csrf": admin_csrf, "role": "manager"},
                                allow_redirects=False)  # fmt: skip
        assert resp.status == 303
        await closes(desk_stream)  # rebuilt on reconnect, for the new role
        again = await open_events(desk)
        await pops(again, rt, "as-manager")
        resp = await admin.post(f"/admin/users/{people.alice.id}/extensions",
                                data={"_csrf": admin_csrf, "extensions": "109"},
                                allow_redirects=False)  # fmt: skip
        assert resp.status == 303
        await closes(again)  # the stream was built for extension 101: no more pops for it
    finally:
        for c in (desk, phone, admin):
            await c.close()


async def test_the_heartbeat_closes_a_stream_whose_session_ended_elsewhere(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """A session ended without a ``streams_close`` reaching this process (a lost
    notification, a row ended by hand) is caught at the next heartbeat."""
    rt = await open_runtime(web_settings(tmp_path, server={"sse_heartbeat": 0.2}),
                            with_link=False)  # fmt: skip
    try:
        people = await make_people(rt)
        client: TestClient = await aiohttp_client(create_app(rt))
        await login(client, "alice")
        stream = await open_events(client)
        await pops(stream, rt, "alive")
        assert people.alice.id is not None
        await rt.store.end_web_sessions(people.alice.id, time.time())
        await closes(stream, within=2.0)
    finally:
        await rt.close()


# -- several processes on PostgreSQL -------------------------------------------------------
@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    from tests.crm.pg import session_database

    try:
        ctx = session_database()
        url = ctx.__enter__()
    except Exception as exc:
        pytest.fail(f"no PostgreSQL could be had: {exc!r}", pytrace=False)
    try:
        yield url
    finally:
        ctx.__exit__(None, None, None)


@pytest.mark.postgres
async def test_sessions_end_in_every_process_on_postgresql(
    pg_database: str, tmp_path: Path
) -> None:
    """Two web processes (two runtimes, one PostgreSQL schema, the fan-out between them):
    a logout on one kills the cookie on the other, and deactivating a rep on one closes
    the rep's stream open on the other long before any heartbeat."""
    import uuid

    url = f"{pg_database}?schema=sess_{uuid.uuid4().hex[:10]}"
    runtimes: list[Runtime] = []
    servers: list[TestServer] = []
    clients: list[TestClient] = []
    try:
        for n in (1, 2):
            settings = web_settings(tmp_path / f"p{n}", database={"url": url},
                                    server={"secret_key": "one-key-for-every-process",
                                            "sse_heartbeat": 60.0})  # fmt: skip
            runtimes.append(await open_runtime(settings, with_link=False))
            srv = TestServer(create_app(runtimes[-1]))
            await srv.start_server()
            servers.append(srv)
        people = await make_people(runtimes[0])
        one, two = servers

        alice = TestClient(one)
        await alice.start_server()
        clients.append(alice)
        csrf = await login(alice, "alice")
        cookie = cookie_of(alice)
        assert await replay(two, cookie) == 200  # one login, good in every process
        await alice.post("/logout", data={"_csrf": csrf}, allow_redirects=False)
        assert await replay(two, cookie) == 401

        rep = TestClient(two)
        await rep.start_server()
        clients.append(rep)
        await login(rep, "alice")
        stream = await open_events(rep)
        admin = TestClient(one)
        await admin.start_server()
        clients.append(admin)
        admin_csrf = await login(admin, "admin")
        resp = await admin.post(f"/admin/users/{people.alice.id}/deactivate",
                                data={"_csrf": admin_csrf}, allow_redirects=False)  # fmt: skip
        assert resp.status == 303
        await closes(stream, within=5.0)
    finally:
        for c in clients:
            await c.close()
        for srv in servers:
            await srv.close()
        for r in runtimes:
            await r.close()
