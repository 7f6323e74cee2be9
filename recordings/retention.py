"""Delete recording files: by age (retention) and on request (GDPR erasure).

Call records stay; only the audio goes.  Retention removes the transcoded media and its
waveform of every recording older than N days, and the PBX's original too when configured
(``delete_originals``; the monitor directory is often a read-only mount, so it is off by
default).  A row is marked ``deleted`` only once every file it should lose is gone, so a file
that could not be deleted is retried on the next purge instead of being forgotten.

Erasure gets ``(recording id, reported name)`` pairs from ``CrmService.erase_contact``; the
media names are derived from them (see ``transcode.media_token``), so it works even when the
catalogue rows are already gone.  Unlinking may block on a mount: it runs in an executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import RecordingCatalog, RecordingRowLike
from .locate import RecordingLocator, UnsafeName, base_name, check_name
from .transcode import media_file, media_key, media_name, media_token, waveform_name_for

log = logging.getLogger(__name__)
DAY = 86400.0


@dataclass(slots=True)
class DeleteReport:
    """What a purge or erase did; ``failed`` holds (path, reason) to show an admin."""

    deleted: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    marked: list[int] = field(default_factory=list)
    """Recording ids marked ``deleted`` in the catalogue."""

    def merge(self, other: DeleteReport) -> None:
        self.deleted += other.deleted
        self.absent += other.absent
        self.failed += other.failed
        self.marked += other.marked


def _unlink_all(paths: list[str]) -> DeleteReport:
    report = DeleteReport()
    for p in paths:
        try:
            os.unlink(p)
            report.deleted.append(p)
        except FileNotFoundError:
            report.absent.append(p)
        except OSError as exc:
            report.failed.append((p, exc.strerror or str(exc)))
    return report


async def erase_files(
    paths: Iterable[str | os.PathLike[str]], executor: Executor | None = None
) -> DeleteReport:
    """Delete these files (already absent is fine); never raises for a file that stays."""
    todo = [os.fspath(p) for p in paths]
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, _unlink_all, todo)


def _media_paths(media_dir: Path, media: str | None) -> list[str]:
    if not media:
        return []
    try:
        path = media_file(media_dir, media)
    except UnsafeName:
        log.warning("refusing to delete media %r: not a base name", media)
        return []
    return [str(path), str(media_dir / waveform_name_for(path.name))]


async def _original(
    locator: RecordingLocator, reported: str, executor: Executor | None
) -> list[str]:
    try:
        name = check_name(base_name(reported))
    except UnsafeName:
        return []
    found = await locator.locate(name, executor)
    return [str(found)] if found is not None else []


async def purge(
    catalog: RecordingCatalog,
    media_dir: str | os.PathLike[str],
    directory: str | os.PathLike[str],
    days: float,
    now: float,
    delete_originals: bool = False,
    *,
    batch: int = 200,
    executor: Executor | None = None,
) -> DeleteReport:
    """Delete the audio of recordings created more than ``days`` days before ``now`` and mark
    them ``deleted``."""
    media = Path(media_dir)
    locator = RecordingLocator(directory)
    report = DeleteReport()
    seen: set[int] = set()
    while True:
        rows = await catalog.recordings_older_than(now - days * DAY, batch)
        fresh = [r for r in rows if r.id not in seen]
        if not fresh:
            return report
        for row in fresh:
            seen.add(row.id)
            report.merge(
                await _purge_one(catalog, row, media, locator, delete_originals, now, executor)
            )


async def _purge_one(
    catalog: RecordingCatalog,
    row: RecordingRowLike,
    media: Path,
    locator: RecordingLocator,
    delete_originals: bool,
    now: float,
    executor: Executor | None,
) -> DeleteReport:
    paths = _media_paths(media, row.media_path)
    if delete_originals:
        paths += await _original(locator, row.path, executor)
    done = await erase_files(paths, executor)
    if not done.failed:
        await catalog.mark_recording_deleted(row.id, now)
        done.marked.append(row.id)
    else:
        log.warning("recording %s kept: %s", row.id, done.failed)
    return done


async def erase_recordings(
    pairs: Iterable[tuple[int, str]],
    *,
    directory: str | os.PathLike[str],
    media_dir: str | os.PathLike[str],
    key: bytes | None = None,
    catalog: RecordingCatalog | None = None,
    now: float | None = None,
    executor: Executor | None = None,
) -> DeleteReport:
    """GDPR erasure of the files behind ``CrmService.erase_contact``'s (id, name) pairs:
    media, waveform and the PBX original.  With a ``catalog`` (and ``now``) the rows are
    marked ``deleted`` too."""
    media = Path(media_dir)
    loop = asyncio.get_running_loop()
    if key is None:
        key = await loop.run_in_executor(executor, media_key, media)
    locator = RecordingLocator(directory)
    report = DeleteReport()
    for rec_id, reported in pairs:
        paths: list[str] = []
        with contextlib.suppress(UnsafeName):
            name = check_name(base_name(reported))
            paths += _media_paths(media, media_name(media_token(key, rec_id, name)))
        if catalog is not None:
            row = await catalog.get_recording(rec_id)
            if row is not None:
                paths += [p for p in _media_paths(media, row.media_path) if p not in paths]
        paths += await _original(locator, reported, executor)
        done = await erase_files(paths, executor)
        if catalog is not None and now is not None and not done.failed:
            await catalog.mark_recording_deleted(rec_id, now)
            done.marked.append(rec_id)
        report.merge(done)
    return report
