"""Find a recording by its base name under the PBX monitor directory.

MixMonitor writes either straight into the monitor directory or into dated subfolders
(``2026/11/23/``), and the directory may be a network mount with many thousands of files, so
a name index is kept and rebuilt only when a name is not found (at most once per
``rescan_interval``).  Names come from the catalogue, never from a user, but a name that is
not a plain base name is still refused, and a found path must resolve inside the directory
(a symlink pointing elsewhere is not followed out).

All filesystem work here blocks; ``locate`` runs it in an executor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from pathlib import Path

log = logging.getLogger(__name__)

KNOWN_EXTENSIONS: tuple[str, ...] = ("wav", "WAV", "gsm", "mp3", "ogg", "opus", "wav49")
"""What Asterisk's MixMonitor/Monitor write (``WAV`` is Asterisk's wav49/GSM-in-WAV)."""


class UnsafeName(ValueError):
    """A recording name that is not a plain base name (a path, ``..``, NUL...)."""


def base_name(reported: str) -> str:
    """Reduce what the PBX reported (a base name, or a full path on the PBX's disk such as
    ``/var/spool/asterisk/monitor/2026/11/23/x.wav``) to the file's base name."""
    return reported.strip().replace("\\", "/").rsplit("/", 1)[-1]


def check_name(name: str) -> str:
    """Return ``name`` if it is a plain base name, else raise ``UnsafeName``."""
    if not name or name in (".", ".."):
        raise UnsafeName(f"not a file name: {name!r}")
    if "/" in name or "\\" in name or "\0" in name or ".." in name:
        raise UnsafeName(f"not a plain base name: {name!r}")
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        raise UnsafeName("file name too long")
    if any(ord(c) < 32 for c in name):
        raise UnsafeName(f"control character in file name: {name!r}")
    return name


def candidates(name: str, extensions: Iterable[str] = KNOWN_EXTENSIONS) -> list[str]:
    """The file names ``name`` may be stored under: itself, and when it carries no known
    extension (Monitor's CALLFILENAME has none) itself with each known extension."""
    exts = tuple(extensions)
    _, dot, ext = name.rpartition(".")
    if dot and ext in exts:
        return [name]
    return [name, *(f"{name}.{e}" for e in exts)]


class RecordingLocator:
    """Maps base names to files under ``directory``; safe to share between threads."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        rescan_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        extensions: Iterable[str] = KNOWN_EXTENSIONS,
    ) -> None:
        self.directory = Path(directory)
        self.rescan_interval = rescan_interval
        self.extensions = tuple(extensions)
        self._clock = clock
        self._index: dict[str, str] = {}
        self._scanned_at: float | None = None
        self._lock = threading.Lock()
        self.scans = 0
        """How many full scans ran (for tests and the admin page)."""

    # -- blocking API ----------------------------------------------------------------

    def find(self, name: str) -> Path | None:
        """The file for ``name`` (a plain base name), or None.  Raises ``UnsafeName``."""
        check_name(name)
        names = candidates(name, self.extensions)
        for cand in names:
            hit = self._inside(self.directory / cand)
            if hit is not None:
                return hit
        hit = self._from_index(names)
        if hit is not None:
            return hit
        if self._may_rescan():
            self.rescan()
            return self._from_index(names)
        return None

    def rescan(self) -> None:
        """Rebuild the name index (one walk of the directory tree)."""
        with self._lock:
            index: dict[str, str] = {}
            root = str(self.directory)
            for dirpath, dirnames, filenames in os.walk(root, onerror=self._walk_error):
                dirnames.sort()
                for fn in filenames:
                    # the first one wins: dated folders are walked in order
                    index.setdefault(fn, os.path.relpath(os.path.join(dirpath, fn), root))
            self._index = index
            self._scanned_at = self._clock()
            self.scans += 1

    # -- async API -------------------------------------------------------------------

    async def locate(self, name: str, executor: Executor | None = None) -> Path | None:
        """``find`` in an executor: directory walks and stats must not block the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self.find, name)

    # -- internals -------------------------------------------------------------------

    def _may_rescan(self) -> bool:
        last = self._scanned_at
        return last is None or self._clock() - last >= self.rescan_interval

    def _from_index(self, names: list[str]) -> Path | None:
        index = self._index
        for cand in names:
            rel = index.get(cand)
            if rel is not None:
                hit = self._inside(self.directory / rel)
                if hit is not None:
                    return hit
        return None

    def _inside(self, path: Path) -> Path | None:
        """``path`` if it is a regular file that resolves inside the directory."""
        try:
            if not path.is_file():
                return None
            resolved = path.resolve(strict=True)
            root = self.directory.resolve(strict=True)
        except OSError:
            return None
        if not resolved.is_relative_to(root):
            log.warning("recording %s resolves outside %s; refused", path, root)
            return None
        return resolved

    def _walk_error(self, exc: OSError) -> None:
        log.warning("recordings directory scan: %s", exc)
