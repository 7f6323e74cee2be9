"""The stored AMI secret goes only to the endpoint it was entered for.

An admin (or whoever holds an admin's session) types another host or port into the PBX
link form and presses "Test connection" or Save: with the secret field left empty the
stored secret must not be sent there.  A fake AMI server on another loopback port records
every Login it receives; the secret reaches it only after the admin types it again.  The
test button is also limited in rate, so it cannot scan ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp.test_utils import TestClient

from tests.web.conftest import People, login
from web.runtime import Runtime

STORED = "St0red-AMI-5ecret-41c9"


@dataclass
class FakeAmi:
    """Speaks just enough AMI to receive a Login (and refuses it)."""

    port: int = 0
    logins: list[dict[str, str]] = field(default_factory=list)
    connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            writer.write(b"Asterisk Call Manager/9.0.0\r\n")
            await writer.drain()
            while True:
                frame = await reader.readuntil(b"\r\n\r\n")
                fields = {}
                for line in frame.decode().split("\r\n"):
                    if ": " in line:
                        k, v = line.split(": ", 1)
                        fields[k] = v
                if fields.get("Action", "").lower() == "login":
                    self.logins.append(fields)
                    writer.write(b"Response: Error\r\nActionID: " + fields.get("ActionID", "")
                                 .encode() + b"\r\nMessage: Authentication failed\r\n\r\n")
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def secrets(self) -> list[str]:
        return [f.get("Secret", "") for f in self.logins]


@pytest.fixture
async def fake_ami() -> AsyncIterator[FakeAmi]:
    fake = FakeAmi()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    try:
        yield fake
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def admin(client: TestClient, rt: Runtime, people: People) -> tuple[TestClient, str]:
    await rt.service.put_setting("ami", {"host": "127.0.0.1", "port": 5038, "username": "crm",
                                         "secret": STORED, "tls": False}, "test")  # fmt: skip
    rt.settings["ami"].update(host="127.0.0.1", port=5038, username="crm", secret=STORED,
                              tls=False)  # fmt: skip
    return client, await login(client, "admin")


def _form(csrf: str, **changes: str) -> dict[str, str]:
    base = {"host": "127.0.0.1", "port": "5038", "username": "crm", "secret": "",
            "_csrf": csrf}  # fmt: skip
    return {**base, **changes}


async def test_the_stored_secret_is_never_sent_to_another_endpoint(
    admin: tuple[TestClient, str], rt: Runtime, fake_ami: FakeAmi
) -> None:
    client, csrf = admin
    port = str(fake_ami.port)
    for changes in ({"port": port}, {"port": port, "username": "other"},
                    {"port": port, "host": "localhost"}):  # fmt: skip
        resp = await client.post("/admin/pbx/test", data=_form(csrf, **changes))
        text = await resp.text()
        assert resp.status == 400, changes
        assert "enter the AMI secret again" in text
        resp = await client.post("/admin/pbx", data=_form(csrf, **changes),
                                 allow_redirects=False)  # fmt: skip
        assert resp.status == 400 and "Nothing was changed" in await resp.text()
    assert fake_ami.logins == [], "the stored secret went to a host the admin typed"
    assert fake_ami.connections == 0
    # nothing changed: settings in memory and in the database keep the old endpoint
    assert rt.settings["ami"]["port"] == 5038
    assert (await rt.service.get_setting("ami"))["port"] == 5038
    # TLS on: a change of endpoint too
    resp = await client.post("/admin/pbx/test", data=_form(csrf, tls="on"))
    assert resp.status == 400
    # with the secret typed again the admin may test and save the new endpoint
    typed = "Typed-Again-7d1e"
    resp = await client.post("/admin/pbx/test", data=_form(csrf, port=port, secret=typed))
    assert resp.status == 200 and "Login refused" in await resp.text()
    assert fake_ami.secrets() == [typed]
    resp = await client.post("/admin/pbx", data=_form(csrf, port=port, secret=typed),
                             allow_redirects=False)  # fmt: skip
    assert resp.status == 303
    assert rt.settings["ami"]["port"] == fake_ami.port


async def test_an_unchanged_endpoint_still_tests_with_the_stored_secret(
    admin: tuple[TestClient, str], rt: Runtime, fake_ami: FakeAmi
) -> None:
    """The control: the write-only secret stays usable where it was entered."""
    client, csrf = admin
    await rt.service.put_setting("ami", {"port": fake_ami.port}, "test")
    rt.settings["ami"]["port"] = fake_ami.port
    resp = await client.post("/admin/pbx/test", data=_form(csrf, port=str(fake_ami.port)))
    assert resp.status == 200
    assert fake_ami.secrets() == [STORED]


async def test_the_test_button_is_rate_limited(
    admin: tuple[TestClient, str], rt: Runtime, fake_ami: FakeAmi, people: People
) -> None:
    client, csrf = admin
    statuses = []
    for i in range(8):
        resp = await client.post("/admin/pbx/test",
                                 data=_form(csrf, port=str(fake_ami.port), secret=f"s{i}"))
        statuses.append(resp.status)
        if resp.status == 429:
            assert int(resp.headers["Retry-After"]) > 0
            assert "Too many connection tests" in await resp.text()
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 3
    assert fake_ami.connections == 5
    # the global limit: a second admin is stopped once all admins together used it up
    second = await rt.service.create_user("admin2", "Second Admin", "correct-horse-1", "admin")
    assert second.id is not None
    limits = rt.extras["probe_limits"]
    for _ in range(limits[1].limit - 5):
        limits[1].hit(None)
    other = TestClient(client.server)
    await other.start_server()
    try:
        csrf2 = await login(other, "admin2")
        resp = await other.post("/admin/pbx/test",
                                data=_form(csrf2, port=str(fake_ami.port), secret="x"))
        assert resp.status == 429
    finally:
        await other.close()
    assert fake_ami.connections == 5
