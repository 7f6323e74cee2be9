"""Calls during an outage: backfilled from the PBX's own CDR, once, on both engines.

Master.csv here is made of the real cdr.csv excerpts of the Asterisk 22 captures (what
cdr_csv appended during each scenario), and the PostgreSQL CDR table is filled from the
same rows in the layout cdr_pgsql writes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from ami_bridge.cdr import CdrRow, parse_lines
from ami_bridge.replay import replay_file
from config.settings import load_settings, pbx_profile
from crm.backfill import BackfillSettings, CdrBackfill, backfill_settings, read_master_csv
from crm.ingest import Ingest
from crm.models import CallFilter
from crm.policy import LeadPolicy
from crm.store import Store

from .conftest import Clock

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-22"
PROFILE = pbx_profile(load_settings(env={}, demo=True))
BEFORE = 1_795_341_200.0  # 2026-11-22 09:53:20 UTC, before the first capture
AFTER = 1_795_341_700.0  # 09:61:40, after the last
UTC = dt.UTC


def _in_the_gap(scenario: Path) -> bool:
    rows = parse_lines((scenario / "cdr.csv").read_text().splitlines(), UTC)
    return all(r.start >= BEFORE and r.end <= AFTER for r in rows)


# The gap is the morning of the first set of captures (2026-11-22); the later ones
# (15-22, 2026-11-30) are outside it, and their CDR is checked in tests/test_cdr.py.
SCENARIOS = sorted(p for p in CAPTURES.iterdir() if (p / "cdr.csv").exists() and _in_the_gap(p))


def master_csv_text(scenarios: list[Path] = SCENARIOS) -> str:
    return "".join((s / "cdr.csv").read_text() for s in scenarios)


def planned_calls(scenarios: list[Path] = SCENARIOS) -> list[dict]:
    return [c for s in scenarios for c in json.loads((s / "truth.json").read_text())["calls"]]


@pytest.fixture
def ingest(store: Store, policy: LeadPolicy, clock: Clock) -> Ingest:
    return Ingest(store, policy, clock=clock)


def make_backfill(store: Store, ingest: Ingest, clock: Clock, **settings: object) -> CdrBackfill:
    s = BackfillSettings(**{"alive_interval": 0.05, "partial_wait": 0.05, **settings})  # type: ignore[arg-type]
    return CdrBackfill(store, "default", s, ingest.record, PROFILE, clock=clock)


async def watermark_is(store: Store, at: float, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state = await store.get_backfill_state("default")
        if state is not None and state.alive_at == at:
            return
        assert loop.time() < deadline, f"watermark {state and state.alive_at} != {at}"
        await asyncio.sleep(0.02)


async def all_calls(store: Store) -> list:
    return await store.list_calls(CallFilter(), limit=1000)


async def test_the_gap_is_backfilled_once_with_the_planned_calls(
    store: Store, ingest: Ingest, clock: Clock, tmp_path: Path
) -> None:
    master = tmp_path / "Master.csv"
    master.write_text(master_csv_text())
    bf = make_backfill(store, ingest, clock, csv_path=str(master))
    report = await bf.run(BEFORE, AFTER)
    planned = planned_calls()
    assert report.error is None
    assert (report.found, report.written) == (len(planned), len(planned))
    calls = await all_calls(store)
    assert len(calls) == len(planned) == 25
    assert {c.source for c in calls} == {"cdr"}
    for want in planned:
        if want["direction"] == "inbound":
            (call,) = [c for c in calls if c.caller == want["caller"]]
        else:
            (call,) = [c for c in calls if c.caller == want["caller"]
                       and c.callee == want["callee"]]  # fmt: skip
        assert (call.direction, call.outcome) == (want["direction"], want["outcome"])
    missed = [c for c in calls if c.outcome in ("missed", "abandoned")]
    assert len(missed) == 1 + 6  # 02, and 2 missed + 4 abandoned in the burst
    # The same gap again: the file is read on from where the last read stopped.
    again = await bf.run(BEFORE, AFTER)
    assert (again.found, again.written) == (0, 0)
    # The same rows from another file (restored from a backup, a PBX's second copy):
    # all found, none written twice.
    copy = tmp_path / "elsewhere" / "Master.csv"
    copy.parent.mkdir()
    copy.write_text(master_csv_text())
    bf.settings = dataclasses.replace(bf.settings, csv_path=str(copy))
    again = await bf.run(BEFORE, AFTER)
    assert (again.found, again.written) == (25, 0)
    assert len(await all_calls(store)) == 25
    state = await store.get_backfill_state("default")
    assert state is not None
    assert (state.last_count, state.total_count, state.last_error) == (0, 25, None)


async def test_calls_stored_from_ami_are_not_duplicated(
    store: Store, ingest: Ingest, clock: Clock, tmp_path: Path
) -> None:
    """The link saw 01 and the burst live; CDR for them (and for 02, which it missed)
    must leave those alone and add 02 only."""
    seen = [CAPTURES / "01-inbound-answered", CAPTURES / "11-burst-20-concurrent"]
    for scenario in seen:
        for rec in replay_file(scenario / "events.jsonl", PROFILE):
            await ingest.record(rec)
    before = {c.linkedid: c for c in await all_calls(store)}
    assert len(before) == 21
    master = tmp_path / "Master.csv"
    master.write_text(master_csv_text([*seen, CAPTURES / "02-inbound-missed"]))
    report = await make_backfill(store, ingest, clock, csv_path=str(master)).run(BEFORE, AFTER)
    assert (report.found, report.written) == (22, 1)
    after = {c.linkedid: c for c in await all_calls(store)}
    assert len(after) == 22
    for linkedid, call in before.items():
        assert after[linkedid].source == "ami"
        assert after[linkedid].talk_seconds == call.talk_seconds
    (new,) = set(after) - set(before)
    assert after[new].source == "cdr" and after[new].outcome == "missed"


async def test_a_call_seen_live_in_part_is_not_duplicated_nor_replaced_by_less(
    store: Store, ingest: Ingest, clock: Clock, tmp_path: Path
) -> None:
    """A call the link saw only in part (a resync closed it as incomplete) stays one row,
    whichever comes first: the resync's record or the CDR's."""
    scenario = CAPTURES / "01-inbound-answered"
    (live,) = replay_file(scenario / "events.jsonl", PROFILE)
    partial = dataclasses.replace(live, complete=False, talk_seconds=1.0)
    master = tmp_path / "Master.csv"
    master.write_text(master_csv_text([scenario]))
    bf = make_backfill(store, ingest, clock, csv_path=str(master))
    await ingest.record(partial)
    assert (await bf.run(BEFORE, AFTER)).written == 0
    (call,) = await all_calls(store)
    assert (call.source, call.complete) == ("ami", False)
    # The other order, on a fresh call: CDR first, then the resync's partial record.
    await store.upsert_call(dataclasses.replace(call, linkedid="other"), clock())
    second = dataclasses.replace(partial, linkedid="x.1")
    rows = (scenario / "cdr.csv").read_text().replace(live.linkedid, "x.1")
    master.write_text(rows)
    assert (await bf.run(BEFORE, AFTER)).written == 1
    await ingest.record(second)
    got = await store.get_call_by_linkedid("x.1")
    assert got is not None and (got.source, got.complete) == ("cdr", True)
    assert got.talk_seconds == 8.0


async def test_the_later_captures_are_backfilled_and_a_click_never_taken_makes_no_lead(
    store: Store, ingest: Ingest, clock: Clock, tmp_path: Path
) -> None:
    """The 2026-11-30 captures (transfers, declines, a click the rep never answered,
    queues, busy lines) from Master.csv: every planned call once, with its outcome; the
    click 101 never answered is ``failed`` and, as when the link sees it, makes no lead
    (4155550123 was never dialled)."""
    later = sorted(p for p in CAPTURES.iterdir() if (p / "cdr.csv").exists() and not _in_the_gap(p))
    assert later
    master = tmp_path / "Master.csv"
    master.write_text(master_csv_text(later))
    rows = parse_lines(master.read_text().splitlines(), UTC)
    since, until = min(r.start for r in rows) - 60, max(r.end for r in rows) + 60
    report = await make_backfill(store, ingest, clock, csv_path=str(master)).run(since, until)
    planned = planned_calls(later)
    assert report.error is None and report.written == len(planned)
    calls = await all_calls(store)
    for want in planned:
        if want["direction"] == "inbound":
            (call,) = [c for c in calls if c.caller == want["caller"]]
        else:
            (call,) = [c for c in calls if c.caller == want["caller"]
                       and c.callee == want["callee"]]  # fmt: skip
        assert (call.source, call.direction, call.outcome) == (
            "cdr",
            want["direction"],
            want["outcome"],
        )
        if want.get("lead") is False:
            assert call.contact_id is None, want
    contacts = await store.count_contacts()
    assert contacts == len({c.remote_e164 for c in calls if c.contact_id is not None})
    assert not [c for c in calls if c.remote_e164 == "+14155550123" and c.contact_id]


async def test_only_calls_that_ended_in_the_window_are_written(
    store: Store, ingest: Ingest, clock: Clock, tmp_path: Path
) -> None:
    master = tmp_path / "Master.csv"
    master.write_text(master_csv_text())
    since = dt.datetime(2026, 11, 22, 9, 58, 0, tzinfo=UTC).timestamp()
    report = await make_backfill(store, ingest, clock, csv_path=str(master)).run(since, AFTER)
    calls = await all_calls(store)
    assert report.written == len(calls) == 21  # 09 (ended 09:58:31) and the burst
    assert all(c.ended_at >= since for c in calls)


async def test_reconnect_backfills_from_the_watermark(
    store: Store, ingest: Ingest, clock: Clock, tmp_path: Path
) -> None:
    """Connected (watermark kept while up), dropped, calls happen, reconnected: the gap's
    calls are written; the watermark moves on, so the next reconnect reads no further back."""
    master = tmp_path / "Master.csv"
    master.write_text("")
    bf = make_backfill(store, ingest, clock, csv_path=str(master), overlap_seconds=10.0)
    bf.start()
    try:
        clock.now = BEFORE - 600
        bf.link_state("connected")
        await asyncio.wait_for(bf.changed.wait(), 5)
        assert bf.last_report is not None and bf.last_report.found == 0
        clock.now = BEFORE - 30
        await watermark_is(store, BEFORE - 30)  # the ticker stores it while the link is up
        clock.now = BEFORE
        bf.traffic()
        bf.link_state("disconnected")
        await watermark_is(store, BEFORE)  # and when it drops
        clock.now = AFTER  # the PBX carried calls while the link was down
        master.write_text(master_csv_text())
        await asyncio.sleep(0.2)
        await watermark_is(store, BEFORE)  # not moved while down
        bf.link_state("connected")
        await asyncio.wait_for(bf.changed.wait(), 5)
        report = bf.last_report
        assert report is not None and report.error is None
        assert (report.since, report.until) == (BEFORE - 10.0, AFTER)
        assert report.written == 25
        assert len(await all_calls(store)) == 25
    finally:
        await bf.close()
    state = await store.get_backfill_state("default")
    assert state is not None and state.alive_at == AFTER and state.total_count == 25


async def test_a_failed_backfill_says_why_and_keeps_its_window(
    store: Store, ingest: Ingest, clock: Clock, tmp_path: Path
) -> None:
    master = tmp_path / "cdr-csv" / "Master.csv"
    bf = make_backfill(store, ingest, clock, csv_path=str(master), overlap_seconds=0.0)
    await store.mark_link_alive("default", BEFORE)
    clock.now = AFTER
    bf.link_state("connected")
    await asyncio.wait_for(bf.changed.wait(), 5)
    assert bf.last_report is not None and "not found" in (bf.last_report.error or "")
    state = await store.get_backfill_state("default")
    assert state is not None and "not found" in (state.last_error or "")
    # The link stays up for a while (the watermark moves on); the file shows up; the next
    # backfill (a retry, or the next reconnect) still covers the failed window.
    bf.traffic(AFTER + 3600)
    bf.link_state("disconnected")
    await asyncio.sleep(0.1)
    master.parent.mkdir()
    master.write_text(master_csv_text())
    clock.now = AFTER + 7200
    bf.link_state("connected")
    await asyncio.wait_for(bf.changed.wait(), 5)
    assert bf.last_report is not None and bf.last_report.error is None
    assert bf.last_report.since == BEFORE and bf.last_report.written == 25
    await bf.close()


def test_settings_come_from_the_cdr_section_and_the_link() -> None:
    settings = load_settings(env={}, demo=True)
    assert not backfill_settings(settings).configured  # off unless a source is set
    settings["cdr"]["csv_path"] = "/var/log/asterisk/cdr-csv/Master.csv"
    s = backfill_settings(settings, {"cdr_dsn": "postgresql://crm:s3cret@pbx/asterisk"})
    assert s.configured and s.dsn == "postgresql://crm:s3cret@pbx/asterisk"
    assert s.timezone == "UTC"
    assert "s3cret" not in repr(s)  # the DSN may carry a password
    # Several PBXes: each link reads only the CDR it names (never another PBX's).
    several = {**settings, "pbx_links": [{"name": "east"}, {"name": "west"}]}
    assert not backfill_settings(several, {"name": "west"}).configured
    east = backfill_settings(several, {"name": "east", "cdr_csv_path": "/mnt/east/Master.csv"})
    assert east.csv_path == "/mnt/east/Master.csv"
    settings["cdr"]["timezone"] = "Nowhere/Special"
    with pytest.raises(ValueError, match="time zone"):
        backfill_settings(settings)
    settings["cdr"]["timezone"] = "UTC"
    settings["cdr"]["table"] = "cdr; DROP TABLE calls"
    with pytest.raises(ValueError, match=r"cdr\.table"):
        backfill_settings(settings)


# ------------------------------------------------------------------ Master.csv reading


def _old_rows(n: int) -> str:
    """``n`` lines of calls from a day before the captures (a busy PBX's history)."""
    line = (CAPTURES / "01-inbound-answered" / "cdr.csv").read_text().splitlines()[0]
    return "".join(line.replace("2026-11-22", "2026-11-21") + "\n" for _ in range(n))


def test_only_the_tail_of_a_big_master_csv_is_read(tmp_path: Path) -> None:
    master = tmp_path / "Master.csv"
    master.write_text(_old_rows(20000) + master_csv_text())
    assert master.stat().st_size > 7_000_000
    read = read_master_csv(master, BEFORE, UTC)
    new_rows = sum(1 for _ in master_csv_text().splitlines())
    assert new_rows <= len(read.rows) < new_rows + 200  # a block back, not 20000 rows
    assert read.offset == master.stat().st_size and not read.partial
    # Appended later: read from where the last read stopped (nothing before it).
    with master.open("a") as f:
        f.write((CAPTURES / "02-inbound-missed" / "cdr.csv").read_text())
    again = read_master_csv(master, 0.0, UTC, read.file_id, read.offset)
    assert len(again.rows) == 3


def test_rotation_reads_the_rest_of_the_old_file_then_the_new(tmp_path: Path) -> None:
    master = tmp_path / "Master.csv"
    first, second, third = (
        (CAPTURES / name / "cdr.csv").read_text()
        for name in ("01-inbound-answered", "02-inbound-missed", "09-internal-call")
    )
    master.write_text(first)
    read = read_master_csv(master, BEFORE, UTC)
    assert len(read.rows) == 2
    with master.open("a") as f:
        f.write(second)  # written after our read, before the rotation
    os.rename(master, tmp_path / "Master.csv.1")  # logrotate
    (tmp_path / "Master.csv.2.gz").write_bytes(b"\x1f\x8b not for us")
    master.write_text(third)
    after = read_master_csv(master, BEFORE, UTC, read.file_id, read.offset)
    assert [r.uniqueid for r in after.rows] == ["1795341315.3"] * 3 + ["1795341498.27"]
    assert after.rotated_from == str(tmp_path / "Master.csv.1")
    assert after.offset == len(third.encode())


def test_truncation_in_place_is_noticed(tmp_path: Path) -> None:
    """copytruncate: the same inode, now shorter than where we stopped."""
    master = tmp_path / "Master.csv"
    master.write_text(master_csv_text())
    read = read_master_csv(master, BEFORE, UTC)
    one = (CAPTURES / "09-internal-call" / "cdr.csv").read_text()
    with master.open("r+") as f:
        f.truncate(0)
        f.write(one)
    after = read_master_csv(master, BEFORE, UTC, read.file_id, read.offset)
    assert [r.uniqueid for r in after.rows] == ["1795341498.27"]


def test_a_line_being_written_is_read_once_whole(tmp_path: Path) -> None:
    master = tmp_path / "Master.csv"
    lines = master_csv_text([CAPTURES / "02-inbound-missed"]).splitlines(keepends=True)
    master.write_text(lines[0] + lines[1] + lines[2][:40])
    read = read_master_csv(master, BEFORE, UTC)
    assert read.partial and len(read.rows) == 2
    assert read.offset == len((lines[0] + lines[1]).encode())
    with master.open("a") as f:
        f.write(lines[2][40:])
    rest = read_master_csv(master, BEFORE, UTC, read.file_id, read.offset)
    assert not rest.partial and len(rest.rows) == 1 and rest.rows[0].lastapp == "Hangup"


async def test_backfill_waits_for_a_line_being_written(
    store: Store, ingest: Ingest, clock: Clock, tmp_path: Path
) -> None:
    """The missed call's last row (the PBX's Hangup) arrives a moment after the rest: the
    call is written whole (missed, not abandoned) in the same backfill."""
    master = tmp_path / "Master.csv"
    lines = master_csv_text([CAPTURES / "02-inbound-missed"]).splitlines(keepends=True)
    master.write_text(lines[0] + lines[1] + lines[2][:40])
    bf = make_backfill(store, ingest, clock, csv_path=str(master), partial_wait=0.3)

    async def finish_line() -> None:
        await asyncio.sleep(0.1)
        with master.open("a") as f:
            f.write(lines[2][40:])

    writer = asyncio.create_task(finish_line())
    report = await bf.run(BEFORE, AFTER)
    await writer
    assert report.written == 1
    (call,) = await all_calls(store)
    assert (call.outcome, call.hangup_cause) == ("missed", 19)


# ------------------------------------------------------------- the PostgreSQL CDR table

# cdr_pgsql's table as its documentation creates it (Asterisk's alembic scripts make a
# newer layout with start/answer/end; both are read).
CLASSIC = """
CREATE TABLE {t} (
    calldate timestamp NOT NULL, clid varchar(80) NOT NULL default '',
    src varchar(80) NOT NULL default '', dst varchar(80) NOT NULL default '',
    dcontext varchar(80) NOT NULL default '', channel varchar(80) NOT NULL default '',
    dstchannel varchar(80) NOT NULL default '', lastapp varchar(80) NOT NULL default '',
    lastdata varchar(80) NOT NULL default '', duration bigint NOT NULL default 0,
    billsec bigint NOT NULL default 0, disposition varchar(45) NOT NULL default '',
    amaflags bigint NOT NULL default 0, accountcode varchar(20) NOT NULL default '',
    uniqueid varchar(150) NOT NULL default '', userfield varchar(255) NOT NULL default '',
    peeraccount varchar(20) NOT NULL default '', linkedid varchar(150) NOT NULL default '',
    sequence int NOT NULL default 0
)"""
ALEMBIC = """
CREATE TABLE {t} (
    accountcode VARCHAR(80), src VARCHAR(80), dst VARCHAR(80), dcontext VARCHAR(80),
    clid VARCHAR(80), channel VARCHAR(80), dstchannel VARCHAR(80), lastapp VARCHAR(80),
    lastdata VARCHAR(80), start TIMESTAMP WITHOUT TIME ZONE,
    answer TIMESTAMP WITHOUT TIME ZONE, "end" TIMESTAMP WITHOUT TIME ZONE,
    duration INTEGER, billsec INTEGER, disposition VARCHAR(45), amaflags VARCHAR(45),
    userfield VARCHAR(256), uniqueid VARCHAR(150), linkedid VARCHAR(150),
    peeraccount VARCHAR(80), sequence INTEGER
)"""


def _naive(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, tz=UTC).replace(tzinfo=None)


def _real_rows() -> list[CdrRow]:
    return parse_lines(master_csv_text().splitlines(), UTC)


@pytest.fixture
async def cdr_db(pg_database: str) -> AsyncIterator[tuple[str, str]]:
    """The local PostgreSQL with a schema of our own for the PBX's CDR."""
    schema = f"cdr_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_database)
    await conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield pg_database, schema
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


@pytest.mark.parametrize("layout", ["classic", "alembic"])
async def test_the_gap_is_backfilled_from_a_postgresql_cdr_table(
    store: Store,
    ingest: Ingest,
    clock: Clock,
    cdr_db: tuple[str, str],
    layout: str,
) -> None:
    dsn, schema = cdr_db
    table = f"{schema}.cdr"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute((CLASSIC if layout == "classic" else ALEMBIC).format(t=table))
        for seq, r in enumerate(_real_rows()):
            common = (r.clid, r.src, r.dst, r.dcontext, r.channel, r.dstchannel, r.lastapp,
                      r.lastdata, r.duration, r.billsec, r.disposition, r.accountcode,
                      r.uniqueid, r.userfield, r.uniqueid, seq)  # fmt: skip
            if layout == "classic":
                await conn.execute(
                    f"INSERT INTO {table} (calldate, clid, src, dst, dcontext, channel, "
                    "dstchannel, lastapp, lastdata, duration, billsec, disposition, "
                    "accountcode, uniqueid, userfield, linkedid, sequence, amaflags) VALUES "
                    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
                    "$17, 3)",
                    _naive(r.start),
                    *common,
                )
            else:
                await conn.execute(
                    f'INSERT INTO {table} (start, answer, "end", clid, src, dst, dcontext, '
                    "channel, dstchannel, lastapp, lastdata, duration, billsec, disposition, "
                    "accountcode, uniqueid, userfield, linkedid, sequence, amaflags) VALUES "
                    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
                    "$17, $18, $19, 'DOCUMENTATION')",
                    _naive(r.start),
                    _naive(r.answer),
                    _naive(r.end),
                    *common,
                )
        # History from a week before, which a backfill must not even fetch.
        await conn.execute(
            f"INSERT INTO {table} (calldate, uniqueid, duration, billsec, disposition) "
            "VALUES ($1, 'old.1', 5, 0, 'NO ANSWER')"
            if layout == "classic"
            else f'INSERT INTO {table} (start, "end", uniqueid, duration, billsec, '
            "disposition) VALUES ($1, $1, 'old.1', 5, 0, 'NO ANSWER')",
            _naive(BEFORE - 7 * 86400),
        )
    finally:
        await conn.close()
    bf = make_backfill(store, ingest, clock, dsn=dsn, table=table)
    report = await bf.run(BEFORE, AFTER)
    assert report.error is None
    assert (report.found, report.written) == (25, 25)
    calls = await all_calls(store)
    assert {c.source for c in calls} == {"cdr"}
    by_caller = {c.caller: c for c in calls if c.direction == "inbound"}
    assert by_caller["+14155550199"].answered_by == "101"
    assert by_caller["+14155550199"].recordings == (
        "20261122-095458_in_+14155550199_5551000_1795341294.1.wav",
    )
    assert by_caller["+14155550102"].outcome == "missed"
    assert by_caller["+14155550205"].outcome == "abandoned"
    assert (await bf.run(BEFORE, AFTER)).written == 0
    # A wrong table is an error the admin can read, not a crash.
    wrong = make_backfill(store, ingest, clock, dsn=dsn, table=f"{schema}.nope")
    assert "does not exist" in ((await wrong.run(BEFORE, AFTER)).error or "")


async def test_a_database_down_at_connect_does_not_lose_the_gap(
    store: Store, ingest: Ingest, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watermark cannot be read when the link comes up (the database restarting):
    the watermark must not move on before it is read, and the gap is backfilled after."""
    master = tmp_path / "Master.csv"
    master.write_text(master_csv_text())
    bf = make_backfill(store, ingest, clock, csv_path=str(master), overlap_seconds=0.0)
    bf.start()
    await store.mark_link_alive("default", BEFORE)
    real = store.get_backfill_state
    failures = iter([OSError("connection refused")] * 2)

    async def flaky(link: str) -> object:
        error = next(failures, None)
        if error is not None:
            raise error
        return await real(link)

    monkeypatch.setattr(store, "get_backfill_state", flaky)
    clock.now = AFTER
    try:
        bf.link_state("connected")
        await asyncio.wait_for(bf.changed.wait(), 10)
        report = bf.last_report
        assert report is not None and report.error is None
        assert (report.since, report.written) == (BEFORE, 25)
    finally:
        await bf.close()


async def test_a_failed_backfill_is_retried_while_the_link_stays_up(
    store: Store, ingest: Ingest, clock: Clock, tmp_path: Path
) -> None:
    master = tmp_path / "cdr-csv" / "Master.csv"
    bf = make_backfill(
        store, ingest, clock, csv_path=str(master), overlap_seconds=0.0, retry_seconds=0.0
    )
    bf.start()
    try:
        await store.mark_link_alive("default", BEFORE)
        clock.now = AFTER
        bf.link_state("connected")
        await asyncio.wait_for(bf.changed.wait(), 5)
        assert bf.last_report is not None and bf.last_report.error is not None
        master.parent.mkdir()
        master.write_text(master_csv_text())  # the mount is back
        clock.now = AFTER + 60
        for _ in range(100):
            if bf.last_report.error is None:
                break
            await asyncio.sleep(0.05)
        assert bf.last_report.error is None
        assert (bf.last_report.since, bf.last_report.written) == (BEFORE, 25)
    finally:
        await bf.close()


async def test_a_cdr_database_error_never_shows_its_password(
    store: Store, ingest: Ingest, clock: Clock
) -> None:
    from config.settings import redacted

    dsn = "postgresql://reader:Pa55-w0rd-x@127.0.0.1:1/asterisk"
    report = await make_backfill(store, ingest, clock, dsn=dsn).run(BEFORE, AFTER)
    assert report.error is not None and "CDR database" in report.error
    assert "Pa55-w0rd-x" not in report.error
    state = await store.get_backfill_state("default")
    assert state is not None and "Pa55-w0rd-x" not in (state.last_error or "")
    settings = load_settings(env={}, demo=True)
    settings["cdr"]["dsn"] = dsn
    assert "Pa55-w0rd-x" not in repr(redacted(settings))


async def test_calls_the_tracker_still_holds_are_left_to_it(
    store: Store, ingest: Ingest, clock: Clock, tmp_path: Path
) -> None:
    """After a reconnect the tracker follows the calls still up (the channel listing):
    their CDR may hold only the legs that ended so far (a transfer's consultation), so
    the backfill leaves them to the tracker's whole record."""
    from ami_bridge.capture import read_capture
    from ami_bridge.tracker import CallTracker

    tracker = CallTracker(PROFILE)
    events = list(read_capture(CAPTURES / "01-inbound-answered" / "events.jsonl"))
    for msg, at in events[: len(events) // 2]:
        tracker.feed(msg, at)
    assert "1795341294.0" in tracker.open_ids()
    master = tmp_path / "Master.csv"
    master.write_text(master_csv_text())
    bf = make_backfill(store, ingest, clock, csv_path=str(master))
    bf.open_ids = tracker.open_ids
    report = await bf.run(BEFORE, AFTER)
    assert (report.found, report.written) == (24, 24)
    assert await store.get_call_by_linkedid("1795341294.0") is None
    for msg, at in events[len(events) // 2 :]:
        tracker.feed(msg, at)
    tracker.flush()
    assert tracker.open_ids() == set()


async def test_a_backfill_failing_midway_reads_the_same_rows_again(
    store: Store, ingest: Ingest, clock: Clock, tmp_path: Path
) -> None:
    """The database refuses the third call: the rows already read must not be skipped by
    the next attempt (the file position stays), and nothing is written twice."""
    master = tmp_path / "Master.csv"
    master.write_text(master_csv_text())
    seen = 0

    async def flaky(rec: object) -> object:
        nonlocal seen
        seen += 1
        if seen == 3:
            raise OSError("database is locked")
        return await ingest.record(rec)  # type: ignore[arg-type]

    bf = CdrBackfill(store, "default", BackfillSettings(csv_path=str(master)), flaky,
                     PROFILE, clock=clock)  # fmt: skip
    report = await bf.run(BEFORE, AFTER)
    assert report.error == "database is locked"
    assert len(await all_calls(store)) == 2
    state = await store.get_backfill_state("default")
    assert state is not None and state.last_error == "database is locked"
    assert not state.file_offset  # the rows will be read again
    again = await bf.run(BEFORE, AFTER)
    assert again.error is None and (again.found, again.written) == (25, 23)
    assert len(await all_calls(store)) == 25
