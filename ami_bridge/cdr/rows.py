"""CDR rows as Asterisk writes them: cdr_csv's Master.csv lines, the ``cdr`` table of
cdr_pgsql / cdr_adaptive_odbc, cdr_manager's ``Cdr`` events; read and written (the replay
PBX writes Master.csv with ``csv_line``).  Times are POSIX seconds; the PBX writes them in
its local time zone, which the caller names."""

from __future__ import annotations

import csv
import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

CSV_COLUMNS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
    "uniqueid", "userfield",
)  # fmt: skip
"""cdr_csv's columns with ``loguniqueid`` and ``loguserfield`` (the defaults); with
``newcdrcolumns`` three more follow: peeraccount, linkedid, sequence."""
NEW_COLUMNS = ("peeraccount", "linkedid", "sequence")
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, slots=True)
class CdrRow:
    """One CDR row; times are POSIX seconds (UTC), ``answer`` None when not answered."""

    accountcode: str
    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    start: float
    answer: float | None
    end: float
    duration: int
    billsec: int
    disposition: str
    amaflags: str
    uniqueid: str
    userfield: str
    linkedid: str = ""
    sequence: int | None = None
    peeraccount: str = ""


# ----------------------------------------------------------------------- reading rows


def parse_time(text: str | None, tz: _dt.tzinfo) -> float | None:
    """A CDR time (``2026-11-22 09:54:54`` in the PBX's zone) as POSIX seconds."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    try:  # fromisoformat reads "2026-11-22 09:54:54" ten times faster than strptime
        moment = _dt.datetime.fromisoformat(text[:19])
    except ValueError:
        return None
    if moment.tzinfo is not None:
        return None
    return moment.replace(tzinfo=tz).timestamp()


def format_time(ts: float | None, tz: _dt.tzinfo) -> str:
    """The inverse of ``parse_time`` ("" for None), as cdr_csv writes it."""
    if ts is None:
        return ""
    return _dt.datetime.fromtimestamp(ts, tz=tz).strftime(DATE_FORMAT)


def zone(name: str) -> _dt.tzinfo:
    """The PBX's time zone by name ("UTC", "Europe/Berlin"); a ValueError names a bad one."""
    if name.upper() in ("UTC", "GMT", "Z"):
        return _dt.UTC
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _int(text: Any) -> int:
    try:
        return int(str(text).strip() or 0)
    except ValueError:
        return 0


def row_from_fields(fields: Sequence[str], tz: _dt.tzinfo) -> CdrRow | None:
    """A Master.csv record (its fields) as a row; None when it is not one (another
    number of fields, durations that are not numbers, no start time or uniqueid)."""
    if len(fields) not in (len(CSV_COLUMNS), len(CSV_COLUMNS) + len(NEW_COLUMNS)):
        return None  # e.g. a line cut short by a crash, with the next one glued to it
    values = dict(zip(CSV_COLUMNS, fields, strict=False))
    values.update(zip(NEW_COLUMNS, fields[len(CSV_COLUMNS) :], strict=False))
    if not all(values[k].strip().lstrip("-").isdigit() for k in ("duration", "billsec")):
        return None
    return row_from_mapping(values, tz)


