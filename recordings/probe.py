"""Check a recording file: it exists, is not empty, decodes (pydub/ffmpeg), and how long it is.

A bad file is an answer, not an error: the result says ``corrupt`` with a sentence a manager
can read, so the worker records it and moves on.  Decoding blocks (ffmpeg subprocess), so
``probe`` runs in an executor.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydub import AudioSegment

ProbeStatus = Literal["ready", "missing", "corrupt"]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    path: Path
    status: ProbeStatus
    duration_seconds: float | None = None
    size_bytes: int | None = None
    """Size of the original file."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ready"


def ffmpeg_reason(exc: BaseException) -> str:
    """The useful last line of an ffmpeg failure (pydub puts the whole log in the message)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    reason = lines[-1] if lines else type(exc).__name__
    return reason[:200]


def load(path: str | os.PathLike[str]) -> tuple[ProbeResult, AudioSegment | None]:
    """Decode ``path`` once; the segment is handed on so transcoding need not decode again."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        return ProbeResult(p, "missing", error="file not found"), None
    except OSError as exc:
        return ProbeResult(p, "corrupt", error=f"cannot read file: {exc.strerror or exc}"), None
    if size == 0:
        return ProbeResult(p, "corrupt", size_bytes=0, error="empty file"), None
    try:
        segment = AudioSegment.from_file(p)
    except PermissionError as exc:
        return ProbeResult(p, "corrupt", size, error=f"cannot read file: {exc.strerror}"), None
    except Exception as exc:  # pydub raises many kinds on bad input
        reason = ffmpeg_reason(exc).replace(str(p), p.name)  # no server paths in the UI
        return ProbeResult(p, "corrupt", None, size, f"not a readable audio file: {reason}"), None
    frames = int(segment.frame_count())
    if frames == 0:
        return ProbeResult(p, "corrupt", 0.0, size, "no audio in file"), None
    duration = frames / segment.frame_rate
    return ProbeResult(p, "ready", duration, size), segment


def probe_file(path: str | os.PathLike[str]) -> ProbeResult:
    """Blocking probe; never raises for a bad file."""
    return load(path)[0]


async def probe(path: str | os.PathLike[str], executor: Executor | None = None) -> ProbeResult:
    """``probe_file`` in an executor."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, probe_file, path)
