"""`python run.py replay PATH`: the contract other tools rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .paths import ASTERISK22, ROOT, cacofonisk_dir

KEYS = {
    "linkedid",
    "direction",
    "caller",
    "callee",
    "did",
    "rang",
    "answered",
    "answered_by",
    "final_agent",
    "transfers",
    "outcome",
    "hangup_by",
    "started_at",
    "answered_at",
    "ended_at",
    "ring_seconds",
    "talk_seconds",
    "recordings",
    "originate_id",
    "declined",
    "complete",
}


def replay(path: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "replay", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize("name", ["raw.ami", "events.jsonl"])
def test_burst_gives_all_twenty_calls_as_json_lines(name: str) -> None:
    proc = replay(ASTERISK22 / "11-burst-20-concurrent" / name)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 20
    calls = [json.loads(line) for line in lines]
    for call in calls:
        assert call.keys() >= KEYS
        assert call["started_at"].endswith("Z") and call["ended_at"] >= call["started_at"]
    outcomes = sorted(c["outcome"] for c in calls)
    assert outcomes.count("answered") == 14
    assert outcomes.count("missed") == 2 and outcomes.count("abandoned") == 4


def test_cacofonisk_array_with_transfer() -> None:
    proc = replay(cacofonisk_dir() / "xfer_blind" / "xfer_blind_abacbc.json")
    assert proc.returncode == 0, proc.stderr
    (call,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert call["transfers"][0]["kind"] == "blind"
    assert set(call["transfers"][0]) >= {"kind", "from", "to"}


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"\x00\x01binary", "not an AMI capture"), (b"{oops\n", "not valid JSON"), (b"", "empty")],
)
def test_unreadable_input_is_a_clear_error_not_a_traceback(
    tmp_path: Path, content: bytes, needle: str
) -> None:
    bad = tmp_path / "bad.capture"
    bad.write_bytes(content)
    proc = replay(bad)
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_missing_file() -> None:
    proc = replay("/no/such/capture.ami")
    assert proc.returncode != 0 and "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr
