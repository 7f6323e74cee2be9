"""AMI wire format: bytes to messages and back.

panoramisk's own parser builds a rich ``Message`` object per event; the tracker needs a
plain ``dict`` of headers and most of the traffic (RTCP, VarSet bookkeeping, CEL) is
dropped unread, so this reader splits frames itself and lets the caller skip a frame by
its event name before any header is parsed.  That is where the bridge's speed comes from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping

log = logging.getLogger(__name__)

Message = dict[str, "str | list[str]"]

BANNER_PREFIX = "Asterisk Call Manager"
# One AMI frame is a few kB; a frame this large is garbage or an attack, never a real event.
MAX_FRAME_BYTES = 256 * 1024


def parse_frame(text: str) -> Message:
    """Headers of one frame (without its blank-line terminator).

    A header that repeats (``ChanVariable``, ``Variable``) becomes a list, in wire order.
    A line without a colon is the banner, or noise that is dropped.
    """
    msg: Message = {}
    for line in text.split("\r\n") if "\r\n" in text else text.split("\n"):
        key, sep, value = line.partition(":")
        if not sep:
            if line.startswith(BANNER_PREFIX):
                msg["Banner"] = line.strip()
            continue
        if value[:1] == " ":
            value = value[1:]
        if key in msg:
            old = msg[key]
            if isinstance(old, list):
                old.append(value)
            else:
                msg[key] = [old, value]
        else:
            msg[key] = value
    return msg


def frame_event_name(text: str) -> str | None:
    """The ``Event`` of a frame without parsing the rest (Asterisk always sends it first)."""
    if text.startswith("Event: "):
        end = text.find("\r", 7)
        if end < 0:
            end = text.find("\n", 7)
        return text[7:end] if end >= 0 else text[7:]
    return None


class FrameReader:
    """Incremental splitter for a TCP byte stream into AMI frames.

    ``skip`` is asked with the event name and the raw text of each event frame; frames it
    rejects are never parsed.  A frame over ``max_frame`` bytes is dropped with a warning
    and the reader resynchronises at the next blank line, so memory stays bounded whatever
    the peer sends.
    """

    __slots__ = ("_buf", "_max", "_skip", "dropped", "frames")

    def __init__(
        self,
        skip: Callable[[str, str], bool] | None = None,
        max_frame: int = MAX_FRAME_BYTES,
    ) -> None:
        self._buf = ""
        self._skip = skip
        self._max = max_frame
        self.dropped = 0
        self.frames = 0

    def feed(self, data: bytes) -> list[Message]:
        text = self._buf + data.decode("utf-8", errors="replace")
        if "\r\n\r\n" in text:
            sep = "\r\n\r\n"
        elif "\n\n" in text:
            sep = "\n\n"
        else:
            self._buf = self._trim(text)
            return []
        parts = text.split(sep)
        rest = parts.pop()
        self._buf = self._trim(rest)
        out: list[Message] = []
        skip = self._skip
        for part in parts:
            if not part:
                continue
            self.frames += 1
            if part.startswith(BANNER_PREFIX):  # the greeting is one line, not a frame
                line, _, part = part.partition("\n")
                out.append({"Banner": line.strip()})
                if not part.strip():
                    continue
            if len(part) > self._max:
                self.dropped += 1
                log.warning("dropped an oversized AMI frame (%d bytes)", len(part))
                continue
            if skip is not None:
                name = frame_event_name(part)
                if name is not None and skip(name, part):
                    continue
            out.append(parse_frame(part.lstrip("\r\n")))
        return out

    def _trim(self, rest: str) -> str:
        if len(rest) > self._max:
            self.dropped += 1
            log.warning("discarded %d bytes of an unterminated AMI frame", len(rest))
            return ""
        return rest

    def close(self) -> list[Message]:
        """The last frame of a stream that ended without its blank line."""
        rest, self._buf = self._buf.strip("\r\n"), ""
        return [parse_frame(rest)] if rest else []


def iter_messages(data: bytes, skip: Callable[[str, str], bool] | None = None) -> Iterator[Message]:
    reader = FrameReader(skip=skip, max_frame=max(MAX_FRAME_BYTES, 1))
    yield from reader.feed(data)
    yield from reader.close()


def encode_action(fields: Mapping[str, object] | Iterable[tuple[str, object]]) -> bytes:
    """One AMI frame.  Values with CR/LF are refused: they would inject extra headers."""
    items = fields.items() if isinstance(fields, Mapping) else fields
    lines: list[str] = []
    for key, value in items:
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            text = str(v)
            if "\r" in text or "\n" in text or "\r" in key or "\n" in key:
                raise ValueError(f"AMI header {key!r} contains a line break")
            lines.append(f"{key}: {text}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def first(value: str | list[str] | None) -> str:
    """A header's value as one string (the first, if the header repeated)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return value[0] if value else ""
    return value
