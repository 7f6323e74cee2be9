"""Finding a recording file by the name the PBX reported, and nothing outside the directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recordings.locate import RecordingLocator, UnsafeName, base_name, check_name

from .conftest import REAL


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_finds_every_real_recording_by_its_base_name(monitor: Path) -> None:
    locator = RecordingLocator(monitor)
    for src in REAL:
        found = await locator.locate(src.name)
        assert found == (monitor / src.name).resolve()


async def test_finds_a_file_in_a_dated_subfolder(tmp_path: Path) -> None:
    day = tmp_path / "2026" / "11" / "23"
    day.mkdir(parents=True)
    (day / "1763900000.12.wav").write_bytes(b"RIFF")
    locator = RecordingLocator(tmp_path)
    assert await locator.locate("1763900000.12.wav") == (day / "1763900000.12.wav").resolve()


def test_a_full_pbx_path_is_reduced_to_its_base_name() -> None:
    assert base_name("/var/spool/asterisk/monitor/2026/11/23/out-201-x.wav") == "out-201-x.wav"
    assert base_name("1763900000.12.wav") == "1763900000.12.wav"
    assert base_name(" C:\\rec\\a.wav ") == "a.wav"


def test_a_name_without_extension_finds_the_file_with_one(tmp_path: Path) -> None:
    (tmp_path / "q-5551000-1763900000.3.gsm").write_bytes(b"x")
    found = RecordingLocator(tmp_path).find("q-5551000-1763900000.3")
    assert found is not None and found.name == "q-5551000-1763900000.3.gsm"


@pytest.mark.parametrize(
    "name",
    [
        "../secret.wav",
        "..",
        ".",
        "",
        "a/b.wav",
        "sub\\x.wav",
        "x\0.wav",
        "/etc/passwd",
        "..wav/..",
        "line\nbreak.wav",
    ],
)
def test_names_that_are_not_plain_base_names_are_refused(tmp_path: Path, name: str) -> None:
    locator = RecordingLocator(tmp_path / "monitor")
    with pytest.raises(UnsafeName):
        locator.find(name)
    with pytest.raises(UnsafeName):
        check_name(name)


def test_a_symlink_leading_out_of_the_directory_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "private.wav"
    outside.write_bytes(b"RIFF secret")
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    os.symlink(outside, monitor / "1763900000.1.wav")
    (monitor / "2026").mkdir()
    os.symlink(outside, monitor / "2026" / "1763900000.2.wav")
    locator = RecordingLocator(monitor)
    assert locator.find("1763900000.1.wav") is None
    assert locator.find("1763900000.2.wav") is None


def test_the_index_is_reused_and_rescanned_only_after_the_interval(tmp_path: Path) -> None:
    clock = Clock()
    day = tmp_path / "2026" / "11" / "23"
    day.mkdir(parents=True)
    for i in range(50):
        (day / f"1763900000.{i}.wav").write_bytes(b"x")
    locator = RecordingLocator(tmp_path, rescan_interval=30, clock=clock)
    for i in range(50):
        assert locator.find(f"1763900000.{i}.wav") is not None
    assert locator.scans == 1

    # a late file in a subfolder: not found before the interval, found after it
    assert locator.find("1763900000.99.wav") is None
    (day / "1763900000.99.wav").write_bytes(b"x")
    clock.now += 5
    assert locator.find("1763900000.99.wav") is None
    assert locator.scans == 1
    clock.now += 30
    assert locator.find("1763900000.99.wav") == (day / "1763900000.99.wav").resolve()
    assert locator.scans == 2


def test_a_late_file_at_the_top_level_needs_no_rescan(tmp_path: Path) -> None:
    locator = RecordingLocator(tmp_path, rescan_interval=3600, clock=Clock())
    assert locator.find("late.wav") is None
    (tmp_path / "late.wav").write_bytes(b"x")
    assert locator.find("late.wav") == (tmp_path / "late.wav").resolve()
    assert locator.scans == 1


def test_a_missing_directory_finds_nothing(tmp_path: Path) -> None:
    assert RecordingLocator(tmp_path / "not-mounted").find("a.wav") is None
