"""Every store test runs twice: on SQLite in tmp_path and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from crm.events import EventBus
from crm.ingest import Ingest
from crm.policy import LeadPolicy
from crm.services import CrmService
from crm.store import Store, open_store

from .pg import session_database

ENGINES = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    try:
        ctx = session_database()
        url = ctx.__enter__()
    except Exception as exc:
        pytest.fail(f"no PostgreSQL could be had for the store tests: {exc!r}", pytrace=False)
    try:
        yield url
    finally:
        ctx.__exit__(None, None, None)


@pytest.fixture(params=ENGINES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    base = request.getfixturevalue("pg_database")
    return f"{base}?schema=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = await open_store(store_url)
    try:
        yield s
    finally:
        await s.close()


class Clock:
    """A hand-moved clock so times in assertions are exact."""

    def __init__(self, now: float = 1_795_340_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def policy() -> LeadPolicy:
    return LeadPolicy(own_numbers=("5551000", "5551002", "5552000"), callback_sla_minutes=30)


@pytest.fixture
def service(store: Store, policy: LeadPolicy, clock: Clock) -> CrmService:
    return CrmService(store, policy, clock)


@pytest.fixture
def ingest(store: Store, policy: LeadPolicy, bus: EventBus, clock: Clock) -> Ingest:
    return Ingest(store, policy, bus, clock)
