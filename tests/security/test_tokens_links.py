"""The smaller session-adjacent guarantees: API tokens may be read-only and may expire; a
recording link's signature names its action (a player link cannot download); an empty
suffix range is unsatisfiable; cookies are Secure unless the server is on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.web.conftest import PASSWORD, People, csrf_of, login, web_settings
from web.commands import COMMANDS
from web.recordings_view import sign
from web.runtime import Runtime
from web.security import cookie_secure

from .conftest import Clients, World


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- API tokens ------------------------------------------------------------------------
async def test_a_read_only_token_reads_and_never_writes(client: TestClient, rt: Runtime,
                                                        people: People) -> None:  # fmt: skip
    assert people.manager.id is not None
    token = await rt.service.create_api_token(people.manager.id, "reports", "test", scope="read")
    me = await client.get("/api/v1/me", headers=bearer(token))
    assert me.status == 200
    assert (await client.get("/api/v1/contacts", headers=bearer(token))).status == 200
    before = await rt.store.count_contacts()
    resp = await client.post("/api/v1/contacts", headers=bearer(token),
                             json={"name": "Should Not Exist", "phones": ["+14155550100"]})
    assert resp.status == 403 and "read-only" in (await resp.json())["error"]["message"]
    assert await rt.store.count_contacts() == before
    full = await rt.service.create_api_token(people.manager.id, "sync", "test")
    resp = await client.post("/api/v1/contacts", headers=bearer(full),
                             json={"name": "Made By Full Token", "phones": ["+14155550100"]})
    assert resp.status == 201  # the control: a full token may write


async def test_an_expired_token_stops_working(client: TestClient, rt: Runtime,
                                              people: People) -> None:  # fmt: skip
    clock = Clock()
    rt.service.clock = clock
    assert people.alice.id is not None
    token = await rt.service.create_api_token(people.alice.id, "short", "test",
                                              expires_at=clock.now + 3600)  # fmt: skip
    assert (await client.get("/api/v1/me", headers=bearer(token))).status == 200
    clock.now += 3601
    resp = await client.get("/api/v1/me", headers=bearer(token))
    assert resp.status == 401


async def test_the_admin_page_makes_read_only_expiring_tokens(
    client: TestClient, rt: Runtime, people: People
) -> None:
    csrf = await login(client, "admin")
    resp = await client.post("/admin/tokens", data={
        "_csrf": csrf, "user_id": str(people.manager.id), "name": "dashboard",
        "scope": "read", "expires_days": "30"})  # fmt: skip
    assert resp.status == 200
    page = await resp.text()
    assert "read only" in page
    [row] = await rt.service.list_api_tokens()
    assert row.scope == "read" and row.expires_at is not None
    assert 29.9 * 86400 < row.expires_at - time.time() < 30.1 * 86400
    bad = await client.post("/admin/tokens", data={
        "_csrf": csrf, "user_id": str(people.manager.id), "name": "x", "expires_days": "-1"})
    assert bad.status == 400


async def test_create_token_command_options(
    rt: Runtime, people: People, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    args = argparse.Namespace(username="maria", name="cli", read_only=True, expires_days=2.0)
    assert await COMMANDS["create-token"](rt.settings, args) == 0
    token = capsys.readouterr().out.strip()
    found = await rt.service.api_token_auth(token)
    assert found is not None
    user, row = found
    assert user.username == "maria" and row.scope == "read"
    assert row.expires_at is not None and 1.9 * 86400 < row.expires_at - time.time() < 2.1 * 86400


# -- recording links -------------------------------------------------------------------
async def _status(c: TestClient, url: str, **headers: str) -> int:
    resp = await c.get(url, headers=headers, allow_redirects=False)
    await resp.read()
    return resp.status


async def test_a_stream_link_cannot_download(clients: Clients, rt: Runtime,
                                             world: World) -> None:  # fmt: skip
    maria = clients.by_name["maria"]  # a manager: may download alice's recordings
    rec, uid = world.recording.id, world.people.manager.id
    assert rec is not None and uid is not None
    link = sign(rt, rec, uid)
    assert await _status(maria, link.url("download")) == 200  # the control
    stream_url = link.url("stream")
    as_download = stream_url.replace("/stream?", "/download?")
    assert as_download != stream_url
    assert await _status(maria, as_download) == 403
    assert await _status(maria, stream_url.replace("/stream?", "/waveform?")) == 403
    assert await _status(maria, link.url("waveform").replace("/waveform?", "/stream?")) == 403


async def test_an_empty_suffix_range_is_unsatisfiable(clients: Clients, rt: Runtime,
                                                      world: World) -> None:  # fmt: skip
    alice = clients.by_name["alice"]
    rec, uid = world.recording.id, world.people.alice.id
    assert rec is not None and uid is not None
    url = sign(rt, rec, uid).url("stream")
    resp = await alice.get(url, headers={"Range": "bytes=-0"})
    body = await resp.read()
    full = await (await alice.get(url)).read()
    assert len(full) > 2000
    assert resp.status == 416 and full[:64] not in body and full[-64:] not in body
    assert resp.headers["Content-Range"].startswith("bytes */")
    assert await _status(alice, url, Range="bytes=-10") == 206  # the control
    assert await _status(alice, url, Range="bytes=0-") == 206


# -- Secure cookies ----------------------------------------------------------------------
def test_secure_cookies_default_to_on_unless_on_loopback(tmp_path: Path) -> None:
    settings = web_settings(tmp_path)
    assert settings["server"]["secure_cookies"] == "auto"
    for host, secure in (("127.0.0.1", False), ("localhost", False), ("::1", False),
                         ("0.0.0.0", True), ("10.0.0.11", True), ("::", True),
                         ("crm.example.com", True)):  # fmt: skip
        settings["server"]["host"] = host
        assert cookie_secure(settings) is secure, host
    settings["server"]["host"] = "0.0.0.0"
    settings["server"]["secure_cookies"] = False  # an explicit choice is kept
    assert cookie_secure(settings) is False
    settings["server"]["host"], settings["server"]["secure_cookies"] = "127.0.0.1", True
    assert cookie_secure(settings) is True


async def test_a_server_on_the_network_sets_secure_cookies(
    client: TestClient, rt: Runtime, people: People, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from web.pages import auth

    monkeypatch.setattr(auth, "_warned_plain_http", False)
    token = await csrf_of(client)  # (a Secure anonymous cookie would not come back over http)
    rt.settings["server"]["host"] = "0.0.0.0"
    resp = await client.post("/login", data={"username": "alice", "password": PASSWORD,
                                             "_csrf": token}, allow_redirects=False)
    cookies = resp.headers.getall("Set-Cookie")
    session = [c for c in cookies if c.startswith("crm_session=")]
    assert session and "Secure" in session[0] and "HttpOnly" in session[0]
    # over plain HTTP such a cookie never comes back: the log says why logins "do not stick"
    assert "plain HTTP" in caplog.text
