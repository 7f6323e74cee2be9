"""The AMI secret stays secret; guessing passwords is slowed down; recording links work
only for the user they were made for, only until they expire, only as issued.

The secret is checked where it could leak: every page (GET) of every role, every API
answer, the admin's audit log, everything logged at DEBUG while the link logs in to a
(replay) PBX with it and while the admin changes and tests it, and ``repr`` of the
runtime and of the settings copy meant for showing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from ami_bridge.replay_pbx import ReplayPbx
from config.settings import redacted
from tests.paths import ASTERISK22
from tests.web.conftest import PASSWORD, People, csrf_of, login, web_settings
from web.app import create_app
from web.recordings_view import sign
from web.runtime import Runtime, open_runtime, start_link
from web.security import LoginLimiter

from .conftest import Clients, World, build_world
from .test_every_route import ROLE_OF, send, targets, url_for

SECRET = "S3cret-AMI-e7f1c0d2"
NEW_SECRET = "N3w-AMI-9b8a7c6d"


@pytest.fixture
async def pbx_rt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Runtime]:
    """A runtime whose link logs in to a replay PBX with ``SECRET``, all logs captured."""
    caplog.set_level(logging.DEBUG)
    pbx = ReplayPbx(ASTERISK22 / "01-inbound-answered" / "events.jsonl", speed=0, paused=True,
                    secret=SECRET)  # fmt: skip
    await pbx.start()
    settings = web_settings(tmp_path, ami={"host": "127.0.0.1", "port": pbx.port,
                                           "username": "crm", "secret": SECRET, "tls": False})
    rt = await open_runtime(settings, with_link=False)
    rt.pbx = pbx
    try:
        link = start_link(rt)
        await link.wait_state("connected")
        yield rt
    finally:
        await rt.close()


async def _clients(rt: Runtime) -> tuple[TestServer, dict[str, TestClient], dict[str, str]]:
    server = TestServer(create_app(rt))
    await server.start_server()
    made, csrf = {}, {}
    for name in ROLE_OF:
        made[name] = TestClient(server)
        await made[name].start_server()
        csrf[name] = await csrf_of(made[name]) if name == "nobody" else await login(made[name],
                                                                                    name)
    return server, made, csrf


async def test_the_ami_secret_appears_nowhere(pbx_rt: Runtime, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    rt = pbx_rt
    from tests.web.conftest import make_people

    world = await build_world(rt, await make_people(rt), tmp_path / "media")
    server, made, csrf = await _clients(rt)
    try:
        admin = made["admin"]
        # the admin changes the secret (the link restarts and logs in with it) and tests it
        form = {"host": "127.0.0.1", "port": str(rt.settings["ami"]["port"]),
                "username": "crm", "secret": NEW_SECRET, "_csrf": csrf["admin"]}  # fmt: skip
        resp = await admin.post("/admin/pbx", data=form, allow_redirects=False)
        assert resp.status == 303
        assert rt.settings["ami"]["secret"] == NEW_SECRET
        for secret in ("", "wrong-" + NEW_SECRET, NEW_SECRET):
            resp = await admin.post("/admin/pbx/test", data={**form, "secret": secret})
            assert NEW_SECRET not in await resp.text() and SECRET not in await resp.text()
        app = server.app
        assert app is not None
        seen: list[str] = []
        for who, c in made.items():
            for t in targets(app):
                if t.method != "GET":
                    continue
                url = url_for(app, rt, world, t, who)
                status, body, headers = await send(c, "GET", url, None)
                seen.append(f"{who} GET {url} {status} {dict(headers)} {body}")
        for path in ("/api/v1/me", "/api/v1/contacts", "/api/v1/calls", "/api/v1/leads",
                     "/api/v1/callbacks", "/healthz", "/admin/link-status"):  # fmt: skip
            seen.append(await (await admin.get(path)).text())
        seen += [repr(a) for a in await rt.service.list_audit(limit=1000)]
        pages = "\n".join(seen)
        leaking = sorted({f"{r.name} ({r.pathname.rsplit('/', 1)[-1]}:{r.lineno})"
                          for r in caplog.records
                          if SECRET in r.getMessage() or NEW_SECRET in r.getMessage()})
        for secret in (SECRET, NEW_SECRET):
            assert secret not in pages, "the AMI secret is on a page or in an API answer"
            assert secret not in repr(redacted(rt.settings))
        # Regression: aiosqlite logs every statement with its parameters at DEBUG, and the
        # settings row holds the secret (crm/store/sqlite.py now keeps logger "aiosqlite"
        # at INFO).
        assert leaking == [], "the AMI secret is in the DEBUG log"
    finally:
        for c in made.values():
            await c.close()
        await server.close()


async def test_repr_of_the_runtime_hides_the_secret(pbx_rt: Runtime) -> None:
    """Regression (web/runtime.py, ``Runtime`` was a plain dataclass): its repr prints
    ``settings`` with ``ami.secret`` in clear, so any ``log.debug("%r", rt)``, a
    traceback's locals (pytest, Sentry) or a REPL session shows the PBX password."""
    assert SECRET not in repr(pbx_rt)
    # The link manager (a dataclass since issue 18) holds every link's ``[ami]`` settings.
    manager = pbx_rt.extras["link_manager"]
    assert SECRET not in repr(manager)
    assert SECRET not in repr(manager.configs)
    assert SECRET not in repr(list(manager.running.values()))


