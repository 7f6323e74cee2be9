"""Calls during an outage, end to end: a replay PBX in its own process keeps carrying
calls (and appending their CDR to Master.csv, as cdr_csv does) while the CRM is down; the
CRM, restarted, connects and backfills exactly those calls from Master.csv.

Without the backfill the restarted CRM knows only the call it saw before it went down.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ami_bridge.cdr import parse_lines
from config.settings import load_settings
from crm.models import CallFilter
from web.runtime import Runtime, open_runtime

from .crm.pg import session_database
from .paths import ASTERISK22, ROOT

INBOUND = ASTERISK22 / "01-inbound-answered"
MISSED = ASTERISK22 / "02-inbound-missed"
BURST = ASTERISK22 / "11-burst-20-concurrent"
INTERNAL = ASTERISK22 / "09-internal-call"


class PbxProcess:
    """``python -m ami_bridge.replay_pbx`` driven over its stdin."""

    def __init__(self, cdr_csv: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ami_bridge.replay_pbx", "--cdr-csv", str(cdr_csv)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        word, host, port = self._answer().split()
        assert word == "listening"
        self.host, self.port = host, int(port)

    def _answer(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the replay PBX exited ({self.proc.poll()})")
        return line.strip()

    async def play(self, capture: Path) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"play {capture / 'events.jsonl'}\n")
        self.proc.stdin.flush()
        answer = await asyncio.wait_for(asyncio.to_thread(self._answer), 30)
        word, count = answer.split()
        assert word == "played", answer
        return int(count)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def master_csv(tmp_path: Path) -> Path:
    folder = tmp_path / "cdr-csv"
    folder.mkdir()
    return folder / "Master.csv"


@pytest.fixture
def pbx(master_csv: Path) -> Iterator[PbxProcess]:
    p = PbxProcess(master_csv)
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def pg_base() -> Iterator[str]:
    with session_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite runs the one link directly; PostgreSQL through the link manager (the
    advisory lock, the link's own ingest), as several processes do."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    base = request.getfixturevalue("pg_base")
    return f"{base}?schema=t_{uuid.uuid4().hex[:12]}"


def crm_settings(
    tmp_path: Path, pbx: PbxProcess, master_csv: Path, database_url: str
) -> dict[str, Any]:
    settings = load_settings(env={}, demo=True)
    settings["database"]["url"] = database_url
    settings["server"]["key_file"] = str(tmp_path / "secret.key")
    settings["recordings"]["directory"] = str(tmp_path / "monitor")
    settings["ami"].update(host=pbx.host, port=pbx.port, ping_interval=1.0, ping_timeout=1.0)
    settings["pbx"]["finish_grace"] = 0.2
    settings["cdr"].update(csv_path=str(master_csv), alive_interval_seconds=0.2)
    return settings


async def until(predicate: Any, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not in {timeout:g} s: {what}")
        await asyncio.sleep(0.05)


async def calls_of(rt: Runtime) -> list[Any]:
    return await rt.store.list_calls(CallFilter(), limit=1000)


def truth(scenario: Path) -> list[dict]:
    return json.loads((scenario / "truth.json").read_text())["calls"]


async def test_calls_during_a_crm_outage_come_back_from_master_csv(
    tmp_path: Path, pbx: PbxProcess, master_csv: Path, database_url: str
) -> None:
    settings = crm_settings(tmp_path, pbx, master_csv, database_url)

    # 1. The CRM is up: it takes the inbound call live.
    rt = await open_runtime(settings)
    try:
        await until(lambda: _true(rt.link is not None), what="the link started")
        assert rt.link is not None
        await rt.link.wait_state("connected", timeout=10)
        await until(lambda: _true("default" in rt.extras.get("backfills", {})), what="backfill")
        backfill = rt.extras["backfills"]["default"]
        await until(lambda: _true(backfill.runs >= 1), what="the first backfill")
        await pbx.play(INBOUND)

        async def one_call() -> bool:
            return len(await calls_of(rt)) == 1

        await until(one_call, what="the live call stored")
        (live,) = await calls_of(rt)
        assert live.source == "ami" and live.answered_by == "101"
    finally:
        await rt.close()  # 2. The CRM goes down.

    # 3. The PBX carries on: a missed call, the burst, and the inbound call again
    #    (fresh ids), while nobody listens.
    for capture in (MISSED, BURST, INBOUND):
        await pbx.play(capture)
    rows = parse_lines(master_csv.read_text().splitlines(), __import__("datetime").UTC)
    assert len(rows) == 2 + 3 + 42 + 2  # every CDR row, the live call's included

    # 4. The CRM starts again: the gap's calls come from Master.csv, once.
    rt = await open_runtime(settings)
    try:
        await until(lambda: _true(rt.link is not None), what="the link started")
        assert rt.link is not None
        await rt.link.wait_state("connected", timeout=10)
        await until(lambda: _true("default" in rt.extras.get("backfills", {})), what="backfill")
        backfill = rt.extras["backfills"]["default"]
        await until(lambda: _true(backfill.runs >= 1), what="the backfill after restart")
        report = backfill.last_report
        assert report is not None and report.error is None, report
        assert report.written == 1 + 20 + 1
        calls = await calls_of(rt)
        assert len(calls) == 23
        assert sum(c.source == "ami" for c in calls) == 1
        assert {c.linkedid for c in calls if c.source == "ami"} == {live.linkedid}
        gap = [c for c in calls if c.source == "cdr"]
        planned = truth(MISSED) + truth(BURST) + truth(INBOUND)
        for want in planned:
            got = [c for c in gap if c.caller == want["caller"]]
            assert len(got) == 1, want
            assert got[0].direction == want["direction"]
            assert got[0].outcome == want["outcome"]
            assert got[0].answered_by == want["answered_by"]
        again = next(c for c in gap if c.caller == live.caller)
        assert again.linkedid != live.linkedid  # the PBX's second call, not the first
        # A link reconnect (the PBX drops us) backfills again: nothing twice.
        runs = backfill.runs
        pbx.proc.stdin.write("drop\n")  # type: ignore[union-attr]
        pbx.proc.stdin.flush()  # type: ignore[union-attr]
        await asyncio.to_thread(pbx._answer)
        await until(lambda: _true(backfill.runs > runs), what="the backfill after reconnect")
        assert backfill.last_report.written == 0
        assert len(await calls_of(rt)) == 23
        state = await rt.store.get_backfill_state("default")
        assert state is not None and state.total_count == 22 and state.last_error is None
    finally:
        await rt.close()


async def _true(value: bool) -> bool:
    return value
