"""The AMI frame reader and the capture readers: what a byte stream or a file becomes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ami_bridge.capture import CaptureError, read_capture
from ami_bridge.protocol import FrameReader, encode_action, parse_frame

from .paths import ASTERISK22, SCENARIOS


def test_frames_split_across_reads_are_reassembled() -> None:
    data = (ASTERISK22 / "01-inbound-answered" / "raw.ami").read_bytes()
    whole = FrameReader().feed(data)
    reader = FrameReader()
    pieces: list = []
    for i in range(0, len(data), 7):  # worst case: tiny TCP segments
        pieces.extend(reader.feed(data[i : i + 7]))
    assert pieces == whole
    assert whole[0] == {"Banner": "Asterisk Call Manager/11.0.0"}
    assert whole[1]["Response"] == "Success"
    events = [m for m in whole if "Event" in m]
    assert len(events) == 148  # the README's count for this capture


def test_repeated_headers_become_lists_and_values_keep_colons() -> None:
    msg = parse_frame(
        "Event: Cdr\r\nChanVariable: A=1\r\nChanVariable: B=2\r\nData: x: y\r\nEmpty:"
    )
    assert msg == {"Event": "Cdr", "ChanVariable": ["A=1", "B=2"], "Data": "x: y", "Empty": ""}


def test_skip_filter_sees_event_name_and_frame() -> None:
    seen: list[str] = []

    def skip(name: str, frame: str) -> bool:
        seen.append(name)
        return name == "RTCPSent"

    out = FrameReader(skip=skip).feed(
        b"Event: RTCPSent\r\nA: 1\r\n\r\nEvent: Hangup\r\nB: 2\r\n\r\n"
    )
    assert seen == ["RTCPSent", "Hangup"]
    assert out == [{"Event": "Hangup", "B": "2"}]


def test_oversized_frame_is_dropped_and_reader_recovers() -> None:
    reader = FrameReader(max_frame=1000)
    out = reader.feed(b"Event: X\r\nJunk: " + b"a" * 5000)  # no terminator yet
    out += reader.feed(b"\r\n\r\nEvent: Hangup\r\nUniqueid: 1\r\n\r\n")
    assert out == [{"Event": "Hangup", "Uniqueid": "1"}]
    assert reader.dropped >= 1


def test_actions_refuse_header_injection() -> None:
    assert encode_action({"Action": "Ping", "ActionID": "a1"}) == (
        b"Action: Ping\r\nActionID: a1\r\n\r\n"
    )
    assert (
        encode_action([("Variable", ["A=1", "B=2"])]) == b"Variable: A=1\r\nVariable: B=2\r\n\r\n"
    )
    with pytest.raises(ValueError):
        encode_action({"Action": "Originate", "Exten": "100\r\nAction: Command"})


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_raw_and_jsonl_captures_hold_the_same_messages(scenario: Path) -> None:
    raw = [m for m, _ in read_capture(scenario / "raw.ami")]
    jsonl = [m for m, _ in read_capture(scenario / "events.jsonl")]
    assert [m.get("Event") for m in raw] == [m.get("Event") for m in jsonl]
    times = [t for _, t in read_capture(scenario / "raw.ami")]
    assert times == sorted(times)  # estimated times never run backwards
    truth = json.loads((scenario / "truth.json").read_text())
    assert sum(1 for m in raw if "Event" in m) == truth["capture"]["events"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n....", "not an AMI capture"),
        (b'{"Event": "Hangup"}\n{broken\n', "not valid JSON"),
        (b"[1, 2, 3]", "JSON array of event objects"),
        (b"[{]", "not valid JSON"),
    ],
)
def test_unreadable_captures_give_a_clear_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "capture"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match=message):
        list(read_capture(path))


def test_missing_file_and_directory_are_reported(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        read_capture(tmp_path / "nope.ami")
    with pytest.raises(CaptureError, match="is a directory"):
        read_capture(tmp_path)
