"""Asterisk's own CDR rows -> the same call facts the tracker emits, for calls no link saw.

A call that starts and ends while no process holds the AMI link is never seen by the
tracker; the PBX still writes its CDR (``cdr_csv``'s Master.csv, or the ``cdr`` table of
``cdr_pgsql`` / ``cdr_adaptive_odbc``).  This module is pure: rows in, ``CallRecord``
out (``source="cdr"``), no I/O, no clock.  Reading files and tables is ``crm.backfill``'s.

How Asterisk writes CDR (see tests/fixtures/asterisk-22/README.md), and what follows:

* One row per dialled leg, all carrying the party-A channel's uniqueid: a ring group
  gives an ANSWERED row and a NO ANSWER row, a missed call two NO ANSWER rows plus one for
  the ``Hangup`` application.  Rows sharing the party-A uniqueid are one call, and for a
  plain call that uniqueid is the call's Linkedid, the key the tracker uses too.
* Transfers and Local channels add rows whose party A is another channel.  Without a
  ``linkedid`` column (Master.csv by default) they are tied to their call through the
  channels they share (a transferer's second channel, the two halves ``;1``/``;2`` of a
  Local pair), and the call keeps the oldest uniqueid, which is its Linkedid.
* The userfield of the party-A row is ``partyA;partyB``: ``;file.wav`` when the
  recording's name was set on the answering channel.
* What CDR cannot tell (who hung up an answered call, transfers' details) is left None or
  empty rather than guessed.
"""

from __future__ import annotations

import csv
import datetime as _dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from .facts import CallRecord, Direction, HangupBy, Outcome
from .numbers import is_withheld, to_e164
from .profile import PbxProfile
from .tracker.model import split_channel_name, uniqueid_order

CSV_COLUMNS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
    "uniqueid", "userfield",
)  # fmt: skip
"""cdr_csv's columns with ``loguniqueid`` and ``loguserfield`` (the defaults); with
``newcdrcolumns`` three more follow: peeraccount, linkedid, sequence."""
NEW_COLUMNS = ("peeraccount", "linkedid", "sequence")
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_CLID = re.compile(r'^\s*"?(?P<name>.*?)"?\s*<(?P<num>[^>]*)>\s*$')
# Seconds two rows' lifetimes may be apart and still be the same channel (whole-second
# CDR times); beyond it a channel name seen again belongs to another call (the PBX
# restarted and its counters began anew).
_SAME_CHANNEL_SLACK = 2.0


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


# ------------------------------------------------------------------- rows into calls


def _channel_key(name: str) -> str:
    """Both halves of a Local pair are one node: ``Local/x@ctx-0001;1`` and ``;2``."""
    name = name.strip()
    if name.startswith("Local/") and name[-2:] in (";1", ";2"):
        return name[:-2]
    return name


class _Groups:
    """Union-find over row indexes."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def group_rows(rows: Sequence[CdrRow]) -> list[list[CdrRow]]:
    """Rows into calls, as Asterisk groups them: by ``linkedid`` when the rows carry it,
    else by party-A uniqueid, joined through the channels rows share (transfers, Local
    pairs) while those channels lived at the same time.  Rows keep their order."""
    groups = _Groups(len(rows))
    first_by_key: dict[str, int] = {}
    for i, row in enumerate(rows):
        key = row.linkedid or row.uniqueid
        if key in first_by_key:
            groups.union(first_by_key[key], i)
        else:
            first_by_key[key] = i
    if not all(r.linkedid for r in rows):
        by_channel: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            for name in {_channel_key(row.channel), _channel_key(row.dstchannel)}:
                if name:
                    by_channel.setdefault(name, []).append(i)
        for members in by_channel.values():
            for a_pos, a in enumerate(members):
                for b in members[a_pos + 1 :]:
                    ra, rb = rows[a], rows[b]
                    if (
                        ra.start <= rb.end + _SAME_CHANNEL_SLACK
                        and rb.start <= ra.end + _SAME_CHANNEL_SLACK
                    ):
                        groups.union(a, b)
    out: dict[int, list[CdrRow]] = {}
    for i, row in enumerate(rows):
        out.setdefault(groups.find(i), []).append(row)
    return list(out.values())


def _clid_name(clid: str) -> str | None:
    m = _CLID.match(clid)
    if m is None:
        return None
    name = m.group("name").strip()
    return name or None


def _dial_timeout(lastdata: str) -> float | None:
    """Dial(targets,timeout,options): the timeout, if the row's application was Dial."""
    parts = lastdata.split(",")
    if len(parts) < 2:
        return None
    try:
        return float(parts[1])
    except ValueError:
        return None


