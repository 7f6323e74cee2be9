"""AMI wire format: bytes to messages and back.

panoramisk's own parser builds a rich ``Message`` object per event; the tracker needs a
plain ``dict`` of headers and most of the traffic (RTCP, VarSet bookkeeping, CEL) is
dropped unread, so this reader splits frames itself and lets the caller skip a frame by
its event name before any header is parsed.  That is where the bridge's speed comes from.
"""

from __future__ import annotations

import codecs
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


class FrameReader:
    """Incremental splitter for a TCP byte stream into AMI frames.

    ``skip`` is asked with the event name and the raw text of each event frame; frames it
    rejects are never parsed.  A frame over ``max_frame`` characters is dropped with a
    warning and the reader discards everything up to the next blank line, so memory stays
    bounded whatever the peer sends, and the tail of a dropped frame never comes out as
    a frame of its own (it could look like a ``Response`` and answer someone's action).

    Bytes are decoded incrementally: a UTF-8 character split across two reads (a caller
    name, say) is decoded whole.  An unterminated frame is kept as a list of pieces and
    joined only once its terminator arrives, so a peer trickling one byte per read costs
    linear, not quadratic, time.
    """

    __slots__ = ("_decoder", "_discarding", "_max", "_parts", "_size", "_skip", "_tail",
                 "dropped", "frames")

    def __init__(
        self,
        skip: Callable[[str, str], bool] | None = None,
        max_frame: int = MAX_FRAME_BYTES,
    ) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._tail = ""  # the last characters seen, for a terminator split across reads
        self._discarding = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._skip = skip
        self._max = max_frame
        self.dropped = 0
        self.frames = 0

    @property
    def buffered(self) -> int:
        """Characters held for a frame whose end has not arrived yet."""
        return self._size

    def feed(self, data: bytes) -> list[Message]:
        chunk = self._decoder.decode(data)
        if not chunk:
            return []
        # A terminator may straddle the previous read and this one.
        probe = self._tail + chunk
        if "\n\n" not in probe and "\n\r\n" not in probe:
            self._hold(chunk)
            return []
        if self._discarding:
            text = probe  # what is before the terminator is dropped below anyway
        elif self._parts:
            text = "".join(self._parts) + chunk
        else:
            text = chunk
        self._parts, self._size, self._tail = [], 0, ""
        if "\r\n\r\n" in text:
            sep = "\r\n\r\n"
        elif "\n\n" in text:
            sep = "\n\n"
        else:  # "\n\r\n": a CR-LF frame whose last line ended in a bare LF
            sep = "\n\r\n"
        parts = text.split(sep)
        rest = parts.pop()
        if self._discarding:
            # The first piece is the tail of a frame already dropped as oversized.
            self._discarding = False
            parts = parts[1:]
        if rest:
            self._hold(rest)
        out: list[Message] = []
        skip = self._skip
        limit = self._max
        frames = 0
        # The loop runs for every frame of a busy PBX, most of them skipped: the event's
        # name (Asterisk always sends it first) is read here, without a call per frame.
        for part in parts:
            if not part:
                continue
            frames += 1
            if part.startswith(BANNER_PREFIX):  # the greeting is one line, not a frame
                line, _, part = part.partition("\n")
                out.append({"Banner": line.strip()})
                if not part.strip():
                    continue
            if len(part) > limit:
                self.dropped += 1
                log.warning("dropped an oversized AMI frame (%d bytes)", len(part))
                continue
            if skip is not None and part.startswith("Event: "):
                end = part.find("\r", 7)
                if end < 0:
                    end = part.find("\n", 7)
                if skip(part[7:end] if end >= 0 else part[7:], part):
                    continue
            out.append(parse_frame(part.lstrip("\r\n")))
        self.frames += frames
        return out

    def _hold(self, piece: str) -> None:
        """Keep an unterminated piece, or drop the frame once it grows past the limit."""
        self._tail = piece[-3:] if len(piece) >= 3 else (self._tail + piece)[-3:]
        if self._discarding:
            return
        self._parts.append(piece)
        self._size += len(piece)
        if self._size > self._max:
            self.dropped += 1
            log.warning("discarded %d bytes of an unterminated AMI frame", self._size)
            self._parts, self._size = [], 0
            self._discarding = True

    def close(self) -> list[Message]:
        """The last frame of a stream that ended without its blank line."""
        rest = ("".join(self._parts) + self._decoder.decode(b"", final=True)).strip("\r\n")
        self._parts, self._size, self._tail = [], 0, ""
        discarding, self._discarding = self._discarding, False
        if not rest or discarding:
            return []
        return [parse_frame(rest)]


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
