"""Logging in and out, sessions, CSRF and the login rate limit, as a browser meets them."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from yarl import URL

from web.runtime import Runtime
from web.security import SESSION_COOKIE

from .conftest import PASSWORD, People, csrf_of, login


async def test_pages_need_a_login(client: TestClient, people: People) -> None:
    resp = await client.get("/calls?x=1", allow_redirects=False)
    assert resp.status == 302
    target = URL(resp.headers["Location"])
    assert target.path == "/login" and target.query["next"] == "/calls?x=1"
    api = await client.get("/api/v1/calls")
    assert api.status == 401
    assert (await api.json())["error"]["status"] == 401


async def test_login_sets_a_safe_cookie_and_logout_ends_it(
    client: TestClient, people: People
) -> None:
    token = await csrf_of(client)
    resp = await client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "_csrf": token, "next": "//evil.example"},
        allow_redirects=False,
    )
    assert resp.status == 302
    assert resp.headers["Location"] == "/"
    cookie = resp.headers["Set-Cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    home = await client.get("/")
    assert "Alice Rep" in await home.text()
    token = await csrf_of(client, "/")
    old = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    out = await client.post("/logout", data={"_csrf": token}, allow_redirects=False)
    assert out.status == 302
    again = await client.get("/", allow_redirects=False)
    assert again.status == 302
    # not only dropped by this browser: a copy of the old cookie is dead on the server too
    client.session.cookie_jar.clear()
    replayed = await client.get("/api/v1/me", headers={"Cookie": f"{SESSION_COOKIE}={old}"})
    assert replayed.status == 401


async def test_wrong_password_and_rate_limit(client: TestClient, people: People) -> None:
    token = await csrf_of(client)
    for _ in range(5):
        resp = await client.post(
            "/login", data={"username": "alice", "password": "nope", "_csrf": token}
        )
        assert resp.status == 401
        assert "Wrong username or password" in await resp.text()
    resp = await client.post(
        "/login", data={"username": "alice", "password": PASSWORD, "_csrf": token}
    )
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in await resp.text()


async def test_login_and_logout_need_the_csrf_token(client: TestClient, people: People) -> None:
    await csrf_of(client)
    resp = await client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert resp.status == 403
    assert "CSRF" in await resp.text()
    await login(client, "alice")
    out = await client.post("/logout", data={"_csrf": "forged"}, allow_redirects=False)
    assert out.status == 403
    assert (await client.get("/", allow_redirects=False)).status == 200


async def test_password_change_and_deactivation_end_sessions(
    client: TestClient, rt: Runtime, people: People
) -> None:
    await login(client, "alice")
    assert (await client.get("/", allow_redirects=False)).status == 200
    assert people.alice.id is not None
    await rt.service.set_password(people.alice.id, "another-pass-9", actor="admin")
    assert (await client.get("/", allow_redirects=False)).status == 302
    await login(client, "alice", "another-pass-9")
    assert (await client.get("/", allow_redirects=False)).status == 200
    await rt.service.deactivate_user(people.alice.id, actor="admin")
    assert (await client.get("/", allow_redirects=False)).status == 302


async def test_security_headers_and_escaped_errors(client: TestClient, people: People) -> None:
    await login(client, "alice")
    resp = await client.get("/no-such-page-<script>")
    assert resp.status == 404
    assert "<script>" not in await resp.text()
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_health_is_public(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["link"] == "not configured"