def row_from_mapping(values: Mapping[str, Any], tz: _dt.tzinfo) -> CdrRow | None:
    """A row from named columns: a Master.csv record, or a row of the ``cdr`` table in
    either layout (``calldate`` as cdr_pgsql's classic table has it, or ``start``,
    ``answer``, ``end`` as Asterisk's alembic scripts create it).  Table times may be
    datetimes (naive: the PBX's zone) or strings."""

    def when(key: str) -> float | None:
        value = values.get(key)
        if isinstance(value, _dt.datetime):
            moment = value if value.tzinfo is not None else value.replace(tzinfo=tz)
            return moment.timestamp()
        return parse_time(None if value is None else str(value), tz)

    def text(key: str) -> str:
        value = values.get(key)
        return "" if value is None else str(value)

    start = when("start")
    if start is None:
        start = when("calldate")
    if start is None:
        return None
    duration = _int(values.get("duration"))
    billsec = _int(values.get("billsec"))
    end = when("end")
    if end is None:
        end = start + duration
    answer = when("answer")
    if "answer" not in values and billsec > 0:
        answer = end - billsec  # the classic table keeps no answer time
    uniqueid = text("uniqueid").strip()
    if not uniqueid:
        return None
    seq = values.get("sequence")
    return CdrRow(
        accountcode=text("accountcode"),
        src=text("src"),
        dst=text("dst"),
        dcontext=text("dcontext"),
        clid=text("clid"),
        channel=text("channel"),
        dstchannel=text("dstchannel"),
        lastapp=text("lastapp"),
        lastdata=text("lastdata"),
        start=start,
        answer=answer,
        end=max(end, start),
        duration=duration,
        billsec=billsec,
        disposition=text("disposition").strip().upper(),
        amaflags=text("amaflags"),
        uniqueid=uniqueid,
        userfield=text("userfield"),
        linkedid=text("linkedid").strip(),
        sequence=None if seq in (None, "") else _int(seq),
        peeraccount=text("peeraccount"),
    )


def parse_line(line: str, tz: _dt.tzinfo) -> CdrRow | None:
    """One Master.csv line (cdr_csv quotes every text field, doubling quotes inside)."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    try:
        fields = next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return None
    return row_from_fields(fields, tz)


def parse_lines(lines: Iterable[str], tz: _dt.tzinfo) -> list[CdrRow]:
    """Every readable row of ``lines``; unreadable lines are skipped (a garbled line in
    a PBX's file must not cost the rest)."""
    return [row for line in lines if (row := parse_line(line, tz)) is not None]


def csv_line(row: CdrRow, tz: _dt.tzinfo, new_columns: bool = False) -> str:
    """The line cdr_csv writes for ``row`` (with its trailing newline)."""

    def s(value: str) -> str:
        return '"' + value.replace('"', '""') + '"'

    def d(ts: float | None) -> str:
        return "" if ts is None else s(format_time(ts, tz))

    parts = [
        s(row.accountcode), s(row.src), s(row.dst), s(row.dcontext), s(row.clid),
        s(row.channel), s(row.dstchannel), s(row.lastapp), s(row.lastdata),
        d(row.start), d(row.answer), d(row.end), str(row.duration), str(row.billsec),
        s(row.disposition), s(row.amaflags), s(row.uniqueid), s(row.userfield),
    ]  # fmt: skip
    if new_columns:
        parts += [s(row.peeraccount), s(row.linkedid), str(row.sequence or 0)]
    return ",".join(parts) + "\n"


def row_from_cdr_event(msg: Mapping[str, Any], tz: _dt.tzinfo) -> CdrRow | None:
    """cdr_manager's ``Event: Cdr`` (the same record cdr_csv writes) as a row."""

    def get(key: str) -> str:
        value = msg.get(key)
        if isinstance(value, list):
            value = value[0] if value else ""
        return "" if value is None else str(value)

    return row_from_mapping(
        {
            "accountcode": get("AccountCode"),
            "src": get("Source"),
            "dst": get("Destination"),
            "dcontext": get("DestinationContext"),
            "clid": get("CallerID"),
            "channel": get("Channel"),
            "dstchannel": get("DestinationChannel"),
            "lastapp": get("LastApplication"),
            "lastdata": get("LastData"),
            "start": get("StartTime"),
            "answer": get("AnswerTime"),
            "end": get("EndTime"),
            "duration": get("Duration"),
            "billsec": get("BillableSeconds"),
            "disposition": get("Disposition"),
            "amaflags": get("AMAFlags"),
            "uniqueid": get("UniqueID") or get("Uniqueid"),
            "userfield": get("UserField"),
        },
        tz,
    )
