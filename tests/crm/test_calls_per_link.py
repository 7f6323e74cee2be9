"""Calls are keyed by (PBX link, linkedid): two offices whose PBXes report the same
linkedid keep a call each (seen with two replay PBXes playing one capture, where the
second office's call used to overwrite the first's).  Both engines."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ami_bridge.facts import CallProgress
from crm.eventjson import jsonable
from crm.ingest import Ingest
from crm.models import CallFilter
from crm.policy import LeadPolicy
from crm.recovery import finish_orphans
from crm.store import Store, open_store
from crm.store.migrations import migrations_for
from crm.store.sqlite import _statements

from .factories import T0, inbound

POLICY = LeadPolicy(own_numbers=("5551000",))


async def test_two_links_with_the_same_linkedid_keep_a_call_each(store: Store) -> None:
    east = await store.ensure_pbx_link("east", "East")
    west = await store.ensure_pbx_link("west", "West")
    rec = inbound()
    east_call = (await Ingest(store, POLICY, pbx_link_id=east.id).record(rec)).call
    west_ingest = Ingest(store, POLICY, pbx_link_id=west.id)
    other = inbound(caller="+14155550123", linkedid=rec.linkedid)
    west_call = (await west_ingest.record(other)).call
    again = await west_ingest.record(other)  # replayed: same row
    assert not again.created and again.call.id == west_call.id
    assert east_call.id != west_call.id
    assert await store.count_calls() == 2
    found_east = await store.get_call_by_linkedid(rec.linkedid, east.id)
    found_west = await store.get_call_by_linkedid(rec.linkedid, west.id)
    assert found_east is not None and found_east.caller == rec.caller
    assert found_west is not None and found_west.caller == "+14155550123"
    assert {c.pbx_link_id for c in await store.list_calls(CallFilter())} == {east.id, west.id}


async def test_calls_in_progress_are_kept_per_link(store: Store) -> None:
    east = await store.ensure_pbx_link("east", "East")
    west = await store.ensure_pbx_link("west", "West")
    progress = CallProgress(
        linkedid="same.1", state="ringing", direction="inbound", caller="+14155550100",
        caller_name=None, callee="5551000", did="5551000", ringing=("101",),
        answered_by=None, at=T0,
    )  # fmt: skip
    snapshot = {"progress": jsonable(progress), "started_at": T0, "rung": ["101"]}
    assert await store.save_live_call("same.1", east.id, snapshot, T0)
    assert await store.save_live_call("same.1", west.id, snapshot, T0 + 1)
    assert len(await store.list_live_calls()) == 2
    # East's call ends; west's call of the same linkedid is still up and still kept.
    east_ingest = Ingest(store, POLICY, pbx_link_id=east.id, keep_live=True)
    await east_ingest.record(inbound(linkedid="same.1"))
    assert [r.pbx_link_id for r in await store.list_live_calls()] == [west.id]
    assert await store.save_live_call("same.1", west.id, snapshot, T0 + 2)
    # West's process dies; its successor finds east's record of "same.1", which is not
    # west's call: west's call is written (incomplete), not taken as landed.
    successor = Ingest(store, POLICY, pbx_link_id=west.id, keep_live=True)
    assert await finish_orphans(successor, ()) == ["same.1"]
    west_call = await store.get_call_by_linkedid("same.1", west.id)
    assert west_call is not None and not west_call.complete
    assert await store.count_calls() == 2
    assert await store.list_live_calls() == []


async def test_migration_keeps_every_row_that_references_a_call(tmp_path: Path) -> None:
    """SQLite rebuilds the calls table for 0006: notes, recordings, callbacks and the
    rang index of existing calls must survive (no cascade from the old table's drop)."""
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "applied_at REAL NOT NULL)")  # fmt: skip
    for mig in migrations_for("sqlite"):
        if mig.version >= 6:
            break
        for statement in _statements(mig.sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (?, ?, 0)", (mig.version, mig.name))
    # A call as the old schema stores it, with its note, recording and rang row.
    call_id = conn.execute(
        "INSERT INTO calls (linkedid, direction, caller, rang, answered, outcome, started_at, "
        "ended_at, recordings, ingested_at, updated_at) VALUES ('old.1', 'inbound', "
        "'+14155550199', '[\"101\"]', 0, 'missed', ?, ?, '[\"/m/a.wav\"]', ?, ?) RETURNING id",
        (T0, T0 + 5, T0, T0),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO call_recordings (call_id, path, created_at) VALUES (?, '/m/a.wav', ?)",
        (call_id, T0),
    )
    conn.execute("INSERT INTO notes (call_id, comment, created_at) VALUES (?, 'comment', ?)",
                 (call_id, T0))  # fmt: skip
    conn.execute("INSERT INTO call_rang VALUES (?, '101', ?, 1)", (call_id, T0))
    conn.close()

    store = await open_store(f"sqlite:///{db}")  # applies 0006
    try:
        moved = await store.get_call_by_linkedid("old.1", None)
        assert moved is not None and moved.id == call_id and moved.recordings == ("/m/a.wav",)
        assert len(moved.recording_ids) == 1
        assert [n.comment for n in await store.notes_for_call(call_id)] == ["comment"]
        check = sqlite3.connect(db)
        assert check.execute("SELECT count(*) FROM call_rang").fetchone()[0] == 1
        check.close()
        east = await store.ensure_pbx_link("east")
        await Ingest(store, POLICY, pbx_link_id=east.id).record(inbound(linkedid="old.1"))
        await Ingest(store, POLICY).record(inbound(linkedid="old.1"))  # the old row, updated
        assert await store.count_calls() == 2
    finally:
        await store.close()
