"""The shape of the database schema, engine-neutral, so the two engines can be compared.

The migrations are written once for both engines, with the dialect differences named and
expanded in ``crm.store.schema_dialect``; this module reads back what each engine made,
so that a test can prove that the two schemas are the same table by table, column by
column and index by index, once each engine's way of echoing them is taken out:

* PostgreSQL ``bigint``/``integer``/``boolean`` and SQLite ``INTEGER`` are one family:
  SQLite keeps booleans as 0/1 integers.
* PostgreSQL ``double precision`` and SQLite ``REAL`` are one family (epoch seconds).
* PostgreSQL ``jsonb`` and SQLite ``TEXT`` holding JSON are one family ("text").
* Primary keys are named by each engine its own way (``t_pkey``, or none for SQLite's
  rowid alias) and are compared as a column list, not by name; the same for the implicit
  index of a ``UNIQUE`` column constraint.
* A case-insensitive index (``{{ci(x)}}`` in a migration) is ``x COLLATE NOCASE`` on
  SQLite and ``lower(x) text_pattern_ops`` on PostgreSQL: both read ``ci(x)``.
* Tables only one engine has, in ``schema_dialect.ENGINE_ONLY_TABLES``.
* An index on an expression is compared by its expression with whitespace, quoting and
  PostgreSQL's casts taken out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TYPE_FAMILIES: dict[str, str] = {
    "integer": "integer",
    "bigint": "integer",
    "smallint": "integer",
    "boolean": "integer",
    "real": "real",
    "double precision": "real",
    "numeric": "real",
    "text": "text",
    "character varying": "text",
    "jsonb": "text",
    "json": "text",
    "blob": "blob",
    "bytea": "blob",
}


def type_family(declared: str) -> str:
    """The family of a declared column type, as the two engines spell it."""
    base = declared.strip().lower().split("(")[0].strip()
    try:
        return TYPE_FAMILIES[base]
    except KeyError:
        raise ValueError(
            f"column type {declared!r} has no family: name it in TYPE_FAMILIES"
        ) from None


def normalise_expression(text: str) -> str:
    """An index column or expression without the noise each engine adds when it echoes it."""
    text = re.sub(r"::[a-z ]+(\[\])?", "", text.lower())
    text = re.sub(r"\((-?\d+(?:\.\d+)?|'[^']*')\)", r"\1", text.replace('"', ""))
    text = re.sub(r"\s+", "", text)
    text = re.sub(r"^(\w+)collatenocase$", r"ci(\1)", text)
    return re.sub(r"^lower\((\w+)\)(text_pattern_ops)?$", r"ci(\1)", text)


# Alike in shape to presence.facts.QueueView: small frozen records, not one thing.
@dataclass(frozen=True, order=True)
class ColumnShape:
    name: str
    family: str
    not_null: bool


@dataclass(frozen=True, order=True)
class IndexShape:
    table: str
    columns: tuple[str, ...]
    unique: bool
    partial: bool


@dataclass
class SchemaShape:
    tables: dict[str, tuple[ColumnShape, ...]] = field(default_factory=dict)
    primary_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    indexes: dict[str, IndexShape] = field(default_factory=dict)
    """Named indexes (created by a migration), by name."""
    implicit_unique: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    """(table, columns) of UNIQUE constraints, whose index the engine names itself."""


def split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses, each part stripped."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_index_sql(sql: str) -> tuple[tuple[str, ...], bool]:
    """The key list and partial-ness of a ``CREATE INDEX`` statement, as either engine echoes it."""
    match = re.search(r"\bON\s+[^\s(]+\s*(?:USING\s+\w+\s*)?\(", sql, re.IGNORECASE)
    if match is None:
        raise ValueError(f"not an index definition: {sql!r}")
    start = match.end()
    depth, end = 1, start
    while depth:
        depth += {"(": 1, ")": -1}.get(sql[end], 0)
        end += 1
    keys = tuple(normalise_expression(k) for k in split_top_level(sql[start : end - 1]))
    partial = re.search(r"\bWHERE\b", sql[end:], re.IGNORECASE) is not None
    return keys, partial
