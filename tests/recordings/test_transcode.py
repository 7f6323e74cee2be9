"""Transcoding for the browser: same length, small, mono Opus/WebM, atomic, unguessable name,
a waveform next to it, and the event loop keeps running meanwhile."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from pydub import AudioSegment

from recordings.locate import UnsafeName
from recordings.transcode import (
    MEDIA_SUFFIX,
    WAVEFORM_POINTS,
    media_file,
    media_key,
    media_token,
    transcode,
    waveform_name_for,
)

from .conftest import REAL, make_tone, wav_seconds


def decoded_seconds(path: Path) -> float:
    seg = AudioSegment.from_file(path)
    return seg.frame_count() / seg.frame_rate


@pytest.mark.parametrize("src", REAL, ids=lambda p: p.name[:32])
async def test_real_recordings_transcode_to_the_same_length(src: Path, media_dir: Path) -> None:
    result, media = await transcode(src, media_dir, "t" + src.stem[-6:].replace(".", ""))
    assert result.status == "ready" and media is not None
    out = media_dir / media.media_name
    assert out.suffix == MEDIA_SUFFIX
    assert decoded_seconds(out) == pytest.approx(wav_seconds(src), abs=0.2)
    assert media.size_bytes == out.stat().st_size
    assert media.size_bytes < src.stat().st_size / 4  # compact
    info = AudioSegment.from_file(out)
    assert info.channels == 1


async def test_the_output_is_opus_in_webm(media_dir: Path) -> None:
    _, media = await transcode(REAL[0], media_dir, "abc")
    assert media is not None
    head = (media_dir / media.media_name).read_bytes()[:64]
    assert head.startswith(b"\x1a\x45\xdf\xa3")  # EBML (Matroska/WebM)
    assert b"webm" in head
    assert b"A_OPUS" in (media_dir / media.media_name).read_bytes()[:4096]


async def test_a_waveform_of_peaks_sits_next_to_the_media(media_dir: Path) -> None:
    _, media = await transcode(REAL[0], media_dir, "abc")
    assert media is not None
    assert media.waveform_name == waveform_name_for(media.media_name)
    data = json.loads((media_dir / media.waveform_name).read_text())
    assert len(data["peaks"]) == WAVEFORM_POINTS
    assert all(0.0 <= v <= 1.0 for v in data["peaks"])
    assert max(data["peaks"]) > 0.1  # a real conversation, not silence
    assert data["duration"] == pytest.approx(wav_seconds(REAL[0]), abs=0.01)


async def test_silence_gives_a_flat_waveform(tmp_path: Path, media_dir: Path) -> None:
    silent = tmp_path / "silent.wav"
    AudioSegment.silent(duration=2000, frame_rate=8000).export(silent, format="wav")
    _, media = await transcode(silent, media_dir, "abc")
    assert media is not None
    peaks = json.loads((media_dir / media.waveform_name).read_text())["peaks"]
    assert peaks == [0.0] * WAVEFORM_POINTS


async def test_a_corrupt_source_writes_nothing(tmp_path: Path, media_dir: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + bytes(range(256)) * 50)
    result, media = await transcode(junk, media_dir, "abc")
    assert result.status == "corrupt" and media is None
    assert not media_dir.exists() or list(media_dir.iterdir()) == []


async def test_no_temporary_files_are_left_behind(media_dir: Path) -> None:
    for i, src in enumerate(REAL[:3]):
        await transcode(src, media_dir, f"tok{i}")
    names = sorted(p.name for p in media_dir.iterdir())
    assert not [n for n in names if n.startswith(".tmp")]
    assert len(names) == 6


async def test_rerunning_replaces_the_same_file(media_dir: Path) -> None:
    await transcode(REAL[0], media_dir, "same")
    await transcode(REAL[0], media_dir, "same")
    assert sorted(p.name for p in media_dir.iterdir()) == ["same.peaks.json", "same.webm"]


def test_media_names_are_derived_from_a_key_not_from_the_call(media_dir: Path) -> None:
    key = media_key(media_dir)
    assert media_key(media_dir) == key  # persisted
    assert ((media_dir / ".media-key").stat().st_mode & 0o777) == 0o600
    name = REAL[0].name
    token = media_token(key, 7, name)
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert token == media_token(key, 7, name)
    assert token != media_token(key, 8, name)
    assert token != media_token(b"another key", 7, name)
    assert "1795341294" not in token and "4155550199" not in token


def test_media_file_refuses_paths(media_dir: Path) -> None:
    assert media_file(media_dir, "abc.webm") == media_dir / "abc.webm"
    for bad in ("../x.webm", "a/b.webm", ".."):
        with pytest.raises(UnsafeName):
            media_file(media_dir, bad)


async def test_the_event_loop_keeps_running_during_a_long_transcode(
    tmp_path: Path, media_dir: Path
) -> None:
    long_file = make_tone(tmp_path / "long.wav", 5 * 60.0)
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0)
    before = ticks
    result, media = await transcode(long_file, media_dir, "long")
    during = ticks - before
    beat.cancel()
    assert result.status == "ready" and media is not None
    assert during >= 5, f"the heartbeat ticked {during} times while transcoding"
