"""Versioned schema migrations: ``NNNN_name.sql`` for both engines, or
``NNNN_name.sqlite.sql`` / ``NNNN_name.postgres.sql`` where the dialects differ.
Applied versions are recorded in ``schema_version``; a version is never edited once
shipped, a change is a new file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^(\d{4})_(\w+?)(?:\.(sqlite|postgres))?\.sql$")
HERE = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations_for(dialect: str, folder: Path = HERE) -> list[Migration]:
    """The scripts for ``dialect`` in version order, a dialect file beating a shared one."""
    chosen: dict[int, tuple[bool, str, Path]] = {}
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if not match:
            continue
        version, name, variant = int(match[1]), match[2], match[3]
        if variant not in (None, dialect):
            continue
        specific = variant is not None
        if version not in chosen or (specific and not chosen[version][0]):
            chosen[version] = (specific, name, path)
    return [
        Migration(version, name, path.read_text(encoding="utf-8"))
        for version, (_, name, path) in sorted(chosen.items())
    ]
