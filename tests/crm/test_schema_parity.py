"""The two engines' schemas, after every migration, are the same table by table, column by
column and index by index, but for the dialect differences named in
``crm.store.schema_shape``.  A migration written for one engine and forgotten (or written
differently) for the other fails here, not in a customer's PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from crm.store import open_store
from crm.store.schema_dialect import ENGINE_ONLY_TABLES
from crm.store.schema_shape import SchemaShape, parse_index_sql, type_family


async def _shapes(tmp_path: Path, pg_database: str) -> tuple[SchemaShape, SchemaShape]:
    lite = await open_store(f"sqlite:///{tmp_path / 'crm.db'}")
    pg = await open_store(f"{pg_database}?schema=t_{uuid.uuid4().hex[:12]}")
    try:
        shapes = await lite.describe_schema(), await pg.describe_schema()  # type: ignore[attr-defined]
    finally:
        await lite.close()
        await pg.close()
    for shape, engine in zip(shapes, ("sqlite", "postgres"), strict=True):
        for table, owner in ENGINE_ONLY_TABLES.items():
            assert (table in shape.tables) == (owner == engine), (table, engine)
            shape.tables.pop(table, None)
            shape.primary_keys.pop(table, None)
            for name in [n for n, i in shape.indexes.items() if i.table == table]:
                del shape.indexes[name]
    return shapes


async def test_same_tables_and_columns(tmp_path: Path, pg_database: str) -> None:
    lite, pg = await _shapes(tmp_path, pg_database)
    assert sorted(lite.tables) == sorted(pg.tables)
    assert len(lite.tables) > 15
    for table in lite.tables:
        assert lite.tables[table] == pg.tables[table], table


async def test_same_keys_and_indexes(tmp_path: Path, pg_database: str) -> None:
    lite, pg = await _shapes(tmp_path, pg_database)
    assert lite.primary_keys == pg.primary_keys
    assert lite.implicit_unique == pg.implicit_unique
    assert sorted(lite.indexes) == sorted(pg.indexes)
    for name, index in lite.indexes.items():
        assert index == pg.indexes[name], name
    assert any(len(i.columns) > 1 for i in lite.indexes.values())


def test_the_comparison_sees_a_difference() -> None:
    """The normalisation must not hide what matters: a type family, a key, an order."""
    assert type_family("DOUBLE PRECISION") == type_family("REAL")
    assert type_family("jsonb") == type_family("TEXT")
    assert type_family("TEXT") != type_family("INTEGER")
    with pytest.raises(ValueError):
        type_family("geometry")
    a = parse_index_sql("CREATE INDEX calls_user ON calls(user_id, started_at, id)")
    b = parse_index_sql("CREATE INDEX calls_user ON s.calls USING btree (user_id, started_at, id)")
    c = parse_index_sql("CREATE INDEX calls_user ON calls(started_at, user_id, id)")
    assert a == b
    assert a != c
    e1 = parse_index_sql(
        "CREATE UNIQUE INDEX x ON calls USING btree (COALESCE(pbx_link_id, (0)::bigint), linkedid)"
    )
    e2 = parse_index_sql("CREATE UNIQUE INDEX x ON calls(COALESCE(pbx_link_id, 0), linkedid)")
    assert e1[0][1] == e2[0][1]
    ci_lite = parse_index_sql("CREATE INDEX n ON contacts(name COLLATE NOCASE)")
    ci_pg = parse_index_sql(
        "CREATE INDEX n ON s.contacts USING btree (lower(name) text_pattern_ops)"
    )
    assert ci_lite == ci_pg != parse_index_sql("CREATE INDEX n ON contacts(name)")
    assert parse_index_sql("CREATE INDEX p ON t(a) WHERE a IS NOT NULL")[1] is True
