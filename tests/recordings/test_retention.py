"""Retention deletes only old audio and marks it; erasure removes a contact's audio files."""

from __future__ import annotations

from pathlib import Path

from recordings.retention import erase_files, erase_recordings, purge
from recordings.transcode import media_key
from recordings.worker import RecordingWorker

from .conftest import REAL
from .fakes import FakeCatalog

DAY = 86400.0
NOW = 1_795_340_000.0


async def ready_catalog(catalog: FakeCatalog, monitor: Path, media_dir: Path) -> None:
    """Three recordings: 400, 366 and 10 days old, all transcoded by the worker."""
    for age, src in zip((400, 366, 10), REAL, strict=False):
        catalog.add(src.name, created_at=NOW - age * DAY)
    await RecordingWorker(catalog, monitor, media_dir, clock=lambda: NOW).run_once()
    assert all(r.status == "ready" for r in catalog.rows.values())


async def test_purge_deletes_only_old_media_and_marks_it(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    await ready_catalog(catalog, monitor, media_dir)
    old, older, recent = catalog.rows[1], catalog.rows[2], catalog.rows[3]

    report = await purge(catalog, media_dir, monitor, 365, NOW + 60, delete_originals=False)

    assert sorted(report.marked) == [1, 2]
    assert [r.status for r in catalog.rows.values()] == ["deleted", "deleted", "ready"]
    for row in (old, older):
        assert not (media_dir / row.media_path).exists()
        assert not (media_dir / row.media_path.replace(".webm", ".peaks.json")).exists()
    assert (media_dir / recent.media_path).is_file()
    assert (media_dir / recent.media_path.replace(".webm", ".peaks.json")).is_file()
    assert all((monitor / src.name).is_file() for src in REAL)  # originals kept
    assert catalog.rows[1].call_id == old.call_id  # the call keeps its record


async def test_purge_deletes_originals_when_configured(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    await ready_catalog(catalog, monitor, media_dir)
    report = await purge(catalog, media_dir, monitor, 365, NOW, delete_originals=True)
    assert not (monitor / REAL[0].name).exists() and not (monitor / REAL[1].name).exists()
    assert (monitor / REAL[2].name).is_file()
    assert str((monitor / REAL[0].name).resolve()) in report.deleted
    assert report.failed == []


async def test_purge_marks_rows_whose_files_are_already_gone(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    catalog.add("1763900000.404.wav", created_at=NOW - 400 * DAY, status="missing")
    report = await purge(catalog, media_dir, monitor, 365, NOW, delete_originals=True)
    assert report.marked == [1] and catalog.rows[1].status == "deleted"


async def test_purge_with_nothing_old_changes_nothing(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    await ready_catalog(catalog, monitor, media_dir)
    report = await purge(catalog, media_dir, monitor, 1000, NOW, delete_originals=True)
    assert report.marked == [] and report.deleted == []
    assert all(r.status == "ready" for r in catalog.rows.values())


async def test_erase_files_deletes_what_exists_and_reports_the_rest(tmp_path: Path) -> None:
    a, b = tmp_path / "a.webm", tmp_path / "b.webm"
    a.write_bytes(b"x")
    report = await erase_files([a, b])
    assert report.deleted == [str(a)] and report.absent == [str(b)] and report.failed == []
    assert not a.exists()


async def test_erasure_finds_media_from_the_id_and_name_alone(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    await ready_catalog(catalog, monitor, media_dir)
    erased = catalog.rows[2]
    pairs = [(erased.id, erased.path)]  # what CrmService.erase_contact returns
    report = await erase_recordings(pairs, directory=monitor, media_dir=media_dir)
    assert not (media_dir / erased.media_path).exists()
    assert not (monitor / REAL[1].name).exists()
    assert len(report.deleted) == 3 and report.failed == []  # media, waveform, original
    for row in (catalog.rows[1], catalog.rows[3]):
        assert (media_dir / row.media_path).is_file()
    assert media_key(media_dir)  # the key itself stays


async def test_erasure_marks_rows_when_given_the_catalogue(
    catalog: FakeCatalog, monitor: Path, media_dir: Path
) -> None:
    await ready_catalog(catalog, monitor, media_dir)
    pairs = [(r.id, r.path) for r in list(catalog.rows.values())[:2]]
    report = await erase_recordings(
        pairs, directory=monitor, media_dir=media_dir, catalog=catalog, now=NOW
    )
    assert report.marked == [1, 2]
    assert [r.status for r in catalog.rows.values()] == ["deleted", "deleted", "ready"]
