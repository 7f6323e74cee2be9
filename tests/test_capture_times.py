"""Times a replay gives events that carry no ``Timestamp`` (``timestampevents=no``, the
stock default): the capture's own receive times, never the PBX's local CEL clock read as
UTC."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from ami_bridge.replay import replay_file
from config.settings import load_settings, pbx_profile

from .paths import ASTERISK22

PROFILE = pbx_profile(load_settings(env={}, demo=True))
SCENARIO = ASTERISK22 / "16-attended-transfer"


def _rewrite_jsonl(src: Path, dst: Path, drop: tuple[str, ...]) -> None:
    lines = []
    for line in src.read_text().splitlines():
        obj = json.loads(line)
        for key in drop:
            obj.pop(key, None)
        lines.append(json.dumps(obj))
    dst.write_text("\n".join(lines) + "\n")


def test_relative_receive_times_alone_give_the_same_call(tmp_path: Path) -> None:
    """A capture that kept only ``_t_rel`` (seconds since connect) is still timed by
    what it recorded: the same ring, hold-free talk and end as with ``_t_wall``."""
    (want,) = replay_file(SCENARIO / "events.jsonl", PROFILE)
    rel_only = tmp_path / "rel.jsonl"
    _rewrite_jsonl(SCENARIO / "events.jsonl", rel_only, ("_t_wall", "_t_mono"))
    (got,) = replay_file(rel_only, PROFILE)
    assert got.ring_seconds == pytest.approx(want.ring_seconds, abs=0.01)
    assert got.talk_seconds == pytest.approx(want.talk_seconds, abs=0.01)
    assert got.ended_at - got.started_at == pytest.approx(want.ended_at - want.started_at, abs=0.01)
    # placed on the wall clock by the uniqueids' UTC epochs: within a second
    assert got.started_at == pytest.approx(want.started_at, abs=1.0)


def _shift_cel(text: str, hours: int) -> str:
    """The same traffic from a PBX whose local time is UTC+hours: CEL EventTime moves."""

    def later(match: re.Match[str]) -> str:
        moment = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
        return "EventTime: " + (moment + dt.timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")

    return re.sub(r"EventTime: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", later, text)


@pytest.mark.parametrize("hours", [0, 2, -5])
def test_a_pbx_in_another_zone_does_not_move_the_call(tmp_path: Path, hours: int) -> None:
    """Raw bytes have no receive times, so times are estimated from what Asterisk wrote;
    CEL EventTime is local time, so a PBX on UTC+2 must give the same UTC call times."""
    (want,) = replay_file(SCENARIO / "events.jsonl", PROFILE)
    raw = tmp_path / "raw.ami"
    text = (SCENARIO / "raw.ami").read_bytes().decode("latin-1")
    raw.write_bytes(_shift_cel(text, hours).encode("latin-1"))
    (got,) = replay_file(raw, PROFILE)
    assert got.started_at == pytest.approx(want.started_at, abs=1.5)
    assert got.ended_at == pytest.approx(want.ended_at, abs=1.5)
    assert got.talk_seconds == pytest.approx(want.talk_seconds, abs=3.5)
