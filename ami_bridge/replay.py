"""Replay a capture through the same tracker the live bridge uses.

``python run.py replay PATH`` is a contract other tools rely on: one JSON object per
finished call on stdout, a clear message on stderr and a non-zero exit for bad input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from .capture import CaptureError, read_capture
from .facts import CallRecord, Fact, PbxIncompatible
from .profile import PbxProfile
from .tracker import CallTracker


def replay_facts(
    messages: Iterable[tuple[dict, float]], profile: PbxProfile | None = None
) -> list[Fact]:
    """Every fact the tracker produces for a stream, in order, ending with a flush."""
    tracker = CallTracker(profile)
    facts: list[Fact] = []
    wants = tracker.wants
    for msg, at in messages:
        name = msg.get("Event")
        if isinstance(name, str) and not wants(name, _frame_hint(msg, name)):
            continue
        facts.extend(tracker.feed(msg, at))
    facts.extend(tracker.flush())
    return facts


def _frame_hint(msg: dict, name: str) -> str:
    # wants() looks at the raw frame only to pick VarSets by variable name.
    if name == "VarSet":
        return f"Variable: {msg.get('Variable', '')}\r\n"
    return ""


class PbxTooOld(CaptureError):
    """The capture comes from an Asterisk older than 13: its calls cannot be recorded right."""


def replay_file(path: str | Path, profile: PbxProfile | None = None) -> list[CallRecord]:
    """The finished calls of a capture file (raises CaptureError for unreadable input,
    PbxTooOld for traffic of an Asterisk this bridge cannot record right)."""
    facts = replay_facts(read_capture(path), profile)
    for fact in facts:
        if isinstance(fact, PbxIncompatible):
            raise PbxTooOld(fact.message)
    return [f for f in facts if isinstance(f, CallRecord)]


def main(
    path: str, profile: PbxProfile | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    try:
        records = replay_file(path, profile)
    except CaptureError as exc:
        print(f"replay: {exc}", file=err)
        return 2
    for record in records:
        out.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
    out.flush()
    return 0