# -- login rate limit ------------------------------------------------------------------
async def _attempt(c: TestClient, username: str, password: str) -> aiohttp.ClientResponse:
    token = await csrf_of(c)
    return await c.post("/login", data={"username": username, "password": password,
                                        "_csrf": token, "next": "/"}, allow_redirects=False)


async def test_guessing_one_users_password_is_stopped(client: TestClient, rt: Runtime,
                                                      people: People) -> None:  # fmt: skip
    limiter: LoginLimiter = rt.limiter
    for _ in range(limiter.attempts):
        assert (await _attempt(client, "alice", "wrong")).status == 401
    blocked = await _attempt(client, "alice", PASSWORD)  # even the right password
    assert blocked.status == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= limiter.delay + 1
    assert "Too many failed attempts" in await blocked.text()
    assert "crm_session" not in {m.key for m in client.session.cookie_jar}


async def test_guessing_from_one_address_does_not_lock_the_user_out_elsewhere(
    rt: Runtime, people: People
) -> None:
    """Five wrong passwords for alice from 127.0.0.1 slow down 127.0.0.1 only: alice
    herself, at 127.0.0.2, logs in (a per-user lock would let anyone lock anyone out)."""
    server = TestServer(create_app(rt), host="127.0.0.1")
    await server.start_server()
    first = TestClient(server)
    await first.start_server()
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    other = TestClient(server, connector=connector)
    await other.start_server()
    try:
        for _ in range(rt.limiter.attempts):
            assert (await _attempt(first, "alice", "wrong")).status == 401
        assert (await _attempt(first, "alice", PASSWORD)).status == 429
        assert (await _attempt(other, "alice", PASSWORD)).status == 302
    finally:
        await first.close()
        await other.close()
        await server.close()


async def test_one_address_guessing_many_users_is_stopped(client: TestClient, rt: Runtime,
                                                          people: People) -> None:  # fmt: skip
    for i in range(rt.limiter.address_attempts):
        assert (await _attempt(client, f"user{i}", "wrong")).status == 401
    blocked = await _attempt(client, "alice", PASSWORD)
    assert blocked.status == 429 and int(blocked.headers["Retry-After"]) > 0


# -- recording links -------------------------------------------------------------------
async def _status(c: TestClient, url: str) -> int:
    resp = await c.get(url, allow_redirects=False)
    await resp.read()
    return resp.status


async def test_recording_links_are_personal_expire_and_cannot_be_edited(
    clients: Clients, rt: Runtime, world: World
) -> None:
    alice, bob, nobody = (clients.by_name[n] for n in ("alice", "bob", "nobody"))
    rec, a, b = world.recording.id, world.people.alice.id, world.people.bob.id
    assert rec is not None and a is not None and b is not None
    link = sign(rt, rec, a)
    url = link.url("stream")
    assert await _status(alice, url) == 200  # the control: the link works for alice
    assert await _status(bob, url) == 403  # alice's link, bob's session
    assert await _status(bob, sign(rt, rec, b).url("stream")) == 403  # bob's own link
    anon = await nobody.get(url, allow_redirects=False)
    assert anon.status == 302 and anon.headers["Location"].startswith("/login")
    old = sign(rt, rec, a, now=time.time() - 3 * 3600)
    assert await _status(alice, old.url("stream")) == 403  # expired
    tampered: dict[str, Any] = {
        "signature": url.replace(f"s={link.sig}", f"s={link.sig[:-2]}AA"),
        "later expiry": url.replace(f"e={link.expires}", f"e={link.expires + 86400}"),
        "other recording": url.replace(f"/recordings/{rec}/", f"/recordings/{rec + 1}/"),
        "other user": url.replace(f"u={a}", f"u={b}"),
        "no signature": url.split("&s=")[0],
    }
    for what, bad in tampered.items():
        assert bad != url, what
        assert await _status(alice, bad) in (403, 404), what
        if what == "other user":
            assert await _status(bob, bad) == 403, what
    for action in ("waveform", "download"):
        assert await _status(bob, link.url(action)) == 403
        assert await _status(nobody, link.url(action)) in (302, 401)
