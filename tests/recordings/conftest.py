"""Recording files for the tests: the real MixMonitor WAVs from the Asterisk 22 captures, and
generated ones (tones, GSM, junk) made on the spot."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from tests.paths import ASTERISK22

from .fakes import FakeCatalog

REAL = sorted(ASTERISK22.glob("*/recordings/*.wav"))


def wav_seconds(path: Path) -> float:
    """Duration read with the standard library, independent of pydub."""
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def make_tone(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A 16-bit mono WAV of a tone, as MixMonitor would write it (made by ffmpeg: fast)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"sine=f=440:d={seconds}",
            "-ar",
            str(rate),
            "-ac",
            "1",
            "-c:a",
            "pcm_s16le",
            str(path),
        ],
        check=True,
    )
    return path


def ffmpeg_convert(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args, str(dst)], check=True)
    return dst


@pytest.fixture
def monitor(tmp_path: Path) -> Path:
    """A monitor directory holding the real recordings, flat like MixMonitor writes them."""
    d = tmp_path / "monitor"
    d.mkdir()
    for src in REAL:
        shutil.copy(src, d / src.name)
    return d


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
def catalog() -> FakeCatalog:
    return FakeCatalog()
