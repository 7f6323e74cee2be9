"""Reading the PBX's CDR for a backfill (``crm.backfill``): cdr_csv's Master.csv, read
from its end back only as far as needed and on from where the last read stopped, following
rotation and waiting out a half-written line; or the ``cdr`` table cdr_pgsql /
cdr_adaptive_odbc fill in PostgreSQL.  Rows come back as ``ami_bridge.cdr.CdrRow``."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ami_bridge.cdr import CdrRow, parse_line, parse_lines, row_from_mapping

_ROTATED_SKIP = (".gz", ".bz2", ".xz", ".zst", ".zip")
_BLOCK = 64 * 1024


class CdrError(Exception):
    """The CDR could not be read; the message is for the admin."""


# ------------------------------------------------------------------ reading Master.csv


@dataclass(frozen=True, slots=True)
class CsvRead:
    rows: list[CdrRow]
    file_id: str
    offset: int
    """Where the next read may start: after the last whole line."""
    partial: bool
    """The file ended in the middle of a line (Asterisk writing it)."""
    rotated_from: str | None = None


def _file_id(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


def _tail_start(f: Any, size: int, since: float, lower: int, tz: _dt.tzinfo) -> int:
    """Where to start reading so every row that ended at/after ``since`` is read: walk
    back a block at a time until a whole line's call ended before ``since`` (rows are
    appended as calls end), never before ``lower``."""
    pos = size
    block = _BLOCK
    while pos > lower:
        pos = max(lower, pos - block)
        if pos == lower:
            return lower
        f.seek(pos)
        chunk = f.read(min(block, size - pos))
        nl = chunk.find(b"\n")
        if nl < 0:
            block *= 2  # a line longer than a block: look further back
            continue
        line_start = pos + nl + 1
        f.seek(line_start)
        line = f.readline()
        if line.endswith(b"\n"):
            row = parse_line(line.decode("utf-8", "replace"), tz)
            if row is not None and row.end < since:
                return line_start
    return lower


def _read_from(f: Any, start: int, size: int, tz: _dt.tzinfo, final: bool) -> tuple[
    list[CdrRow], int, bool
]:  # fmt: skip
    f.seek(start)
    data = f.read(size - start)
    cut = data.rfind(b"\n") + 1
    partial = cut < len(data)
    whole = data if final else data[:cut]
    lines = whole.decode("utf-8", "replace").splitlines()
    return parse_lines(lines, tz), start + (len(data) if final else cut), partial and not final


def _rotated_copy(path: Path, file_id: str) -> Path | None:
    """The file Master.csv was rotated to: the sibling with the old inode, else the
    newest sibling named like it (``Master.csv.1``, ``Master.csv-20261122``)."""
    try:
        siblings = [
            p
            for p in path.parent.iterdir()
            if p.name != path.name
            and p.name.startswith(path.name)
            and not p.name.endswith(_ROTATED_SKIP)
            and p.is_file()
        ]
    except OSError:
        return None
    for p in siblings:
        with contextlib.suppress(OSError):
            if _file_id(p.stat()) == file_id:
                return p
    return max(siblings, key=_mtime, default=None)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # rotated away again meanwhile
        return float("-inf")


def read_master_csv(
    path: str | Path,
    since: float,
    tz: _dt.tzinfo,
    file_id: str | None = None,
    offset: int | None = None,
) -> CsvRead:
    """The rows of ``path`` for calls that ended at/after ``since`` (and some before),
    reading only the tail of the file, never before ``offset`` when the file is the one
    last read (``file_id``).  Blocking: run it in an executor."""
    path = Path(path)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        if path.parent.is_dir():  # cdr_csv creates the file with the first call's row
            return CsvRead([], file_id or "", offset or 0, False)
        raise CdrError(f"CDR file {path} not found (no folder {path.parent})") from None
    except OSError as exc:
        raise CdrError(f"cannot read CDR file {path}: {exc.strerror or exc}") from None
    rows: list[CdrRow] = []
    rotated_from: str | None = None
    with f:
        st = os.fstat(f.fileno())
        current = _file_id(st)
        size = st.st_size
        same = file_id == current and offset is not None and offset <= size
        if file_id and not same:
            # Rotated (a new inode) or truncated in place: read the rest of the old file.
            old = _rotated_copy(path, file_id)
            if old is not None:
                with old.open("rb") as g:
                    ost = os.fstat(g.fileno())
                    lower = offset if _file_id(ost) == file_id and offset is not None else 0
                    lower = min(lower, ost.st_size)
                    start = _tail_start(g, ost.st_size, since, lower, tz)
                    rows += _read_from(g, start, ost.st_size, tz, final=True)[0]
                rotated_from = str(old)
        lower = offset if same and offset is not None else 0
        start = _tail_start(f, size, since, lower, tz)
        more, end, partial = _read_from(f, start, size, tz, final=False)
        rows += more
    return CsvRead(rows, current, end, partial, rotated_from)


# ---------------------------------------------------------------- reading a CDR table


def _quote_table(table: str) -> str:
    return ".".join(f'"{part}"' for part in table.split("."))


async def read_cdr_table(
    dsn: str, table: str, since: float, tz: _dt.tzinfo, max_call_seconds: float
) -> list[CdrRow]:
    """The rows of cdr_pgsql's (or cdr_adaptive_odbc's) table for calls that started at
    most ``max_call_seconds`` before ``since``, in either of its layouts (``calldate``,
    or ``start``/``answer``/``end``), with times as timestamps or text."""
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except Exception as exc:
        raise CdrError(f"cannot connect to the CDR database: {_scrub(brief(exc), dsn)}") from None
    try:
        schema, _, name = table.rpartition(".")
        cols = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = $1 AND (table_schema = $2 OR ($2 = '' AND "
            "table_schema = ANY(current_schemas(false))))",
            name,
            schema,
        )
        types = {r["column_name"]: r["data_type"] for r in cols}
        if not types:
            raise CdrError(f"the CDR table {table} does not exist")
        column = "start" if "start" in types else "calldate" if "calldate" in types else None
        if column is None or "uniqueid" not in types:
            raise CdrError(f"the table {table} has no start/calldate or uniqueid column")
        bound = _dt.datetime.fromtimestamp(since - max_call_seconds, tz=tz)
        kind = types[column]
        arg: Any
        if kind.startswith("timestamp with time zone"):
            arg = bound
        elif kind.startswith("timestamp"):
            arg = bound.replace(tzinfo=None)
        else:  # text: the PBX's DATE_FORMAT sorts as it reads
            arg = bound.strftime("%Y-%m-%d %H:%M:%S")
        records = await conn.fetch(
            f'SELECT * FROM {_quote_table(table)} WHERE "{column}" >= $1 ORDER BY "{column}"',
            arg,
        )
    except CdrError:
        raise
    except Exception as exc:
        raise CdrError(f"cannot read the CDR table {table}: {_scrub(brief(exc), dsn)}") from None
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
    rows = []
    for rec in records:
        values = dict(rec.items())
        if isinstance(values.get(column), _dt.datetime) and values[column].tzinfo is not None:
            values[column] = values[column].astimezone(tz).replace(tzinfo=None)
        row = row_from_mapping(values, tz)
        if row is not None:
            rows.append(row)
    return rows


def brief(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _scrub(text: str, dsn: str) -> str:
    """An error for the admin page and the log, without the DSN's password."""
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    text = text.replace(dsn, "the configured DSN")
    return text.replace(password, "********") if password else text
