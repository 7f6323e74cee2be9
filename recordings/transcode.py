"""Turn a PBX recording into a small file a browser plays and seeks, plus a waveform.

The format is Opus in WebM: Chromium, Firefox and current Safari play it, ffmpeg writes the
WebM cue index when the output is a file, so seeking works with plain byte ranges; mono Opus
at 16 kbit/s (``-application voip``) is clear for speech and about 2 kB per second, an eighth of
the PBX's 8 kHz WAV.

Media files are named by an HMAC of the recording's id and name under a key kept in the media
directory: a name cannot be guessed from the call, yet the same recording always maps to the
same name, so a rerun overwrites instead of leaving orphans and an erasure can find the files
even after the catalogue row is gone.  Files are written to a temporary name and renamed, so a
reader never sees half a file.

Everything here blocks (ffmpeg subprocesses, file writes); ``transcode`` runs it in an executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from pydub import AudioSegment

from .locate import UnsafeName, check_name
from .probe import ProbeResult, load

DEFAULT_MEDIA_DIR = Path("var/media")
MEDIA_SUFFIX = ".webm"
MEDIA_CONTENT_TYPE = "audio/webm; codecs=opus"
WAVEFORM_SUFFIX = ".peaks.json"
WAVEFORM_POINTS = 200
BITRATE = "16k"
ENCODER_OPTIONS = ("-ac", "1", "-application", "voip", "-map_metadata", "-1")
KEY_FILE = ".media-key"
MEDIA_MODE = 0o640  # call audio: owner and the web server's group only
_OPUS_RATES = (8000, 12000, 16000)  # the rates libopus takes that matter for phone audio


@dataclass(frozen=True, slots=True)
class MediaFile:
    """A transcoded recording inside the media directory."""

    media_name: str
    """Base name inside the media directory; what the catalogue stores as ``media_path``."""
    waveform_name: str
    size_bytes: int
    duration_seconds: float
    """Duration of the source audio."""


# -- naming ------------------------------------------------------------------------


def media_key(media_dir: str | os.PathLike[str]) -> bytes:
    """The naming key, created (0600) on first use in the media directory."""
    d = Path(media_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-key-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(key.hex())
        os.chmod(tmp, 0o600)
        # link() fails if another process made the key first: then use theirs
        try:
            os.link(tmp, path)
        except FileExistsError:
            return bytes.fromhex(path.read_text().strip())
    finally:
        os.unlink(tmp)
    return key


def media_token(key: bytes, rec_id: int, name: str) -> str:
    """128 bits of HMAC over the recording's id and base name."""
    msg = f"{rec_id}\0{name}".encode("utf-8", "surrogateescape")
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]


def media_name(token: str) -> str:
    return token + MEDIA_SUFFIX


def waveform_name_for(media: str) -> str:
    """The waveform file that sits next to a media file."""
    return media.removesuffix(MEDIA_SUFFIX) + WAVEFORM_SUFFIX


def media_file(media_dir: str | os.PathLike[str], name: str) -> Path:
    """The path of a media-directory entry; refuses anything but a plain base name."""
    check_name(name)
    return Path(media_dir) / name


# -- waveform ----------------------------------------------------------------------


def peaks(segment: AudioSegment, points: int = WAVEFORM_POINTS) -> list[float]:
    """``points`` peak amplitudes (0..1 of full scale), one per equal slice of the audio."""
    frames = int(segment.frame_count())
    full_scale = float(1 << (8 * segment.sample_width - 1))
    out: list[float] = []
    for i in range(points):
        start, end = i * frames // points, (i + 1) * frames // points
        if end <= start:
            out.append(0.0)
            continue
        peak = segment.get_sample_slice(start, end).max
        out.append(round(min(peak / full_scale, 1.0), 3))
    return out


# -- writing -----------------------------------------------------------------------


@contextlib.contextmanager
def _atomic(final: Path) -> Iterator[Path]:
    """A temporary path in the same directory, renamed over ``final`` on success."""
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-", suffix=final.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, MEDIA_MODE)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _opus_rate(rate: int) -> int:
    return next((r for r in _OPUS_RATES if rate <= r), _OPUS_RATES[-1])


def transcode_segment(
    segment: AudioSegment, media_dir: str | os.PathLike[str], token: str
) -> MediaFile:
    """Write ``<token>.webm`` and ``<token>.peaks.json`` into ``media_dir`` (blocking)."""
    d = Path(media_dir)
    d.mkdir(parents=True, exist_ok=True)
    media = media_name(token)
    if check_name(media) != media:  # pragma: no cover - token is hex
        raise UnsafeName(media)
    wave_name = waveform_name_for(media)
    duration = int(segment.frame_count()) / segment.frame_rate
    # waveform first: once the media file exists, its waveform does too
    with _atomic(d / wave_name) as tmp:
        tmp.write_text(
            json.dumps({"duration": round(duration, 3), "peaks": peaks(segment)}),
            encoding="utf-8",
        )
    with _atomic(d / media) as tmp, open(tmp, "wb") as out:
        segment.export(
            out,
            format="webm",
            codec="libopus",
            bitrate=BITRATE,
            parameters=["-ar", str(_opus_rate(segment.frame_rate)), *ENCODER_OPTIONS],
        )
        out.flush()
        os.fsync(out.fileno())
    return MediaFile(media, wave_name, (d / media).stat().st_size, duration)


def transcode_file(
    src: str | os.PathLike[str], media_dir: str | os.PathLike[str], token: str
) -> tuple[ProbeResult, MediaFile | None]:
    """Probe ``src`` and, when it decodes, transcode it; the source is decoded once.
    A bad source gives ``(corrupt result, None)``; failures writing the media raise."""
    result, segment = load(src)
    if segment is None:
        return result, None
    return result, transcode_segment(segment, media_dir, token)


async def transcode(
    src: str | os.PathLike[str],
    media_dir: str | os.PathLike[str],
    token: str,
    executor: Executor | None = None,
) -> tuple[ProbeResult, MediaFile | None]:
    """``transcode_file`` in an executor, never on the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, transcode_file, src, media_dir, token)
