"""Where the test data lives.  The Asterisk 22 captures are ours and ship in
tests/fixtures; the cacofonisk streams are third-party and are read from ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASTERISK22 = ROOT / "tests" / "fixtures" / "asterisk-22"
SCENARIOS = sorted(p for p in ASTERISK22.iterdir() if (p / "truth.json").exists())
CACOFONISK = Path(
    os.environ.get(
        "CACOFONISK_FIXTURES", ROOT.parent / "shared" / "ami-fixtures" / "cacofonisk" / "fixtures"
    )
)


def cacofonisk_dir() -> Path:
    """The cacofonisk streams, or a loud failure naming where they were looked for."""
    if not CACOFONISK.is_dir():
        pytest.fail(
            f"cacofonisk fixtures not found at {CACOFONISK}: they are read from "
            "../shared/ami-fixtures/cacofonisk (set CACOFONISK_FIXTURES to point elsewhere)",
            pytrace=False,
        )
    return CACOFONISK
