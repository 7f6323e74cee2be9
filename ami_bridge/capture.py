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


def anchor_time(msg: Message) -> float | None:
    """The wall time Asterisk itself wrote into an event, if any (a floor of the truth).

    ``Timestamp`` (``timestampevents=yes``) is exact; ``EventTV`` on security events has
    milliseconds; CEL ``EventTime`` and the ``<epoch>.<n>`` of a new channel's uniqueid
    are whole seconds.
    """
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
    event = msg.get("Event")
    if event == "CEL":
        return _parse_time(first(msg.get("EventTime")))
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
    anchors = [anchor_time(m) for m in messages]
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
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            moment = _dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        if moment.tzinfo is None:
            # Asterisk prints CEL times in the server's local zone; PBXes run on UTC.
            moment = moment.replace(tzinfo=_dt.UTC)
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
        wall = obj.get("_t_wall")
        parsed.append((_clean(obj), float(wall) if isinstance(wall, int | float) else None))
    if all(wall is not None for _, wall in parsed):
        return ((msg, _exact(msg, wall)) for msg, wall in parsed)
    messages = [msg for msg, _ in parsed]
    return zip(messages, estimate_times(messages), strict=True)


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


def _exact(msg: Message, wall: float | None) -> float:
    ts = msg.get("Timestamp")
    if ts:
        try:
            return float(first(ts))
        except ValueError:
            pass
    return wall if wall is not None else 0.0
