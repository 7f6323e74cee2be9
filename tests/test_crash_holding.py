"""Held calls survive the CRM's death: the journal of ``crm.holding.HoldingSink``.

A CRM process takes the burst's finished calls while another connection holds SQLite's
write lock, so every call is held; then it is SIGKILLed.  Before the journal, the held
calls lived only in that process's memory and were gone.  Now the next start replays the
journal: every call is written exactly once, the journal is emptied, and replaying it
again (or a crash between writing and truncating) never makes a second row.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ami_bridge.replay import replay_file
from crm.holding import HoldingSink
from crm.ingest import Ingest
from crm.policy import LeadPolicy
from crm.store import open_store

from .paths import ASTERISK22, ROOT
from .test_faults_store import ExclusiveLock

BURST = ASTERISK22 / "11-burst-20-concurrent" / "raw.ami"
POLICY = LeadPolicy(own_numbers=("5551000",))

# The CRM side: hand the burst's calls to a journaled sink; say when each is held.
CHILD = r"""
import asyncio, sys
from pathlib import Path
import crm.store.sqlite as engine
from ami_bridge.replay import replay_file
from crm.holding import HoldingSink
from crm.ingest import Ingest
from crm.policy import LeadPolicy
from crm.store import open_store

async def main(db, journal, burst):
    engine.BUSY_TIMEOUT_MS = 100
    store = await open_store("sqlite:///" + db, migrate=False)
    ingest = Ingest(store, LeadPolicy(own_numbers=("5551000",)))
    sink = HoldingSink(ingest.handle, journal=Path(journal), retry_initial=3600)
    for rec in replay_file(burst):
        await sink(rec)
        print(rec.linkedid, sink.status.held, flush=True)
    print("all held", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
"""


def run_and_kill(db: Path, journal: Path) -> list[str]:
    """The child until it held every call, then SIGKILL; the linkedids it held."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(journal), str(BURST)],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()], daemon=True).start()
    held: list[str] = []
    try:
        while True:
            try:
                line = lines.get(timeout=30)  # a child that dies or hangs fails the test fast
            except queue.Empty:
                raise AssertionError(f"the CRM child stopped after holding {len(held)}") from None
            if line.strip() == "all held":
                break
            linkedid, count = line.split()
            assert int(count) == len(held) + 1, "a call was written although the db is locked"
            held.append(linkedid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    return held


async def test_calls_held_when_the_crm_is_killed_are_written_on_the_next_start(
    tmp_path: Path,
) -> None:
    db = tmp_path / "crm.db"
    journal = tmp_path / "held-calls-default.jsonl"
    store = await open_store(f"sqlite:///{db}")
    await store.close()
    lock = ExclusiveLock(db)
    try:
        held = run_and_kill(db, journal)
    finally:
        lock.release()
    expected = {r.linkedid: r for r in replay_file(BURST)}
    assert sorted(held) == sorted(expected) and len(held) == 20

    store = await open_store(f"sqlite:///{db}")
    try:
        assert await store.count_calls() == 0  # nothing reached the database before
        sink = HoldingSink(Ingest(store, POLICY).handle, journal=journal)
        assert await sink.replay_journal() == 20
        assert await store.count_calls() == 20
        for linkedid, rec in expected.items():
            call = await store.get_call_by_linkedid(linkedid)
            assert call is not None and call.outcome == rec.outcome
        assert journal.read_text() == "", "the journal is emptied once its calls are written"
        await sink.close()
    finally:
        await store.close()


async def test_replaying_a_journal_twice_never_doubles_a_call(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    journal = tmp_path / "held.jsonl"
    lock_store = await open_store(f"sqlite:///{db}")
    await lock_store.close()
    lock = ExclusiveLock(db)
    try:
        held = run_and_kill(db, journal)
    finally:
        lock.release()
    saved = journal.read_text()
    assert len(saved.splitlines()) == len(held) == 20
    store = await open_store(f"sqlite:///{db}")
    try:
        first = HoldingSink(Ingest(store, POLICY).handle, journal=journal)
        assert await first.replay_journal() == 20
        journal.write_text(saved)  # killed after writing, before truncating
        again = HoldingSink(Ingest(store, POLICY).handle, journal=journal)
        assert await again.replay_journal() == 20
        assert await store.count_calls() == 20
        assert journal.read_text() == ""
    finally:
        await store.close()


async def test_a_line_cut_short_by_the_crash_is_skipped_not_fatal(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    journal = tmp_path / "held.jsonl"
    lock_store = await open_store(f"sqlite:///{db}")
    await lock_store.close()
    lock = ExclusiveLock(db)
    try:
        run_and_kill(db, journal)
    finally:
        lock.release()
    with journal.open("a") as f:
        f.write('{"linkedid": "1795341999.1", "direc')  # the write the kill interrupted
    store = await open_store(f"sqlite:///{db}")
    try:
        sink = HoldingSink(Ingest(store, POLICY).handle, journal=journal)
        assert await sink.replay_journal() == 20
        assert await store.count_calls() == 20
    finally:
        await store.close()


@pytest.mark.parametrize("url_kind", ["file", "memory"])
def test_the_journal_lives_next_to_the_database(tmp_path: Path, url_kind: str) -> None:
    from web.runtime import data_dir

    url = f"sqlite:///{tmp_path / 'crm.db'}" if url_kind == "file" else "sqlite:///:memory:"
    folder = data_dir({"database": {"url": url}, "server": {}})
    assert folder == (tmp_path if url_kind == "file" else None)
    configured = data_dir({"database": {"url": url}, "server": {"data_dir": str(tmp_path / "d")}})
    assert configured == tmp_path / "d" and configured.is_dir()


async def test_the_product_link_journals_calls_while_the_database_is_locked_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring: ``run.py serve``'s link (the link manager) journals, next to the SQLite
    file, a call that ends while the database is locked, even before the link's row could
    be read, and writes it once the lock goes."""
    import asyncio
    import time

    import crm.store.sqlite as engine
    import web.linkmanager as linkmanager
    from ami_bridge.replay_pbx import ReplayPbx
    from tests.web.conftest import web_settings
    from web.runtime import open_runtime, start_link

    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr(linkmanager, "READY_WAIT", 0.2)
    inbound = ASTERISK22 / "01-inbound-answered" / "raw.ami"
    [expected] = replay_file(inbound)
    pbx = ReplayPbx(inbound, speed=0, paused=True, secret="s3cret-pbx")
    await pbx.start()
    settings = web_settings(tmp_path, pbx={"finish_grace": 0.1})
    settings["ami"].update(host="127.0.0.1", port=pbx.port, username="crm", secret="s3cret-pbx")
    rt = await open_runtime(settings, with_link=False)
    lock = ExclusiveLock(tmp_path / "crm.db")
    journal = tmp_path / "held-calls-default.jsonl"
    try:
        link = start_link(rt)
        assert link is not None
        await link.wait_state("connected")
        pbx.resume()
        await pbx.wait_done(5)
        deadline = time.monotonic() + 10
        while expected.linkedid not in (journal.read_text() if journal.exists() else ""):
            assert time.monotonic() < deadline, "the call was never journaled"
            await asyncio.sleep(0.05)
        status = rt.holding_status
        assert status is not None and status.held == 1
        lock.release()
        deadline = time.monotonic() + 15
        while await rt.store.count_calls() < 1:
            assert time.monotonic() < deadline, "the held call was never written"
            await asyncio.sleep(0.05)
        call = await rt.store.get_call_by_linkedid(expected.linkedid)
        assert call is not None and call.pbx_link_id is not None
        deadline = time.monotonic() + 5
        while journal.read_text():
            assert time.monotonic() < deadline, "the journal was not emptied"
            await asyncio.sleep(0.05)
    finally:
        lock.release()
        await rt.close()
        await pbx.close()
