"""HTTP ``Range`` for seekable audio: a pure answer to "which bytes, with which status".

The web layer may simply use aiohttp's ``FileResponse``, which already honours single byte
ranges; this helper is for when it streams the bytes itself (e.g. after an access check on an
open file).  Rules (RFC 9110 section 14): no header or another unit -> the whole file (200);
``bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` -> 206 with ``Content-Range``; a malformed byte
range, or one that starts past the end -> 416 with ``Content-Range: bytes */size``.  Several
ranges are answered with the whole file (allowed by the RFC; media players ask for one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclass(frozen=True, slots=True)
class RangeAnswer:
    status: int
    """200 (whole file), 206 (partial) or 416 (not satisfiable)."""
    start: int = 0
    end: int = -1
    """Inclusive last byte; ``end < start`` means no body."""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return max(0, self.end - self.start + 1)


def _whole(size: int) -> RangeAnswer:
    return RangeAnswer(200, 0, size - 1, {"Accept-Ranges": "bytes", "Content-Length": str(size)})


def _unsatisfiable(size: int) -> RangeAnswer:
    return RangeAnswer(416, 0, -1, {"Accept-Ranges": "bytes", "Content-Range": f"bytes */{size}"})


def byte_range(header: str | None, size: int) -> RangeAnswer:
    """The answer to a ``Range`` header for a file of ``size`` bytes."""
    if size < 0:
        raise ValueError("size must be >= 0")
    if not header or not header.strip():
        return _whole(size)
    unit, eq, spec = header.strip().partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return _whole(size)  # unknown unit: ignore the header
    if "," in spec:
        return _whole(size)
    m = _SPEC.match(spec)
    if m is None:
        return _unsatisfiable(size)
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return _unsatisfiable(size)
    if not first:  # suffix: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            return _unsatisfiable(size)
        start, end = max(0, size - n), size - 1
    else:
        start = int(first)
        end = size - 1 if not last else int(last)
        if end < start or start >= size:
            return _unsatisfiable(size)
        end = min(end, size - 1)
    return RangeAnswer(
        206,
        start,
        end,
        {
            "Accept-Ranges": "bytes",
            "Content-Range": f"bytes {start}-{end}/{size}",
            "Content-Length": str(end - start + 1),
        },
    )
