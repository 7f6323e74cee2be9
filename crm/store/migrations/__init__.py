"""Versioned schema migrations: one file per version, ``NNNN_name.sql``, written once for
both engines (the placeholders where their SQL differs are named and expanded in
``crm.store.schema_dialect``).  Applied versions are recorded in ``schema_version``; a
version is never edited once shipped, a change is a new file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..schema_dialect import MigrationSyntaxError, expand

_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
_PER_ENGINE = re.compile(r"^\d{4}_\w+\.(sqlite|postgres)\.sql$")
HERE = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations_for(dialect: str, folder: Path = HERE) -> list[Migration]:
    """The scripts for ``dialect`` in version order, each expanded from its one file."""
    found: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        if _PER_ENGINE.match(path.name):
            # The old two-file style: silently skipping it would lose the migration.
            raise MigrationSyntaxError(
                f"{path.name}: a migration is one file for both engines, NNNN_name.sql, "
                "with placeholders where they differ (crm/store/schema_dialect.py)"
            )
        match = _NAME.match(path.name)
        if not match:
            continue
        version = int(match[1])
        if version in found:
            raise MigrationSyntaxError(f"{path.name}: version {version} is taken already")
        try:
            sql = expand(path.read_text(encoding="utf-8"), dialect)
        except MigrationSyntaxError as exc:
            raise MigrationSyntaxError(f"{path.name}: {exc}") from None
        found[version] = Migration(version, match[2], sql)
    return [found[v] for v in sorted(found)]
