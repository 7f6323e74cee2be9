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


def pbx_zone_offset(messages: list[Message]) -> float | None:
    """How far the PBX's local clock (CEL ``EventTime``) is ahead of UTC, in seconds.

    A CEL ``CHAN_START`` is written when the channel is created, and that channel's
    uniqueid starts with the creation's UTC epoch: the two differ by the zone (a multiple
    of 15 minutes) plus under a second.  None when no capture line shows both.
    """
    for msg in messages:
        if msg.get("Event") != "CEL" or first(msg.get("EventName")) != "CHAN_START":
            continue
        match = _UNIQUEID_EPOCH.search(first(msg.get("UniqueID")) or first(msg.get("Uniqueid")))
        local = _parse_local(first(msg.get("EventTime")))
        if match and local is not None:
            return round((local - float(match.group(1))) / 900.0) * 900.0
    return None


def _parse_local(text: str) -> float | None:
    """A zone-less ``YYYY-mm-dd HH:MM:SS[.ffffff]`` as if it were UTC (callers correct it)."""
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            moment = _dt.datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        return moment.replace(tzinfo=_dt.UTC).timestamp()
    return None


def anchor_time(msg: Message, zone_offset: float | None = None) -> float | None:
    """The wall time Asterisk itself wrote into an event, if any (a floor of the truth).

    ``Timestamp`` (``timestampevents=yes``) is exact; ``EventTV`` on security events has
    milliseconds and its zone; the ``<epoch>.<n>`` of a new channel's uniqueid is whole
    seconds.  CEL ``EventTime`` is the PBX's *local* time without a zone: it counts only
    when ``zone_offset`` (``pbx_zone_offset``) says how to bring it to UTC, never as if
    it were UTC.
    """
    stamped = _timestamp(msg)
    if stamped is not None:
        return stamped
    tv = msg.get("EventTV")
    if tv:
        parsed = _parse_time(first(tv))
        if parsed is not None:
            return parsed
    event = msg.get("Event")
    if event == "CEL" and zone_offset is not None:
        local = _parse_local(first(msg.get("EventTime")))
        return None if local is None else local - zone_offset
    if event == "Newchannel":
        match = _UNIQUEID_EPOCH.search(first(msg.get("Uniqueid")))
        if match:
            return float(match.group(1))
    return None


def estimate_times(messages: list[Message], step: float = 0.0) -> list[float]:
    """Times for traffic that carries no receive times (raw bytes, cacofonisk arrays).

    Anchors are floors of the true time, so an event lies between the anchor before it and
    one second after the anchor following it.  Within a quiet gap, an event is placed at
    the end it is closer to (counted in events): Asterisk sends its CEL and Cdr records in
    the same burst as the call events they describe.  Times never run backwards; ``step``
    spaces events when there are no anchors at all.
    """
    offset = pbx_zone_offset(messages)
    anchors = [anchor_time(m, offset) for m in messages]
    n = len(messages)
    nxt: list[tuple[float, int] | None] = [None] * n
    upcoming: tuple[float, int] | None = None
    for i in range(n - 1, -1, -1):
        if anchors[i] is not None:
            upcoming = (anchors[i], i)  # type: ignore[assignment]
        nxt[i] = upcoming
    times: list[float] = []
    now = 0.0
    prev: tuple[float, int] | None = None
    for i, msg in enumerate(messages):
        anchor = anchors[i]
        if anchor is not None and msg.get("Timestamp"):
            guess: float | None = anchor
        elif anchor is not None:
            guess = anchor
        else:
            ahead = nxt[i]
            if prev is None:
                guess = ahead[0] if ahead else None
            elif ahead is None or ahead[0] - prev[0] < 1.0:
                guess = prev[0]
            else:
                guess = ahead[0] if ahead[1] - i < i - prev[1] else prev[0]
        if anchor is not None:
            prev = (anchor, i)
        if guess is not None and guess > now:
            now = guess
        else:
            now += step
        times.append(now)
    return times


def _parse_time(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    # Only a time that names its zone: a bare local time cannot be placed in UTC.
    try:
        return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
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
    reader = FrameReader()
    messages = reader.feed(data) + reader.close()
    if not messages or not any(m.get("Event") or m.get("Response") for m in messages):
        raise CaptureError("no AMI messages found in the stream")
    return zip(messages, estimate_times(messages), strict=True)


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
        parsed.append((_clean(obj), _number(obj.get("_t_wall")), _number(obj.get("_t_rel"))))
    if not any(wall is not None or rel is not None for _, wall, rel in parsed):
        messages = [msg for msg, _, _ in parsed]
        return zip(messages, estimate_times(messages), strict=True)
    return zip(*_receive_times(parsed), strict=True)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _receive_times(
    parsed: list[tuple[Message, float | None, float | None]],
) -> tuple[list[Message], list[float]]:
    """Each message's time from what the capture recorded when it arrived.

    ``Timestamp`` when Asterisk sent one; else ``_t_wall`` (epoch); else ``_t_rel``
    (seconds since connect) placed on the wall clock by the offset the lines that carry
    both show, or failing that by the uniqueid epochs of new channels (UTC, whole
    seconds: a floor).  A line with none of these keeps the time before it.
    """
    offsets = [wall - rel for _, wall, rel in parsed if wall is not None and rel is not None]
    base: float | None = sorted(offsets)[len(offsets) // 2] if offsets else None
    if base is None:
        floors = [
            anchor - rel
            for msg, _, rel in parsed
            if rel is not None and (anchor := anchor_time(msg)) is not None
        ]
        base = max(floors) if floors else 0.0
    messages: list[Message] = []
    times: list[float] = []
    last = 0.0
    for msg, wall, rel in parsed:
        if wall is not None:
            at = _exact(msg, wall)
        elif rel is not None:
            at = _exact(msg, base + rel)
        elif msg.get("Timestamp"):
            at = _exact(msg, last)
        else:
            at = last
        last = at
        messages.append(msg)
        times.append(at)
    return messages, times


def _read_array(data: bytes, path: Path) -> Iterator[tuple[Message, float]]:
    try:
        items = json.loads(data.decode("utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        raise CaptureError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise CaptureError(f"{path}: expected a JSON array of event objects")
    messages = [_clean(obj) for obj in items]
    # No receive times: 10 ms per event keeps order and gives non-zero durations.
    return zip(messages, estimate_times(messages, step=0.01), strict=True)


def _timestamp(msg: Message) -> float | None:
    """The event's ``Timestamp`` header (``timestampevents=yes``), when it has a number."""
    ts = msg.get("Timestamp")
    if ts:
        try:
            return float(first(ts))
        except ValueError:
            pass
    return None


def _exact(msg: Message, wall: float | None) -> float:
    stamped = _timestamp(msg)
    if stamped is not None:
        return stamped
    return wall if wall is not None else 0.0
