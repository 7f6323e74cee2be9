"""A small world for the security tests: two teams, each rep with a customer, calls, a
missed call (a callback), a lead and a recording, every object of alice's carrying a
marker string so a test can tell whether a response leaked it.

Teams: East = maria (manager) + alice (rep 101); West = otto (manager) + bob (rep 102).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from crm.models import Call, Contact, RecordingRow
from tests.clock import MIDDAY
from tests.crm.factories import inbound
from tests.web import conftest as web_conftest
from tests.web.conftest import People, csrf_of, login
from tests.web.test_recordings_http import ingest_capture_with_recording
from web.app import create_app
from web.runtime import Runtime

# the web tests' fixtures (a runtime on a fresh SQLite store, one user per role, a client)
rt = web_conftest.rt
people = web_conftest.people
client = web_conftest.client
NOW = MIDDAY
"""The runtime's clock (``build_world`` sets it): "minutes ago" is today at any hour."""
ALICE_MARK = "Zebulon Alicemark"
"""The name of alice's customer: must never reach bob, otto or nobody."""
BOB_MARK = "Yolanda Bobmark"


@dataclass
class World:
    people: People
    alice_contact: Contact
    bob_contact: Contact
    alice_lead: Contact
    alice_call: Call
    bob_call: Call
    alice_missed: Call
    recorded_call: Call
    recording: RecordingRow
    alice_task: int = 0
    """The callback task alice's missed call opened (hers: her contact's number)."""
    alice_note: int = 0
    """A note alice wrote on her call."""


async def build_world(rt: Runtime, people: People, media: Path) -> World:
    rt.clock.set(NOW)
    s = rt.service
    east = await s.create_team("East", "test")
    west = await s.create_team("West", "test")
    for user, team in ((people.manager, east), (people.alice, east),
                       (people.other_manager, west), (people.bob, west)):  # fmt: skip
        assert user.id is not None and team.id is not None
        await s.set_team(user.id, team.id, "test")
    alice_contact = await s.create_contact(ALICE_MARK, "Alicemark Corp", "z@example.com",
                                           ["+1 415 555 0199"], owner_id=people.alice.id)
    bob_contact = await s.create_contact(BOB_MARK, "Bobmark Ltd", "", ["+14155550204"],
                                         owner_id=people.bob.id)  # fmt: skip
    alice_lead = await s.create_contact("Lena Alicemark Lead", "", "", ["+14155550777"],
                                        owner_id=people.alice.id, lead_status="new")
    alice_call = (await rt.ingest.record(inbound("+14155550199", at=NOW - 300))).call
    bob_call = (
        await rt.ingest.record(inbound("+14155550204", answered_by="102", at=NOW - 200))
    ).call
    missed = (await rt.ingest.record(inbound("+14155550199", answered_by=None, at=NOW - 100))).call
    rt.settings["recordings"]["media_dir"] = str(media)
    recorded = await ingest_capture_with_recording(rt)
    task = await rt.store.callback_for_call(missed.id or 0)
    assert task is not None and task.id is not None and task.owner_id == people.alice.id
    note = await s.add_note(alice_call.id or 0, people.alice.id, "", "", ALICE_MARK)
    return World(people, alice_contact, bob_contact, alice_lead, alice_call, bob_call, missed,
                 recorded.call, recorded.rec, task.id, note.id or 0)  # fmt: skip


@pytest.fixture
async def world(rt: Runtime, people: People, tmp_path: Path) -> World:
    return await build_world(rt, people, tmp_path / "media")


@dataclass
class Clients:
    """One HTTP client per identity on one live server (separate cookie jars)."""

    server: TestServer
    by_name: dict[str, TestClient]
    csrf: dict[str, str]


@pytest.fixture
async def clients(rt: Runtime, world: World) -> AsyncIterator[Clients]:
    server = TestServer(create_app(rt))
    await server.start_server()
    made: dict[str, TestClient] = {}
    csrf: dict[str, str] = {}
    try:
        for name in ("nobody", "alice", "bob", "maria", "otto", "admin"):
            c = TestClient(server)
            await c.start_server()
            made[name] = c
            csrf[name] = await csrf_of(c) if name == "nobody" else await login(c, name)
        yield Clients(server, made, csrf)
    finally:
        for c in made.values():
            await c.close()
        await server.close()


def db_path(rt: Runtime) -> str:
    return str(rt.settings["database"]["url"]).removeprefix("sqlite:///")


def snapshot(rt: Runtime) -> list[str]:
    """Every row of the database as SQL text: "state unchanged" means this is equal.
    Web sessions are left out: a request notes its session's activity (at most once a
    minute), which is bookkeeping, not a change the request made."""
    con = sqlite3.connect(db_path(rt))
    try:
        return [line for line in con.iterdump()
                if not line.startswith('INSERT INTO "web_sessions"')]  # fmt: skip
    finally:
        con.close()


def text_of(body: Any) -> str:
    return body if isinstance(body, str) else repr(body)
