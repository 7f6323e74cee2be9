"""A running web application on a fresh SQLite store, with one user per role.

``login(client, username)`` returns the logged-in client's CSRF token, read from the page
the way a browser gets it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import load_settings
from crm.models import User
from web.app import create_app
from web.runtime import Runtime, open_runtime

PASSWORD = "correct-horse-1"
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


@dataclass
class People:
    admin: User
    manager: User
    alice: User
    bob: User
    other_manager: User


def web_settings(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    settings = load_settings(env={}, demo=True)
    settings["database"]["url"] = f"sqlite:///{tmp_path / 'crm.db'}"
    settings["server"]["key_file"] = str(tmp_path / "secret.key")
    settings["recordings"]["directory"] = str(tmp_path / "monitor")
    for section, values in overrides.items():
        settings.setdefault(section, {}).update(values)
    return settings


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(web_settings(tmp_path), with_link=False)
    try:
        yield runtime
    finally:
        await runtime.close()


async def make_people(rt: Runtime) -> People:
    """One user per role, and a manager of another team, for web and browser tests."""
    s = rt.service
    return People(
        admin=await s.create_user("admin", "Ada Admin", PASSWORD, "admin"),
        manager=await s.create_user("maria", "Maria Manager", PASSWORD, "manager"),
        alice=await s.create_user("alice", "Alice Rep", PASSWORD, "rep", ["101"]),
        bob=await s.create_user("bob", "Bob Rep", PASSWORD, "rep", ["102"]),
        other_manager=await s.create_user("otto", "Otto Manager", PASSWORD, "manager"),
    )


@pytest.fixture
async def people(rt: Runtime) -> People:
    return await make_people(rt)


@pytest.fixture
async def client(aiohttp_client: Any, rt: Runtime) -> TestClient:
    return await aiohttp_client(create_app(rt))


async def csrf_of(client: TestClient, path: str = "/login") -> str:
    resp = await client.get(path)
    match = CSRF_RE.search(await resp.text())
    assert match, f"no CSRF token on {path}"
    return match.group(1)


async def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    token = await csrf_of(client)
    resp = await client.post(
        "/login",
        data={"username": username, "password": password, "_csrf": token, "next": "/"},
        allow_redirects=False,
    )
    assert resp.status == 302, await resp.text()
    return await csrf_of(client, "/")
