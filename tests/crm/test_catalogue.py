"""Recordings catalogue, API tokens, admin settings and the 0002 migration, on both
engines."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from crm.ingest import Ingest
from crm.services import CrmService, InvalidInput
from crm.store import Store, open_store
from crm.store.migrations import migrations_for
from crm.store.sqlite import _statements

from .conftest import Clock
from .factories import T0, inbound


async def test_recordings_lifecycle(store: Store, service: CrmService, ingest: Ingest) -> None:
    first = await ingest.handle(inbound("+14155550401", at=T0))
    second = await ingest.handle(inbound("+14155550402", at=T0 + 100))
    [rec1] = await service.recordings_for_call(first.call.id)
    assert rec1.status == "pending" and rec1.path == first.call.recordings[0]
    assert rec1.created_at == first.call.ended_at
    queue = await service.recordings_to_check()
    assert [r.call_id for r in queue] == [first.call.id, second.call.id]  # oldest first

    assert await service.update_recording(
        rec1.id, status="ready", duration_seconds=8.2, media_path="/media/1.ogg",
        size_bytes=65_000, at=T0 + 500,
    )  # fmt: skip
    got = await service.get_recording(rec1.id)
    assert (got.status, got.duration_seconds, got.media_path, got.size_bytes, got.checked_at) == (
        "ready", 8.2, "/media/1.ogg", 65_000, T0 + 500,
    )  # fmt: skip
    # a file that vanished keeps what we knew about it; the error is recorded
    await service.update_recording(rec1.id, status="missing", error="not found", at=T0 + 600)
    got = await service.get_recording(rec1.id)
    assert (got.status, got.duration_seconds, got.error) == ("missing", 8.2, "not found")
    await service.update_recording(rec1.id, status="ready", at=T0 + 700)
    assert (await service.get_recording(rec1.id)).error is None

    # the worker gives up on a file that never appeared: it leaves the queue
    third = await ingest.handle(inbound("+14155550403", at=T0 + 200))
    [rec3] = await service.recordings_for_call(third.call.id)
    await service.update_recording(rec3.id, status="missing", error="file never appeared",
                                   at=T0 + 700)  # fmt: skip
    [rec2] = await service.recordings_for_call(second.call.id)
    await service.update_recording(rec2.id, status="corrupt", error="bad header", at=T0 + 700)
    assert [r.id for r in await service.recordings_to_check()] == []
    assert (await service.get_recording(rec3.id)).status == "missing"
    old = await service.recordings_older_than(T0 + 50, limit=10)
    assert [r.id for r in old] == [rec1.id]
    assert await service.mark_recording_deleted(rec1.id, T0 + 800)
    assert (await service.get_recording(rec1.id)).status == "deleted"
    assert await service.recordings_older_than(T0 + 50, limit=10) == []
    # re-ingesting the call does not reset the catalogue
    await ingest.handle(inbound("+14155550401", at=T0, linkedid=first.call.linkedid))
    assert (await service.get_recording(rec1.id)).status == "deleted"
    with pytest.raises(InvalidInput):
        await service.update_recording(rec1.id, status="lost", at=T0)  # type: ignore[arg-type]
    assert await service.get_recording(999_999) is None
    assert not await service.update_recording(999_999, status="ready", at=T0)


async def test_api_tokens(service: CrmService, clock: Clock) -> None:
    user = await service.create_user("hook", "Zap Hook", "password1", "rep", [])
    token = await service.create_api_token(user.id, "Zapier", "root")
    assert token.startswith("crm_") and len(token) > 40
    found = await service.user_for_api_token(token)
    assert found is not None and found.id == user.id
    [row] = await service.list_api_tokens(user.id)
    assert row.name == "Zapier" and row.last_used_at == clock.now
    assert await service.user_for_api_token(token + "x") is None
    assert await service.user_for_api_token("") is None
    # only a hash is kept: the plaintext appears in no row and no audit entry
    entries = await service.list_audit(action="api_token.created")
    assert token not in repr(entries) and token not in repr(await service.list_api_tokens())
    assert await service.revoke_api_token(row.id, "root")
    assert await service.user_for_api_token(token) is None
    assert not await service.revoke_api_token(row.id, "root")
    # a deactivated user's tokens stop working
    other = await service.create_api_token(user.id, "CI", "root")
    await service.deactivate_user(user.id, "root")
    assert await service.user_for_api_token(other) is None
    with pytest.raises(InvalidInput):
        await service.create_api_token(user.id, " ", "root")


async def test_settings_merge_and_audit_without_secrets(service: CrmService) -> None:
    assert await service.get_setting("ami") == {}
    await service.put_setting("ami", {"host": "pbx.local", "port": 5038, "secret": "s3cr3t"},
                              "root")  # fmt: skip
    stored = await service.put_setting("ami", {"port": 5039}, "root")
    assert stored == {"host": "pbx.local", "port": 5039, "secret": "s3cr3t"}
    assert await service.get_setting("ami") == stored
    await service.put_setting("ami", {"secret": "n3w"}, "root")
    await service.put_setting("ami", {"port": 5039}, "root")  # no change: no entry
    entries = await service.list_audit(action="settings.changed")
    assert [e.detail["changed"] for e in entries] == [
        ["secret"], ["port"], ["host", "port", "secret"],
    ]  # fmt: skip
    assert all(e.actor == "root" and e.target == "ami" for e in entries)
    assert entries[1].detail["values"] == {"port": 5039}
    text = repr(entries)
    assert "s3cr3t" not in text and "n3w" not in text
    with pytest.raises(InvalidInput):
        await service.put_setting("Bad Section!", {}, "root")


async def test_migration_0002_upgrades_a_0001_database(tmp_path: Path) -> None:
    """A database made by the first release keeps its calls and gets a catalogue row per
    recording, dated by the call's end."""
    path = tmp_path / "old.db"
    first = migrations_for("sqlite")[0]
    async with aiosqlite.connect(path) as db:
        await db.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at REAL NOT NULL)"
        )
        for statement in _statements(first.sql):
            await db.execute(statement)
        await db.execute("INSERT INTO schema_version VALUES (1, 'initial', 0)")
        await db.execute(
            "INSERT INTO calls (id, linkedid, direction, answered, outcome, started_at, "
            "ended_at, ingested_at, updated_at) VALUES (1, 'x.1', 'inbound', 1, 'answered', "
            "100, 160, 170, 170)"
        )
        await db.execute("INSERT INTO call_recordings (call_id, path) VALUES (1, 'a.wav')")
        await db.commit()
    store = await open_store(f"sqlite:///{path}")
    try:
        assert await store.schema_version() == max(m.version for m in migrations_for("sqlite"))
        [rec] = await store.recordings_for_call(1)
        assert (rec.path, rec.status, rec.created_at) == ("a.wav", "pending", 160.0)
    finally:
        await store.close()