class CdrCalls:
    """Turns CDR rows into ``CallRecord``s with one PBX's number rules (the tracker's
    ``PbxProfile``: trunks, extension pattern, own numbers)."""

    def __init__(self, profile: PbxProfile | None = None) -> None:
        self.profile = profile or PbxProfile()

    # -- who is who

    def _endpoint(self, channel: str) -> tuple[str, str]:
        tech, resource, _base = split_channel_name(channel) if channel else ("", "", "")
        return tech, resource

    def _is_trunk(self, channel: str, context: str = "") -> bool:
        tech, resource = self._endpoint(channel)
        if not channel or tech == "Local":
            return False
        return self.profile.is_trunk(resource, context)

    def _extension(self, channel: str, cid: str = "") -> str | None:
        tech, resource = self._endpoint(channel)
        if not channel or tech == "Local" or self._is_trunk(channel):
            return None
        mapped = self.profile.extension_map.get(resource)
        if mapped:
            return mapped
        for candidate in (resource, cid):
            if self.profile.is_extension(candidate):
                return candidate
        return None

    def _real_party(self, channel: str, rows: Sequence[CdrRow]) -> str:
        """A Local channel stands for whoever its other half dialled (queue members,
        follow-me): that channel, else the Local channel itself."""
        if not channel.startswith("Local/"):
            return channel
        key = _channel_key(channel)
        for row in rows:
            if (
                _channel_key(row.channel) == key
                and row.channel != channel
                and row.dstchannel
                and not row.dstchannel.startswith("Local/")
            ):
                return row.dstchannel
        return channel

    # -- one call

    def record(self, rows: Sequence[CdrRow]) -> CallRecord | None:
        """The call ``rows`` (one group of ``group_rows``) stand for."""
        if not rows:
            return None
        profile = self.profile
        linkedid = next((r.linkedid for r in rows if r.linkedid), "") or min(
            (r.uniqueid for r in rows), key=uniqueid_order
        )
        main = [r for r in rows if r.uniqueid == linkedid] or [
            r for r in rows if r.uniqueid == min((x.uniqueid for x in rows), key=uniqueid_order)
        ]
        first = main[0]
        a_channel = first.channel
        if a_channel.startswith("Local/"):  # an Originate into a Local channel
            a_channel = self._real_party(a_channel, rows)
        dials_out = any(self._is_trunk(self._real_party(r.dstchannel, rows)) for r in rows)
        dials_number = bool(first.dst) and first.dst != "s" and not profile.is_extension(first.dst)
        direction: Direction
        if self._is_trunk(a_channel, first.dcontext):
            direction = "inbound"
        elif dials_out or dials_number:
            direction = "outbound"
        else:
            direction = "internal"

        legs = [
            r for r in rows if r.dstchannel and r.lastapp not in ("Hangup", "Busy", "Congestion")
        ]
        answered_rows = [r for r in legs if r.disposition == "ANSWERED" and r.answer is not None]
        answered_rows.sort(key=lambda r: (r.answer or 0.0, r.start))
        answering = answered_rows[0] if answered_rows else None

        # The parties.
        name = _clid_name(first.clid)
        if direction == "inbound":
            raw = first.src or None
            caller = None
            if not is_withheld(raw):
                caller = to_e164(raw, profile.default_region, profile.intl_prefixes) or raw
            dsts = [r.dst for r in main if r.dst and r.dst != "s"]
            did = next((d for d in dsts if d in profile.own_numbers), None)
            did = did or next((d for d in dsts if not profile.is_extension(d)), None)
            did = did or (dsts[0] if dsts else None)
            callee = did
        else:
            raw = first.src or None
            caller = self._extension(a_channel, first.src) or raw
            callee = first.dst if first.dst and first.dst != "s" else None
            did = None

        rang: list[str] = []
        for r in legs:
            ext = self._extension(self._real_party(r.dstchannel, rows))
            if ext and ext not in rang and (direction != "internal" or ext != caller):
                rang.append(ext)

        answered_by: str | None = None
        agents: list[str] = []
        for r in answered_rows:
            ext = self._extension(self._real_party(r.dstchannel, rows))
            if ext and ext not in agents:
                agents.append(ext)
        if answering is not None:
            party = self._real_party(answering.dstchannel, rows)
            if direction == "outbound" and self._is_trunk(party):
                answered_by = callee
            else:
                answered_by = self._extension(party) or callee
        if direction == "outbound":
            final_agent = caller if answering is not None and caller else None
        else:
            final_agent = agents[-1] if agents else None

        outcome, hangup_by = self._outcome(direction, rows, legs, answering)

        started_at = min(r.start for r in rows)
        ended_at = max(r.end for r in rows)
        answered_at = answering.answer if answering is not None else None
        if answering is not None and answered_at is not None:
            ring = max(0.0, float(answering.duration - answering.billsec))
            if len(answered_rows) == 1:
                talk = float(answering.billsec)
            else:
                talk = max(0.0, ended_at - answered_at)
        else:
            ring = float(max((r.duration for r in legs), default=0))
            talk = 0.0
        ended_at = max(ended_at, answered_at or started_at)
        span = ended_at - started_at
        recordings: list[str] = []
        for r in rows:
            for part in r.userfield.split(";"):
                file = part.strip().rsplit("/", 1)[-1]
                if file and "." in file and file not in recordings:
                    recordings.append(file)
        queue = next((r.lastdata.split(",")[0] or None for r in rows if r.lastapp == "Queue"), None)
        cause = None
        for r in rows:
            if r.lastapp == "Hangup" and r.lastdata.strip().isdigit():
                cause = int(r.lastdata.strip())
        callee_e164 = None
        if callee and not profile.is_extension(callee):
            callee_e164 = to_e164(callee, profile.default_region, profile.intl_prefixes)
        return CallRecord(
            linkedid=linkedid,
            direction=direction,
            caller=caller,
            caller_raw=raw,
            caller_name=name,
            callee=callee,
            callee_e164=callee_e164,
            did=did,
            rang=tuple(rang),
            answered=answering is not None,
            answered_by=answered_by,
            final_agent=final_agent,
            transfers=(),
            outcome=outcome,
            hangup_by=hangup_by,
            started_at=started_at,
            answered_at=answered_at,
            ended_at=ended_at,
            ring_seconds=min(ring, span),
            talk_seconds=min(talk, span),
            recordings=tuple(recordings),
            originate_id=None,
            queue=queue,
            hangup_cause=cause,
            complete=True,
            uniqueids=tuple(sorted({r.uniqueid for r in rows}, key=uniqueid_order)),
            source="cdr",
        )

    def _outcome(
        self,
        direction: Direction,
        rows: Sequence[CdrRow],
        legs: Sequence[CdrRow],
        answering: CdrRow | None,
    ) -> tuple[Outcome, HangupBy | None]:
        """How the call ended, as well as CDR can tell.

        Inbound, nobody answered: the PBX giving up shows as a ``Hangup``/``Busy``/
        ``Congestion`` row, or as legs that rang for the whole Dial timeout (missed); legs
        that stopped sooner mean the caller hung up while ringing (abandoned), and so
        does a caller who left a queue.
        """
        if answering is not None:
            return "answered", None
        dispositions = {r.disposition for r in legs}
        pbx_ended = any(r.lastapp in ("Hangup", "Busy", "Congestion") for r in rows)
        timed_out = any(
            (t := _dial_timeout(r.lastdata)) is not None and r.duration >= t - 1
            for r in legs
            if r.lastapp == "Dial"
        )
        if direction == "inbound":
            if legs and dispositions <= {"BUSY"}:
                return "busy", "callee"
            if pbx_ended or timed_out:
                return "missed", "pbx"
            if not legs and any(r.lastapp == "Queue" for r in rows):
                return "abandoned", "caller"
            if legs:
                return "abandoned", "caller"
            return "missed", "pbx"
        if legs and dispositions <= {"BUSY"}:
            return "busy", "callee"
        if legs and dispositions <= {"FAILED", "CONGESTION"}:
            return "failed", "pbx"
        if not legs and any(r.disposition in ("FAILED", "CONGESTION") for r in rows):
            return "failed", "pbx"
        if timed_out:
            return "no_answer", "pbx"
        return "no_answer", "caller" if legs else None

    def calls(self, rows: Sequence[CdrRow]) -> list[CallRecord]:
        """Every call among ``rows``, in the order they ended (a row read twice, from
        two sources, counts once)."""
        rows = list(dict.fromkeys(rows))
        out = [rec for group in group_rows(rows) if (rec := self.record(group)) is not None]
        out.sort(key=lambda r: (r.ended_at, uniqueid_order(r.linkedid)))
        return out
