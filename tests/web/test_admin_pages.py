"""The admin pages: only admins get in, every change needs the CSRF token and is
audited, the AMI secret never leaves the server, the test button says what happened,
and saved settings reach the running policy and the next startup."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from html import unescape

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from ami_bridge.replay_pbx import ReplayPbx
from tests.crm.factories import T0, inbound
from tests.paths import ASTERISK22
from web.pages.admin import apply_stored_settings
from web.runtime import Runtime, start_link

from .conftest import People, csrf_of, login

SECRET = "s3cr3t-Value-9f2c"
CAPTURE = ASTERISK22 / "01-inbound-answered" / "events.jsonl"


def admin_gets(people: People) -> list[str]:
    return [
        "/admin",
        "/admin/link-status",
        "/admin/settings",
        "/admin/users",
        f"/admin/users/{people.bob.id}",
        "/admin/extensions",
        "/admin/audit",
    ]


def admin_posts(people: People) -> list[tuple[str, dict[str, str]]]:
    bob = people.bob.id
    pbx = {"host": "127.0.0.1", "port": "5038", "username": "crm", "secret": "x" * 12}
    return [
        ("/admin/pbx", pbx),
        ("/admin/pbx/test", pbx),
        (
            "/admin/settings",
            {
                "default_region": "GB",
                "create_on": "never",
                "repeat_window_hours": "1",
                "default_owner": "",
                "callback_sla_minutes": "5",
            },
        ),
        (
            "/admin/users",
            {"username": "mallory", "display_name": "M", "password": "p" * 10, "role": "admin"},
        ),
        ("/admin/teams", {"name": "Evil"}),
        (f"/admin/users/{bob}/role", {"role": "admin"}),
        (f"/admin/users/{bob}/team", {"team_id": ""}),
        (f"/admin/users/{bob}/password", {"password": "hijacked-123"}),
        (f"/admin/users/{bob}/deactivate", {}),
        (f"/admin/users/{bob}/reactivate", {}),
        (f"/admin/users/{bob}/extensions", {"extensions": "199"}),
        (f"/admin/users/{bob}/reassign", {"to": str(people.alice.id)}),
    ]


def alert(html: str) -> str:
    match = re.search(r'role="alert"[^>]*>(.*?)</p>', html, re.S)
    return unescape(match.group(1)).strip() if match else ""


async def test_only_admins_get_in(client: TestClient, people: People) -> None:
    for who in ("alice", "maria"):
        token = await login(client, who)
        for path in admin_gets(people):
            assert (await client.get(path)).status == 403, (who, path)
        for path, data in admin_posts(people):
            resp = await client.post(path, data={**data, "_csrf": token})
            assert resp.status == 403, (who, path)
    await login(client, "admin")
    for path in admin_gets(people):
        assert (await client.get(path)).status == 200, path


async def test_every_admin_change_needs_the_csrf_token(
    client: TestClient, rt: Runtime, people: People
) -> None:
    await login(client, "admin")
    before = await rt.service.list_audit()
    for path, data in admin_posts(people):
        for token in (None, "forged-token"):
            form = data if token is None else {**data, "_csrf": token}
            resp = await client.post(path, data=form, allow_redirects=False)
            assert resp.status == 403, path
            assert "CSRF" in await resp.text()
    assert await rt.service.list_audit() == before
    bob = await rt.store.get_user(people.bob.id)
    assert bob is not None and bob.role == "rep" and bob.active and bob.extensions == ["102"]
    assert await rt.service.get_setting("ami") == {}
    assert await rt.store.get_user_by_username("mallory") is None


async def test_the_ami_secret_never_leaves_the_server(
    client: TestClient, rt: Runtime, people: People, caplog: pytest.LogCaptureFixture
) -> None:
    # our own code at DEBUG, libraries at the product's level (aiosqlite logs every SQL
    # parameter at DEBUG: the logging setup must keep it at INFO or above)
    caplog.set_level(logging.INFO)
    for name in ("web", "crm", "ami_bridge"):
        caplog.set_level(logging.DEBUG, logger=name)
    token = await login(client, "admin")
    pbx = {"host": "127.0.0.1", "port": "5038", "username": "crm", "tls": "on"}
    resp = await client.post("/admin/pbx", data={**pbx, "secret": SECRET, "_csrf": token})
    assert resp.status == 200 and "PBX link settings saved" in await resp.text()
    assert (await rt.service.get_setting("ami"))["secret"] == SECRET
    # the test button and a refused form answer without echoing it
    test = await client.post(
        "/admin/pbx/test", data={**pbx, "port": "1", "secret": SECRET, "_csrf": token}
    )
    bad = await client.post(
        "/admin/pbx", data={**pbx, "port": "99999", "secret": SECRET, "_csrf": token}
    )
    assert bad.status == 400 and "port" in alert(await bad.text())
    pages = [await test.text(), await bad.text()]
    for path in [*admin_gets(people), "/missed", "/reports", "/healthz"]:
        pages.append(await (await client.get(path)).text())
    for text in pages:
        assert SECRET not in text
    assert 'placeholder="unchanged"' in pages[2]
    assert SECRET not in caplog.text
    audit = await rt.service.list_audit(action="settings.changed")
    assert audit and SECRET not in repr([e.detail for e in audit])
    # an empty secret field keeps the stored secret for the same endpoint; another host
    # needs the secret typed again (tests/security/test_ami_secret_target.py)
    resp = await client.post("/admin/pbx", data={**pbx, "secret": "", "_csrf": token})
    assert resp.status == 200
    resp = await client.post(
        "/admin/pbx", data={**pbx, "host": "pbx.example.net", "secret": "", "_csrf": token}
    )
    assert resp.status == 400 and "enter the AMI secret again" in await resp.text()
    stored = await rt.service.get_setting("ami")
    assert stored["secret"] == SECRET and stored["host"] == "127.0.0.1"
    assert rt.settings["ami"]["secret"] == SECRET and rt.settings["ami"]["tls"] is True


async def test_test_connection_says_what_happened(
    client: TestClient, rt: Runtime, people: People
) -> None:
    pbx = ReplayPbx(CAPTURE, speed=0, paused=True, secret=SECRET)
    await pbx.start()
    try:
        token = await login(client, "admin")
        form = {"host": "127.0.0.1", "port": str(pbx.port), "username": "crm", "_csrf": token}
        ok = await (await client.post("/admin/pbx/test", data={**form, "secret": SECRET})).text()
        assert f"Connected to Asterisk at 127.0.0.1:{pbx.port} as crm" in ok
        assert 'class="alert ok probe"' in ok
        wrong = await client.post("/admin/pbx/test", data={**form, "secret": "not-it"})
        assert "Login refused: wrong user or secret" in await wrong.text()
        # nothing was saved by testing
        assert await rt.service.get_setting("ami") == {}
    finally:
        await pbx.close()
    gone = await client.post("/admin/pbx/test", data={**form, "secret": SECRET})
    text = await gone.text()
    assert f"No answer from 127.0.0.1:{pbx.port}" in text and 'class="alert error probe"' in text


async def test_saving_the_pbx_settings_restarts_the_link(
    client: TestClient, rt: Runtime, people: People
) -> None:
    pbx = ReplayPbx(CAPTURE, speed=0, paused=True, secret=SECRET)
    await pbx.start()
    try:
        rt.settings["ami"].update(host="127.0.0.1", port=pbx.port, username="crm", secret="old")
        old = start_link(rt)
        token = await login(client, "admin")
        html = await (await client.get("/admin")).text()
        assert 'data-field="state"' in html
        form = {
            "host": "127.0.0.1",
            "port": str(pbx.port),
            "username": "crm",
            "secret": SECRET,
            "_csrf": token,
        }
        resp = await client.post("/admin/pbx", data=form)
        assert "the link is reconnecting" in await resp.text()
        assert rt.link is not None and rt.link is not old
        status = await rt.link.wait_state("connected")
        assert status.endpoint == f"127.0.0.1:{pbx.port}"
        live = await (await client.get("/admin/link-status")).json()
        assert live["state"] == "connected" and "secret" not in str(live)
        page = await (await client.get("/admin")).text()
        assert 'class="state connected"' in page
        assert not re.search(r'name="tracker_process"[^>]*checked', page)
        assert rt.link._worker is None

        # the admin moves the tracking to a process of its own, and back
        resp = await client.post("/admin/pbx", data={**form, "tracker_process": "on"})
        assert "the link is reconnecting" in await resp.text()
        assert rt.settings["ami"]["tracker_process"] is True
        assert rt.link is not None and rt.link._worker is not None
        await rt.link.wait_state("connected")
        assert rt.link._worker.pid != os.getpid()
        page = await (await client.get("/admin")).text()
        assert re.search(r'name="tracker_process"[^>]*checked', page)
        stored = await rt.service.get_setting("ami")
        assert stored["tracker_process"] is True
        await client.post("/admin/pbx", data=form)
        assert rt.link is not None and rt.link._worker is None
        assert rt.settings["ami"]["tracker_process"] is False
    finally:
        await pbx.close()


async def test_settings_reach_the_running_policy(
    client: TestClient, rt: Runtime, people: People
) -> None:
    token = await login(client, "admin")
    form = {
        "default_region": "GB",
        "create_on": "missed_only",
        "repeat_window_hours": "24",
        "default_owner": "bob",
        "callback_sla_minutes": "15",
        "_csrf": token,
    }
    bad = await client.post("/admin/settings", data={**form, "default_region": "XX"})
    assert bad.status == 400 and "not an ISO region code" in alert(await bad.text())
    bad = await client.post("/admin/settings", data={**form, "callback_sla_minutes": "-5"})
    assert bad.status == 400 and "callback SLA" in alert(await bad.text())
    assert rt.service.policy.callback_sla_minutes == 60.0
    resp = await client.post("/admin/settings", data=form)
    assert resp.status == 200 and "Settings saved" in await resp.text()
    for policy in (rt.service.policy, rt.ingest.policy):
        assert policy.callback_sla_minutes == 15.0
        assert policy.create_on == "missed_only" and policy.repeat_window_hours == 24.0
        assert policy.default_region == "GB" and policy.default_owner_id == people.bob.id
    assert rt.service.policy is rt.ingest.policy
    changed = await rt.service.list_audit(action="settings.changed")
    assert {e.target for e in changed} == {"numbers", "leads"}
    # numbers now render in the new region: a UK number is shown nationally
    await rt.service.create_contact("Brit", phones=["+442079460123"])
    await rt.ingest.handle(inbound("+442079460123", answered_by=None, at=T0))
    html = await (await client.get("/missed?from=2026-11-21&to=2026-11-23")).text()
    assert "020 7946 0123" in html


async def test_stored_settings_override_the_config_at_startup(rt: Runtime, people: People) -> None:
    s = rt.service
    await s.put_setting("ami", {"host": "pbx.internal", "port": 5039, "secret": SECRET}, "admin")
    await s.put_setting("leads", {"callback_sla_minutes": 5.0, "default_owner": "alice"}, "admin")
    await s.put_setting("numbers", {"default_region": "DE"}, "admin")
    await apply_stored_settings(rt)
    assert rt.settings["ami"]["host"] == "pbx.internal" and rt.settings["ami"]["port"] == 5039
    assert rt.settings["ami"]["username"] == "crm"  # not stored: the config's value stays
    assert rt.service.policy.callback_sla_minutes == 5.0
    assert rt.ingest.policy.default_owner_id == people.alice.id
    assert rt.ingest.policy.default_region == "DE"


async def test_users_and_roles(client: TestClient, rt: Runtime, people: People) -> None:
    token = await login(client, "admin")
    new = {
        "username": "carol",
        "display_name": "Carol Rep",
        "password": "carol-pass-1",
        "role": "rep",
        "extensions": "105, 106",
        "_csrf": token,
    }
    resp = await client.post("/admin/users", data=new)
    assert resp.status == 200 and "User created" in await resp.text()
    carol = await rt.store.get_user_by_username("carol")
    assert carol is not None and carol.extensions == ["105", "106"]
    dup = await client.post("/admin/users", data={**new, "extensions": ""})
    assert dup.status == 400 and "taken" in alert(await dup.text())
    assert "carol-pass-1" not in await dup.text()
    listing = await (await client.get("/admin/users")).text()
    assert 'data-user="carol"' in listing

    base = f"/admin/users/{people.bob.id}"
    await client.post(f"{base}/role", data={"role": "manager", "_csrf": token})
    assert (await rt.store.get_user(people.bob.id)).role == "manager"  # type: ignore[union-attr]
    me = await client.post(
        f"/admin/users/{people.admin.id}/role", data={"role": "rep", "_csrf": token}
    )
    assert me.status == 400 and "own admin role" in alert(await me.text())
    me = await client.post(f"/admin/users/{people.admin.id}/deactivate", data={"_csrf": token})
    assert me.status == 400 and "deactivate yourself" in alert(await me.text())

    await client.post(f"{base}/password", data={"password": "new-bob-pass-1", "_csrf": token})
    assert await rt.service.authenticate("bob", "new-bob-pass-1") is not None
    short = await client.post(f"{base}/password", data={"password": "short", "_csrf": token})
    assert short.status == 400 and "at least 8" in alert(await short.text())

    contact = await rt.service.create_contact(
        "Bob's", phones=["+14155550777"], owner_id=people.bob.id
    )
    resp = await client.post(f"{base}/reassign", data={"to": str(people.alice.id), "_csrf": token})
    assert "Handed over 1 contacts" in await resp.text()
    assert (await rt.service.get_contact(contact.id)).owner_id == people.alice.id  # type: ignore[arg-type]

    await client.post(f"{base}/deactivate", data={"_csrf": token})
    assert await rt.service.authenticate("bob", "new-bob-pass-1") is None
    await client.post(f"{base}/reactivate", data={"_csrf": token})
    assert await rt.service.authenticate("bob", "new-bob-pass-1") is not None

    actions = {e.action for e in await rt.service.list_audit(actor="admin")}
    assert {
        "user.created",
        "user.role",
        "user.password_changed",
        "user.reassigned",
        "user.deactivated",
        "user.reactivated",
    } <= actions


async def test_teams_scope_a_manager(client: TestClient, rt: Runtime, people: People) -> None:
    token = await login(client, "admin")
    await client.post("/admin/teams", data={"name": "North", "_csrf": token})
    team = (await rt.service.list_teams())[0]
    for who in (people.manager, people.alice):
        await client.post(
            f"/admin/users/{who.id}/team", data={"team_id": str(team.id), "_csrf": token}
        )
    scope = await rt.service.scope_for(await rt.store.get_user(people.manager.id))  # type: ignore[arg-type]
    assert scope.user_ids == {people.manager.id, people.alice.id}


async def test_extensions_offer_what_the_pbx_uses(
    client: TestClient, rt: Runtime, people: People
) -> None:
    await rt.ingest.handle(inbound("+14155550201", answered_by="107", at=T0, rang=("101", "107")))
    token = await login(client, "admin")
    html = await (await client.get("/admin/extensions")).text()
    assert 'class="chip free" data-ext="107"' in html
    assert 'class="chip " data-ext="101"' in html  # alice has it: not offered
    assert '<option value="107">' in html
    resp = await client.post(
        f"/admin/users/{people.bob.id}/extensions",
        data={"extensions": "102, 107", "back": "extensions", "_csrf": token},
    )
    assert "Extensions saved" in await resp.text()
    assert (await rt.store.get_user(people.bob.id)).extensions == ["102", "107"]  # type: ignore[union-attr]
    taken = await client.post(
        f"/admin/users/{people.bob.id}/extensions",
        data={"extensions": "101", "back": "extensions", "_csrf": token},
    )
    assert taken.status == 400 and "belongs to alice" in alert(await taken.text())


async def test_audit_log_filters_and_pages(client: TestClient, rt: Runtime, people: People) -> None:
    for i in range(60):
        await rt.service.audit("maria", "contact.exported", f"batch:{i}")
    await rt.service.audit("admin", "settings.changed", "leads", {"changed": ["x"]})
    await login(client, "admin")
    html = await (await client.get("/admin/audit?action=contact.exported")).text()
    assert html.count('data-action="contact.exported"') == 50
    assert 'data-action="settings.changed"' not in html
    nxt = re.search(r'rel="next" href="([^"]+)"', html)
    assert nxt
    older = await (await client.get(unescape(nxt.group(1)))).text()
    assert older.count('data-action="contact.exported"') == 10
    assert "batch:0<" in older and "batch:59<" not in older
    by_admin = await (await client.get("/admin/audit?actor=admin")).text()
    assert 'data-action="settings.changed"' in by_admin
    assert 'data-action="contact.exported"' not in by_admin


async def test_csrf_token_on_admin_forms(client: TestClient, people: People) -> None:
    await login(client, "admin")
    token = await csrf_of(client, "/admin")
    for path in ("/admin", "/admin/settings", "/admin/users", f"/admin/users/{people.bob.id}"):
        html = await (await client.get(path)).text()
        forms = re.findall(r'<form[^>]*method="post".*?</form>', html, re.S)
        assert forms, path
        for form in forms:
            assert f'name="_csrf" value="{token}"' in form, path


async def test_admin_sees_calls_held_while_the_database_refuses_them(
    client: TestClient, rt: Runtime, people: People
) -> None:
    """A store that refuses writes: the finished call is held, the admin page and the
    health check say so, and it is written once the store accepts again."""
    from web.runtime import holding_sink

    refusing = True
    real = rt.ingest.handle

    async def flaky(fact: object) -> object:
        if refusing:
            raise OSError("database is locked")
        return await real(fact)  # type: ignore[arg-type]

    rt.ingest.handle = flaky  # type: ignore[method-assign]
    sink = holding_sink(rt)
    record = inbound("+14155550142", answered_by=None)
    await sink(record)
    assert sink.status.held == 1
    await login(client, "admin")
    page = await (await client.get("/admin")).text()
    assert "1 finished call waiting to be written" in page
    assert "database is locked" in page
    health = await (await client.get("/healthz")).json()
    assert health["ok"] is False and health["calls_waiting_for_database"] == 1
    refusing = False
    sink.retry_now()
    for _ in range(100):
        if sink.status.held == 0:
            break
        await asyncio.sleep(0.05)
    assert await rt.store.get_call_by_linkedid(record.linkedid) is not None
    assert "All finished calls written." in await (await client.get("/admin")).text()


async def test_admin_creates_shows_once_and_revokes_an_api_token(
    client: TestClient, rt: Runtime, people: People
) -> None:
    csrf = await login(client, "admin")
    form = {"_csrf": csrf, "user_id": str(people.alice.id), "name": "sync"}
    resp = await client.post("/admin/tokens", data=form)
    page = await resp.text()
    assert resp.status == 200 and "shown only once" in page
    token = re.search(r"<code>(\S+)</code>", page.split('id="new-token"')[1]).group(1)  # type: ignore[union-attr]
    bearer = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as integration:  # no session cookie: the token alone
        api = await integration.get(client.make_url("/api/v1/me"), headers=bearer)
        assert (await api.json())["username"] == "alice"
    listing = await (await client.get("/admin/tokens")).text()
    assert "sync" in listing and token not in listing
    [row] = await rt.service.list_api_tokens()
    out = await client.post(f"/admin/tokens/{row.id}/revoke", data={"_csrf": csrf})
    assert "Token revoked" in await out.text()
    async with aiohttp.ClientSession() as integration:
        again = await integration.get(client.make_url("/api/v1/me"), headers=bearer)
        assert again.status == 401
    bad = await client.post("/admin/tokens", data={"_csrf": csrf, "user_id": "x", "name": "n"})
    assert bad.status == 400


async def test_a_pbx_too_old_is_named_on_the_admin_page_and_in_the_health_check(
    client: TestClient, rt: Runtime, people: People
) -> None:
    """An Asterisk before 13 is refused by the bridge: the admin reads why and which
    version is needed, and monitoring sees the health check fail."""
    from ami_bridge.facts import PbxIncompatible
    from ami_bridge.link import LinkStatus
    from ami_bridge.tracker.tracker import NEEDED_ASTERISK

    message = PbxIncompatible("AMI 1.3", NEEDED_ASTERISK, 0.0).message
    status = LinkStatus("connected", 0.0, "pbx.example:5038", None, 3, 0.0, message, 0,
                        pbx_too_old=message)  # fmt: skip

    class OldPbxLink:
        async def stop(self, **_: object) -> None:
            return None

    OldPbxLink.status = status  # type: ignore[attr-defined]
    rt.link = OldPbxLink()  # type: ignore[assignment]
    try:
        health = await (await client.get("/healthz")).json()
        assert health["ok"] is False and "Asterisk 13 or newer" in health["pbx"]
        await login(client, "admin")
        page = await (await client.get("/admin")).text()
        assert "PBX too old." in page and "Asterisk 13 or newer" in page and "AMI 1.3" in page
    finally:
        rt.link = None
