"""A PostgreSQL database for the scale-out tests (never a skip: fail when none can be had);
each test gets its own schema in it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.crm.pg import session_database


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    try:
        ctx = session_database()
        url = ctx.__enter__()
    except Exception as exc:
        pytest.fail(f"no PostgreSQL could be had for the scale-out tests: {exc!r}", pytrace=False)
    try:
        yield url
    finally:
        ctx.__exit__(None, None, None)


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A fresh schema of the session database."""
    return f"{pg_database}?schema=s_{uuid.uuid4().hex[:12]}"
