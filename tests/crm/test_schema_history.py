"""Shipped migrations are history: on both engines they must still build, catalogue entry
by catalogue entry, the schema that was shipped.

``schema_history.json`` is the catalogue the migrations up to its ``version`` left when
they were still two hand-kept files per version (SQLite's ``sqlite_master`` text verbatim;
PostgreSQL's columns, constraints, indexes, triggers and functions).  An edit to a shipped
migration, or to a placeholder's expansion in ``crm.store.schema_dialect``, that changes
what an older database has fails here: databases migrated before the edit would differ
from those migrated after it.  ``describe_schema`` (``test_schema_parity.py``) compares
the engines with each other; this compares each engine with its own past."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import crm.store.postgres
import crm.store.sqlite
from crm.store import open_store
from crm.store.migrations import migrations_for
from crm.store.postgres import split_url

HISTORY = Path(__file__).with_name("schema_history.json")


async def sqlite_catalogue(path: Path) -> list[list[Any]]:
    """Every schema object SQLite keeps, with the text it keeps for it."""
    import aiosqlite

    async with aiosqlite.connect(path) as db:
        cur = await db.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        )
        return [list(r) for r in await cur.fetchall()]


_PG_QUERIES = {
    "columns": "SELECT table_name, ordinal_position, column_name, data_type, column_default, "
    "is_nullable, is_identity, identity_generation FROM information_schema.columns "
    "WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
    "constraints": "SELECT t.relname, k.conname, k.contype::text, pg_get_constraintdef(k.oid) "
    "FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid "
    "WHERE t.relnamespace = $1::regnamespace ORDER BY t.relname, k.conname",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = $1 "
    "ORDER BY tablename, indexname",
    "triggers": "SELECT t.relname, g.tgname, pg_get_triggerdef(g.oid) FROM pg_trigger g "
    "JOIN pg_class t ON t.oid = g.tgrelid WHERE t.relnamespace = $1::regnamespace "
    "AND NOT g.tgisinternal ORDER BY t.relname, g.tgname",
    "functions": "SELECT p.proname, l.lanname, pg_get_function_result(p.oid), p.prosrc "
    "FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
    "WHERE p.pronamespace = $1::regnamespace ORDER BY p.proname",
}


async def postgres_catalogue(url: str) -> dict[str, list[list[Any]]]:
    """Every schema object PostgreSQL keeps in the URL's schema, the schema's name taken out."""
    dsn, schema = split_url(url)
    assert schema
    conn = await asyncpg.connect(dsn)
    try:
        out = {}
        for part, sql in _PG_QUERIES.items():
            rows = await conn.fetch(sql, schema)
            out[part] = [
                [v.replace(f"{schema}.", "") if isinstance(v, str) else v for v in r] for r in rows
            ]
        return out
    finally:
        await conn.close()


async def catalogue(engine: str, tmp_path: Path, pg_database: str) -> Any:
    """The catalogue of a new database migrated by today's migrations (all of them)."""
    if engine == "sqlite":
        path = tmp_path / "history.db"
        store = await open_store(f"sqlite:///{path}")
        await store.close()
        return await sqlite_catalogue(path)
    url = f"{pg_database}?schema=t_{uuid.uuid4().hex[:12]}"
    store = await open_store(url)
    await store.close()
    return await postgres_catalogue(url)


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_shipped_migrations_build_the_shipped_schema(
    engine: str, tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = json.loads(HISTORY.read_text(encoding="utf-8"))
    shipped = [m for m in migrations_for(engine) if m.version <= history["version"]]
    assert shipped[-1].version == history["version"]
    module = crm.store.sqlite if engine == "sqlite" else crm.store.postgres
    monkeypatch.setattr(module, "migrations_for", lambda dialect: shipped)
    found = json.loads(json.dumps(await catalogue(engine, tmp_path, pg_database)))
    expected = history[engine]
    if engine == "sqlite":
        assert [r[:3] for r in found] == [r[:3] for r in expected]
        for got, want in zip(found, expected, strict=True):
            assert got == want, got[1]
    else:
        for part in _PG_QUERIES:
            assert found[part] == expected[part], part
