"""The call tracker and the presence tracker as the one tracker a link feeds.

The link asks ``wants`` before parsing a frame: either tracker wanting it is enough, and
both are fed it (each ignores what it has no handler for).  The presence tracker's
listing actions ride on the link's resync (``resync_actions``).
"""

from __future__ import annotations

from typing import Any

from ..profile import PbxProfile
from ..protocol import Message
from .tracker import PresenceTracker


def calls_and_presence(profile: PbxProfile) -> WithPresence:
    """The tracker a link feeds, from the PBX's profile alone (picklable as
    ``partial(calls_and_presence, profile)``: the tracker process builds it so)."""
    from ..tracker import CallTracker

    return WithPresence(CallTracker(profile), PresenceTracker(profile.is_extension))


class WithPresence:
    def __init__(self, calls: Any, presence: PresenceTracker) -> None:
        self.calls = calls
        self.presence = presence
        self.resync_actions = presence.resync_actions

    def wants(self, name: str, frame_text: str) -> bool:
        return self.calls.wants(name, frame_text) or self.presence.wants(name, frame_text)

    def feed(self, msg: Message, at: float) -> list[Any]:
        out = self.calls.feed(msg, at)
        try:
            found = self.presence.feed(msg, at)
        except Exception:  # the calls must be recorded even if presence trips on an event
            import logging

            logging.getLogger(__name__).exception("presence tracker failed on %r", msg)
            return out
        return out + found if found else out

    def tick(self, at: float) -> list[Any]:
        return self.calls.tick(at)

    def greeting(self, banner: str, at: float) -> list[Any]:
        greeting = getattr(self.calls, "greeting", None)
        return greeting(banner, at) if greeting is not None else []

    def begin_resync(self, at: float) -> None:
        self.calls.begin_resync(at)
        self.presence.begin_resync(at)

    def flush(self) -> list[Any]:
        return self.calls.flush()

    def open_ids(self) -> set[str]:
        return self.calls.open_ids()

    def __getattr__(self, name: str) -> Any:  # anything else the link manager reads
        return getattr(self.calls, name)
