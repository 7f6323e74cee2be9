"""Read recorded AMI traffic: raw byte streams, our JSON-lines captures, cacofonisk arrays.

Every reader yields ``(message, time)`` pairs, the same shape the live link feeds the
tracker, so a replay exercises exactly the live code path after the socket.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

from .protocol import FrameReader, Message, first

# Headers that a capture's own bookkeeping adds (events.jsonl) and Asterisk never sends.
_CAPTURE_META_PREFIX = "_"


class CaptureError(ValueError):
    """The file is not a capture this bridge can read; the message says why, for a human."""


_UNIQUEID_EPOCH = re.compile(r"(?:^|-)(\d{9,11})\.\d+$")


class StreamClock:
    """Wall time for traffic that carries no receive times (raw bytes, cacofonisk arrays).

    Asterisk stamps some events itself: ``Timestamp`` (when ``timestampevents=yes``),
    ``EventTV`` on security events, ``EventTime`` on CEL, and uniqueids are
    ``<epoch>.<n>`` at channel creation.  Each is a floor of the true time, so the running
    maximum of them is never ahead of the truth and at most a second behind it: good enough
    for ring and talk seconds, and it never runs backwards.
    """

    __slots__ = ("now", "_step")

    def __init__(self, start: float = 0.0, step: float = 0.0) -> None:
        self.now = start
        self._step = step

    def stamp(self, msg: Message) -> float:
        anchor = self._anchor(msg)
        if anchor is not None and anchor > self.now:
            self.now = anchor
        else:
            self.now += self._step
        return self.now

    @staticmethod
    def _anchor(msg: Message) -> float | None:
        ts = msg.get("Timestamp")
        if ts:
            try:
                return float(first(ts))
            except ValueError:
                pass
        tv = msg.get("EventTV")
        if tv:
            parsed = _parse_time(first(tv))
            if parsed is not None:
                return parsed
        if msg.get("Event") == "CEL":
            parsed = _parse_time(first(msg.get("EventTime")))
            if parsed is not None:
                return parsed
        if msg.get("Event") == "Newchannel":
            match = _UNIQUEID_EPOCH.search(first(msg.get("Uniqueid")))
            if match:
                return float(match.group(1))
        return None


def _parse_time(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            moment = _dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        if moment.tzinfo is None:
            # Asterisk prints CEL times in the server's local zone; PBXes run on UTC.
            moment = moment.replace(tzinfo=_dt.timezone.utc)
        return moment.timestamp()
    return None


def detect_format(head: bytes) -> str:
    """``raw``, ``jsonl`` or ``json-array`` from the first bytes of a file."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        raise CaptureError("the file is empty")
    if text[:1] == b"[":
        return "json-array"
    if text[:1] == b"{":
        return "jsonl"
    if text.startswith(b"Asterisk Call Manager") or re.match(rb"^[A-Za-z][\w-]*: ", text):
        return "raw"
    raise CaptureError(
        "not an AMI capture: expected a raw AMI stream, JSON lines or a JSON array of events"
    )


def read_capture(path: str | Path) -> Iterator[tuple[Message, float]]:
    """All messages of a capture with their times.  Raises ``CaptureError`` when unreadable."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise CaptureError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise CaptureError(f"{p}: is a directory, not a capture file") from None
    except OSError as exc:
        raise CaptureError(f"{p}: cannot read ({exc.strerror})") from None
    kind = detect_format(data[:4096])
    if kind == "raw":
        return _read_raw(data)
    if kind == "jsonl":
        return _read_jsonl(data, p)
    return _read_array(data, p)


def _read_raw(data: bytes) -> Iterator[tuple[Message, float]]:
    clock = StreamClock(step=0.0)
    reader = FrameReader()
    for msg in reader.feed(data):
        yield msg, clock.stamp(msg)
    for msg in reader.close():
        yield msg, clock.stamp(msg)


def _clean(obj: dict[str, object]) -> Message:
    msg: Message = {}
    for key, value in obj.items():
        if key.startswith(_CAPTURE_META_PREFIX) or key == "content":
            continue
        if isinstance(value, list):
            msg[key] = [str(v) for v in value]
        elif value is None:
            msg[key] = ""
        else:
            msg[key] = str(value)
    return msg


def _read_jsonl(data: bytes, path: Path) -> Iterator[tuple[Message, float]]:
    clock = StreamClock(step=0.0)
    lines = data.decode("utf-8", errors="replace").splitlines()
    parsed: list[tuple[Message, float | None]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CaptureError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise CaptureError(f"{path}:{number}: each line must be a JSON object")
        wall = obj.get("_t_wall")
        parsed.append((_clean(obj), float(wall) if isinstance(wall, int | float) else None))
    for msg, wall in parsed:
        ts = msg.get("Timestamp")
        if ts:
            yield msg, clock.stamp(msg)
        elif wall is not None:
            clock.now = max(clock.now, wall)
            yield msg, wall
        else:
            yield msg, clock.stamp(msg)


def _read_array(data: bytes, path: Path) -> Iterator[tuple[Message, float]]:
    try:
        items = json.loads(data.decode("utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        raise CaptureError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise CaptureError(f"{path}: expected a JSON array of event objects")
    # No times at all: a synthetic 10 ms per event keeps order and gives non-zero durations.
    clock = StreamClock(step=0.01)
    for obj in items:
        msg = _clean(obj)
        yield msg, clock.stamp(msg)
