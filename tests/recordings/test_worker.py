"""The worker: catalogued names become playable media; bad and late files are handled."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from recordings.catalog import GAVE_UP
from recordings.worker import RecordingWorker

from .conftest import REAL, wav_seconds
from .fakes import FakeCatalog

T0 = 1_795_340_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def worker(catalog: FakeCatalog, monitor: Path, media_dir: Path, clock: Clock, **kw: object):
    return RecordingWorker(catalog, monitor, media_dir, clock=clock, **kw)  # type: ignore[arg-type]


async def test_every_real_recording_becomes_ready(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    for i, src in enumerate(REAL):
        catalog.add(src.name, call_id=i + 1, created_at=T0 - 60)
    clock = Clock()
    assert await worker(catalog, monitor, media_dir, clock).run_once() == len(REAL)
    for row, src in zip(catalog.rows.values(), REAL, strict=True):
        assert row.status == "ready", row.error
        assert row.duration_seconds == pytest.approx(wav_seconds(src), abs=0.01)
        assert row.media_path is not None
        media = media_dir / row.media_path
        assert media.is_file() and row.size_bytes == media.stat().st_size
        assert src.stem not in row.media_path
        assert row.checked_at == clock.now and row.error is None
    assert await catalog.recordings_to_check() == []


async def test_a_full_pbx_path_in_the_catalogue_is_found_by_base_name(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    catalog.add(f"/var/spool/asterisk/monitor/{REAL[0].name}")
    await worker(catalog, monitor, media_dir, Clock()).run_once()
    assert catalog.rows[1].status == "ready"


async def test_a_corrupt_file_is_marked_and_the_others_still_processed(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    (monitor / "1763900000.5.wav").write_bytes(os.urandom(20_000))
    catalog.add(REAL[0].name)
    catalog.add("1763900000.5.wav")
    catalog.add(REAL[1].name)
    await worker(catalog, monitor, media_dir, Clock()).run_once()
    statuses = [r.status for r in catalog.rows.values()]
    assert statuses == ["ready", "corrupt", "ready"]
    assert catalog.rows[2].error.startswith("not a readable audio file")
    assert str(monitor) not in catalog.rows[2].error


async def test_a_late_file_is_picked_up_on_a_later_round(
    catalog: FakeCatalog, tmp_path: Path, media_dir: Path
) -> None:
    monitor = tmp_path / "monitor"
    day = monitor / "2026" / "11" / "22"
    day.mkdir(parents=True)
    clock = Clock()
    catalog.add(REAL[0].name, created_at=clock.now)
    w = worker(catalog, monitor, media_dir, clock, retry_interval=60, rescan_interval=0)

    assert await w.run_once() == 1
    assert (catalog.rows[1].status, catalog.rows[1].error) == ("missing", None)

    (day / REAL[0].name).write_bytes(REAL[0].read_bytes())  # MixMonitor finishes late
    clock.now += 10
    assert await w.run_once() == 0  # too soon to look again
    clock.now += 60
    assert await w.run_once() == 1
    row = catalog.rows[1]
    assert row.status == "ready" and row.error is None and row.media_path


async def test_a_file_that_never_appears_is_given_up_after_a_day(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    clock = Clock()
    catalog.add("1763900000.404.wav", created_at=clock.now)
    w = worker(catalog, monitor, media_dir, clock, retry_interval=60)
    await w.run_once()
    clock.now += 23 * 3600
    await w.run_once()
    assert (catalog.rows[1].status, catalog.rows[1].error) == ("missing", None)
    clock.now += 3600
    await w.run_once()
    assert (catalog.rows[1].status, catalog.rows[1].error) == ("missing", GAVE_UP)
    updates = len(catalog.updates)
    clock.now += 3600
    await w.run_once()
    assert len(catalog.updates) == updates


async def test_names_that_try_to_leave_the_directory_are_refused(
    catalog: FakeCatalog, tmp_path: Path, monitor: Path, media_dir: Path
) -> None:
    (tmp_path / "secret.wav").write_bytes(REAL[0].read_bytes())
    catalog.add("../secret.wav")
    catalog.add("..")
    catalog.add("x\0.wav")
    await worker(catalog, monitor, media_dir, Clock()).run_once()
    for row in catalog.rows.values():
        assert row.status in ("corrupt", "missing")
        assert row.media_path is None
    assert catalog.rows[3].error.startswith("refused file name")
    assert not media_dir.exists() or not list(media_dir.glob("*.webm"))


async def test_a_file_still_being_written_is_left_for_the_next_round(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    (monitor / REAL[0].name).touch()  # modified just now
    catalog.add(REAL[0].name)
    clock = Clock(time.time())
    w = worker(catalog, monitor, media_dir, clock, settle_seconds=30)
    assert await w.run_once() == 0
    assert catalog.rows[1].status == "pending"
    clock.now += 60
    assert await w.run_once() == 1
    assert catalog.rows[1].status == "ready"


async def test_a_failing_update_does_not_stop_the_round(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    catalog.add(REAL[0].name)
    catalog.add(REAL[1].name)
    catalog.fail_updates_for.add(1)
    assert await worker(catalog, monitor, media_dir, Clock()).run_once() == 1
    assert [r.status for r in catalog.rows.values()] == ["pending", "ready"]


async def test_run_forever_keeps_going_until_cancelled(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    clock = Clock()
    w = worker(catalog, monitor, media_dir, clock)
    task = asyncio.create_task(w.run_forever(0.01))
    catalog.add(REAL[0].name)  # arrives while the worker runs
    for _ in range(500):
        if catalog.rows[1].status == "ready":
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert catalog.rows[1].status == "ready"


async def test_rows_given_up_on_do_not_starve_new_ones(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    clock = Clock()
    for i in range(5):
        catalog.add(f"1763900000.{i}.wav", created_at=clock.now - 2 * 86400)
    catalog.add(REAL[0].name, created_at=clock.now)  # newer than all the lost ones
    w = worker(catalog, monitor, media_dir, clock, batch_size=3)
    for _ in range(4):
        await w.run_once()
        clock.now += 120
    statuses = [r.status for r in catalog.rows.values()]
    assert statuses == ["missing"] * 5 + ["ready"]
    assert all(r.error == GAVE_UP for r in list(catalog.rows.values())[:5])


async def test_a_failed_round_is_logged_and_the_next_one_runs(
    catalog: FakeCatalog, monitor: Path, media_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    real_check = catalog.recordings_to_check
    calls = 0

    async def flaky(limit: int = 100):  # the database is away for one round
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database unreachable")
        return await real_check(limit)

    catalog.recordings_to_check = flaky  # type: ignore[method-assign]
    catalog.add(REAL[0].name)
    task = asyncio.create_task(worker(catalog, monitor, media_dir, Clock()).run_forever(0.01))
    for _ in range(500):
        if catalog.rows[1].status == "ready":
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert catalog.rows[1].status == "ready"
    assert "recordings round failed" in caplog.text
