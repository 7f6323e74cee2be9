"""Hostile CSV files: too big, too many rows, the wrong encoding, binary, NUL bytes, only
a header, ragged rows; and formula cells (CSV injection) that must come out of every
export inert.  The import is all or nothing: a refused file changes nothing.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
import tracemalloc

import pytest
from aiohttp.test_utils import TestClient

from crm import csv_io
from crm.csv_io import ImportFileError, export_contacts, import_contacts
from tests.crm.factories import inbound
from tests.web.conftest import People, login
from web.runtime import Runtime

from .conftest import db_path, snapshot

FORMULAS = ["=cmd|' /C calc'!A0", "+1-2", "@SUM(1)", "-2+3", "=HYPERLINK(\"http://x\",\"y\")",
            "\t=1+1", "\r=1+1"]  # fmt: skip


async def _count(rt: Runtime) -> int:
    con = sqlite3.connect(db_path(rt))
    try:
        return int(con.execute("SELECT count(*) FROM contacts").fetchone()[0])
    finally:
        con.close()


async def _refused(rt: Runtime, data: bytes, words: str) -> str:
    before = snapshot(rt)
    with pytest.raises(ImportFileError) as info:
        await import_contacts(rt.service, data, "admin")
    message = str(info.value)
    assert words.lower() in message.lower(), message
    assert snapshot(rt) == before, "a refused file changed the database"
    return message


async def test_a_20_mb_file_is_refused_early_with_a_clear_message(rt: Runtime) -> None:
    row = b"Some Name,Some Company,+14155550100,tag\n"
    data = b"name,company,phone,tags\n" + row * (20_000_000 // len(row))
    tracemalloc.start()
    try:
        message = await _refused(rt, data, "limit")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "MB" in message and "split" in message
    assert peak < len(data) // 4, f"refusing a {len(data)} B file used {peak} B more memory"


async def test_too_many_rows_is_refused_and_nothing_written(rt: Runtime) -> None:
    lines = [b"phone"] + [b"+1415%07d" % i for i in range(csv_io.MAX_ROWS + 1)]
    data = b"\n".join(lines)
    assert len(data) < csv_io.MAX_BYTES
    await _refused(rt, data, "rows")
    assert await _count(rt) == 0


async def test_a_large_good_file_is_imported_whole(rt: Runtime) -> None:
    n = 20_000
    data = "name,company,phone\n" + "".join(
        f"Person {i},Co {i % 97},+1415{i:07d}\n" for i in range(n)
    )
    report = await import_contacts(rt.service, data.encode(), "admin")
    assert report.applied and report.created == n and not report.rejected
    assert await _count(rt) == n


@pytest.mark.parametrize(("name", "data", "words"), [
    ("latin-1", "name,phone\nJürgen Müller,+14155550100\n".encode("latin-1"), "UTF-8"),
    ("cp1252 quotes", "name,phone\n\u201cBoss\u201d,+14155550100\n".encode("cp1252"), "UTF-8"),
    ("binary", bytes(range(256)) * 64, "not a text file"),
    ("png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not a text file"),
    ("NUL in a cell", b"name,phone\nab\x00c,+14155550100\n", "not a text file"),
    ("empty", b"", "empty"),
    ("no header", b"+14155550100,+14155550101\n", "first line"),
    ("duplicate columns", b"name,name\na,b\n", "same name"),
])  # fmt: skip
async def test_unreadable_files_are_refused_with_what_to_do(name: str, data: bytes, words: str,
                                                            rt: Runtime) -> None:  # fmt: skip
    await _refused(rt, data, words)


async def test_utf16_with_bom_is_imported_or_refused_clearly(rt: Runtime) -> None:
    """Excel's "Unicode text" is UTF-16 with a BOM: either read correctly, or refused
    with a message that says which format to save as; never imported as mojibake."""
    data = "name,phone\nJürgen Müller,+14155550100\n".encode("utf-16")
    try:
        report = await import_contacts(rt.service, data, "admin")
    except ImportFileError as exc:
        assert "UTF-8" in str(exc)
        assert await _count(rt) == 0
    else:
        assert report.applied
        [c] = await rt.service.list_contacts(None, 10)
        assert c.name == "Jürgen Müller"


async def test_a_nul_byte_far_into_the_file_is_not_stored(rt: Runtime) -> None:
    """The NUL sniff looks at the first 64 KiB only.  A NUL later must not reach the
    store either (PostgreSQL refuses NUL in text: a 500 there; SQLite stores it)."""
    rows = "".join(f"Person {i},+1415{i:07d}\n" for i in range(4000))
    data = ("name,phone\n" + rows).encode() + b"Nul\x00Person,+14155559999\n"
    assert data.index(b"\x00") > 65536
    try:
        await import_contacts(rt.service, data, "admin")
    except ImportFileError:
        assert await _count(rt) == 0
        return
    names = [c.name for c in await rt.service.list_contacts(None, 10_000)]
    assert not any("\x00" in n for n in names), "a NUL byte was stored in a contact name"


async def test_header_only_imports_nothing_and_says_so(rt: Runtime) -> None:
    report = await import_contacts(rt.service, b"name,company,phone\n", "admin")
    assert report.rows == 0 and report.created == 0 and not report.rejected
    assert await _count(rt) == 0


async def test_ragged_rows_are_named_and_nothing_written(rt: Runtime) -> None:
    data = b"name,phone\nAnn,+14155550100\nBen,+14155550101,extra,cells\nCy\n"
    before = snapshot(rt)
    report = await import_contacts(rt.service, data, "admin")
    assert not report.applied
    assert [p.line for p in report.rejected] == [3]
    assert "more cells" in report.rejected[0].reason
    assert snapshot(rt) == before


async def test_formula_cells_are_inert_on_export_and_round_trip(rt: Runtime) -> None:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["name", "company", "phone", "tags", "note"])
    for i, f in enumerate(FORMULAS):
        w.writerow([f, f, f"+1415555{i:04d}", f.strip(), f])
    report = await import_contacts(rt.service, out.getvalue().encode(), "admin")
    assert report.applied and report.created == len(FORMULAS), report.rejected
    exported = io.StringIO()
    await export_contacts(rt.service, exported, "admin")
    rows = list(csv.reader(io.StringIO(exported.getvalue())))
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(csv_io.FORMULA_STARTS), f"live formula: {cell!r}"
    names = {r[1] for r in rows[1:]}
    assert names == {"'" + f.strip() for f in FORMULAS}
    # and the export imports back unchanged (the guard is undone on the way in)
    before = {c.name for c in await rt.service.list_contacts(None, 100)}
    again = await import_contacts(rt.service, exported.getvalue().encode(), "admin")
    assert again.applied and again.created == 0 and again.merged == len(FORMULAS)
    assert {c.name for c in await rt.service.list_contacts(None, 100)} == before


async def test_missed_calls_csv_neutralises_caller_id_formulas(client: TestClient, rt: Runtime,
                                                               people: People) -> None:
    """Caller-ID names come from outside; they name leads; leads appear in /missed.csv."""
    now = time.time()
    for i, f in enumerate(FORMULAS):
        await rt.ingest.record(inbound(f"+1415666{i:04d}", answered_by=None, at=now - 600 + i,
                                       caller_name=f))  # fmt: skip
    await login(client, "admin")
    resp = await client.get("/missed.csv")
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert len(rows) == len(FORMULAS) + 1
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(csv_io.FORMULA_STARTS), f"live formula: {cell!r}"
    assert any("cmd|" in cell for row in rows for cell in row), "the names are in the file"
