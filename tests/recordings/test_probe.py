"""Probing: the real recordings read as ready with their true length; bad files are answers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recordings.probe import probe, probe_file

from .conftest import REAL, ffmpeg_convert, make_tone, wav_seconds


@pytest.mark.parametrize("src", REAL, ids=lambda p: p.name[:32])
async def test_real_recordings_are_ready_with_their_duration(src: Path) -> None:
    result = await probe(src)
    assert result.status == "ready", result.error
    assert result.duration_seconds == pytest.approx(wav_seconds(src), abs=0.01)
    assert result.size_bytes == src.stat().st_size
    assert result.error is None


def test_random_bytes_named_wav_are_corrupt_not_an_exception(tmp_path: Path) -> None:
    junk = tmp_path / "1763900000.7.wav"
    junk.write_bytes(os.urandom(40_000))
    result = probe_file(junk)
    assert result.status == "corrupt"
    assert result.error is not None and result.error.startswith("not a readable audio file")
    assert "\n" not in result.error and len(result.error) < 250


def test_a_wav_cut_to_its_header_is_corrupt(tmp_path: Path) -> None:
    src = REAL[0]
    cut = tmp_path / "cut.wav"
    cut.write_bytes(src.read_bytes()[:44])
    result = probe_file(cut)
    assert result.status == "corrupt"


def test_an_empty_file_is_corrupt(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.touch()
    result = probe_file(empty)
    assert (result.status, result.error) == ("corrupt", "empty file")


def test_a_missing_file_is_missing(tmp_path: Path) -> None:
    result = probe_file(tmp_path / "nope.wav")
    assert (result.status, result.error) == ("missing", "file not found")


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("call.gsm", ["-ar", "8000", "-ac", "1", "-c:a", "gsm", "-f", "gsm"]),
        ("call.WAV", ["-ar", "8000", "-ac", "1", "-c:a", "gsm_ms"]),  # Asterisk's wav49
        ("call.mp3", ["-ac", "1", "-b:a", "32k"]),
        ("call.ogg", ["-ac", "1", "-c:a", "libvorbis"]),
        ("call.opus", ["-ac", "1", "-c:a", "libopus", "-b:a", "16k", "-f", "ogg"]),
    ],
)
def test_other_pbx_formats_are_read(tmp_path: Path, name: str, args: list[str]) -> None:
    tone = make_tone(tmp_path / "tone.wav", 3.0)
    encoded = ffmpeg_convert(tone, tmp_path / name, *args)
    result = probe_file(encoded)
    assert result.status == "ready", result.error
    assert result.duration_seconds == pytest.approx(3.0, abs=0.1)
