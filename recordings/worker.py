"""The background job that turns catalogued recording names into playable media.

Each round takes what the catalogue says needs checking and, per row: finds the file, probes
it, transcodes it, and records the answer (``ready``, ``corrupt`` or ``missing``).  A file that
is not there yet stays ``missing`` and is retried (MixMonitor may close its file after the
hangup, a mounted spool may lag) until ``give_up_after`` seconds after the row was created;
then the row keeps ``missing`` with the error ``file never appeared``.  A file modified in the
last ``settle_seconds`` is left for the next round, so a recording still being written is not
cut short.  All file work runs in the executor; one bad row is logged and never stops a round.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import KW_ONLY, InitVar, dataclass, field
from pathlib import Path

from .catalog import GAVE_UP, RecordingCatalog, RecordingRowLike
from .locate import RecordingLocator, UnsafeName, base_name, check_name
from .probe import ProbeResult
from .transcode import DEFAULT_MEDIA_DIR, MediaFile, media_key, media_token, transcode_file

log = logging.getLogger(__name__)
MAX_WINDOW = 10_000


def _examine(
    path: Path, media_dir: Path, token: str, now: float, settle: float
) -> tuple[ProbeResult, MediaFile | None] | None:
    """Blocking: None while the file is still being written, else probe (+ transcode)."""
    try:
        age = now - path.stat().st_mtime
    except OSError:
        age = settle  # let load() report it
    if 0 <= age < settle:
        return None
    return transcode_file(path, media_dir, token)


@dataclass(eq=False, repr=False)  # by identity; repr never shows settings or the media key
class RecordingWorker:
    catalog: RecordingCatalog
    directory: InitVar[str | os.PathLike[str]]
    media_dir: Path = DEFAULT_MEDIA_DIR  # any str or os.PathLike: made a Path on the way in
    clock: Callable[[], float] = time.time
    executor: Executor | None = None
    _: KW_ONLY
    give_up_after: float = 24 * 3600.0
    retry_interval: float = 60.0
    settle_seconds: float = 5.0
    rescan_interval: InitVar[float] = 30.0
    batch_size: int = 100
    concurrency: int = 2
    key: InitVar[bytes | None] = None
    locator: RecordingLocator = field(init=False)
    _key: bytes | None = field(init=False)
    _skipped: int = field(init=False, default=0)

    def __post_init__(
        self, directory: str | os.PathLike[str], rescan_interval: float, key: bytes | None
    ) -> None:
        self.locator = RecordingLocator(directory, rescan_interval=rescan_interval)
        self.media_dir = Path(self.media_dir)
        self.concurrency = max(1, self.concurrency)
        self._key = key

    async def run_once(self) -> int:
        """One round; returns how many rows got a new status or error."""
        key = await self._media_key()
        # rows skipped last round (given up, waiting to retry, being written) come back
        # first (oldest first): widen the window by that many so new rows are not starved
        limit = min(self.batch_size + self._skipped, MAX_WINDOW)
        rows = await self.catalog.recordings_to_check(limit=limit)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(row: RecordingRowLike) -> bool | None:
            async with gate:
                return await self._guarded(row, key)

        done = await asyncio.gather(*(one(r) for r in rows))
        self._skipped = sum(1 for d in done if d is None)
        return sum(1 for d in done if d)

    async def run_forever(self, interval: float) -> None:
        """Rounds every ``interval`` seconds until cancelled; a failed round is logged."""
        while True:
            try:
                n = await self.run_once()
                if n:
                    log.info("recordings: %d updated", n)
            except Exception:
                log.exception("recordings round failed; retrying in %.0f s", interval)
            await asyncio.sleep(interval)

    # -- one row ---------------------------------------------------------------------

    async def _guarded(self, row: RecordingRowLike, key: bytes) -> bool | None:
        """True: updated; False: failed (logged); None: skipped for now."""
        try:
            return await self._process(row, key)
        except Exception as exc:
            log.exception("recording %s (%s) failed", row.id, row.path)
            try:  # keep the status, say what went wrong, try again next round
                await self.catalog.update_recording(
                    row.id, status=row.status, error=f"worker error: {exc}"[:300], at=self.clock()
                )
            except Exception:
                log.exception("recording %s: could not record the failure", row.id)
            return False

    async def _process(self, row: RecordingRowLike, key: bytes) -> bool | None:
        now = self.clock()
        if row.status == "missing":
            if row.error == GAVE_UP:
                return None
            if row.checked_at is not None and now - row.checked_at < self.retry_interval:
                return None
        update = self.catalog.update_recording
        try:
            name = check_name(base_name(row.path))
        except UnsafeName as exc:
            await update(row.id, status="corrupt", error=f"refused file name: {exc}", at=now)
            return True
        path = await self.locator.locate(name, self.executor)
        if path is None:
            gave_up = now - row.created_at >= self.give_up_after
            await update(row.id, status="missing", error=GAVE_UP if gave_up else None, at=now)
            return True
        loop = asyncio.get_running_loop()
        token = media_token(key, row.id, name)
        outcome = await loop.run_in_executor(
            self.executor, _examine, path, self.media_dir, token, now, self.settle_seconds
        )
        if outcome is None:
            return None  # still being written; next round
        result, media = outcome
        if media is None:
            await update(
                row.id,
                status=result.status,
                duration_seconds=result.duration_seconds,
                error=result.error,
                at=now,
            )
        else:
            await update(
                row.id,
                status="ready",
                duration_seconds=round(media.duration_seconds, 3),
                media_path=media.media_name,
                size_bytes=media.size_bytes,
                at=now,
            )
        return True

    async def _media_key(self) -> bytes:
        if self._key is None:
            loop = asyncio.get_running_loop()
            self._key = await loop.run_in_executor(self.executor, media_key, self.media_dir)
        return self._key
