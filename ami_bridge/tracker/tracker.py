"""Stub: replaced by the real tracker."""

from __future__ import annotations

from ..facts import Fact
from ..profile import PbxProfile
from ..protocol import Message


class CallTracker:
    def __init__(self, profile: PbxProfile | None = None) -> None:
        self.profile = profile or PbxProfile()

    def wants(self, name: str, frame: str) -> bool:
        return True

    def feed(self, msg: Message, at: float) -> list[Fact]:
        return []

    def tick(self, at: float) -> list[Fact]:
        return []

    def begin_resync(self, at: float) -> None:
        pass

    def flush(self) -> list[Fact]:
        return []
