"""What the live hub knows of a call in progress (``LiveState``), which lane its events
take (``lane_of``), and who may see it how (``view_of``)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from ami_bridge.facts import CallProgress
from crm.events import Event

from .live_streams import Viewer


@dataclass
class LiveState:
    linkedid: str
    progress: CallProgress
    contact_id: int | None
    contact_name: str | None
    match_reason: str
    started_at: float
    rung: set[str] = field(default_factory=set)
    answered_at: float | None = None
    seen: float = field(default_factory=time.monotonic)
    info: dict[str, Any] | None = None
    info_task: asyncio.Task[dict[str, Any]] | None = None
    version: int = 0
    cache: dict[Any, Any] = field(default_factory=dict)
    """Rendered JSON and rows of the current ``version`` (shared by every viewer)."""
    from_store: bool = False
    """Known only from the store's ``live_calls`` (no bus event seen yet): dropped when
    a later seed no longer finds it there."""
    popped: set[str] = field(default_factory=set)
    """Extensions a message of this call has shown its pop to (``LiveHub._fold``)."""
    owed: set[str] = field(default_factory=set)
    """Extensions no message showed the pop to yet whose pop a folded change left to the
    next one (``LiveHub._fold``)."""

    def changed(self) -> None:
        self.version += 1
        self.cache.clear()

    @property
    def audience(self) -> frozenset[str]:
        """Every extension this call concerns: rung, ringing, answering, calling."""
        p = self.progress
        out = set(self.rung) | set(p.ringing)
        if p.answered_by:
            out.add(p.answered_by)
        if p.agent:
            out.add(p.agent)
        if p.direction != "inbound" and p.caller:
            out.add(p.caller)
        if p.direction == "internal" and p.callee:
            out.add(p.callee)
        return frozenset(out)


def holder_of(p: CallProgress) -> str | None:
    """Who has the call now: the rep a transfer handed it to, else whoever answered it
    (unless they handed it on)."""
    return p.agent or (None if p.answered_by in p.handed_on else p.answered_by)


def shows_pop(st: LiveState, progress: CallProgress | None = None) -> set[str]:
    """The extensions a change of a call (``progress``, else the call's current one)
    shows the screen pop to, as ``view_of`` decides it for their phones: those ringing,
    whoever has the call now, and, until somebody answers, those rung before."""
    p = progress or st.progress
    if p.state == "ended":
        return set()
    out = set(p.ringing)
    holder = holder_of(p)
    if holder:
        out.add(holder)
    if not p.answered_by:
        out |= st.rung
    return out


def lane_of(event: Event) -> str:
    """The call an event is about (its linkedid), or "" for every other event."""
    if event.kind == "call_progress":
        progress = getattr(event.payload, "progress", event.payload)
        return str(getattr(progress, "linkedid", "") or "")
    if event.kind == "call_recorded":
        call = getattr(event.payload, "call", event.payload)
        return str(getattr(call, "linkedid", "") or "")
    return ""


def view_of(viewer: Viewer, st: LiveState) -> tuple[str | None, str | None, bool]:
    """(``me``, ``pop``, ``listed``) of a live call for one viewer.

    ``me``: how the call involves the viewer's own phone (``caller``, ``answered``,
    ``ringing``, ``rung``, ``transferred``: they answered it and handed it on); ``pop``:
    ``ringing`` or ``on_call`` while the screen pop should show; ``listed``: whether the
    call belongs in the viewer's live list.  A transfer offers an answered call on: its
    target rings (``ringing``) and then has it (``agent``)."""
    p = st.progress
    mine = viewer.extensions
    if p.state == "ended":
        return None, None, False
    me: str | None = None
    pop: str | None = None
    holder = holder_of(p)
    if p.direction != "inbound" and p.caller in mine:
        me = "caller"  # they placed it (or their click-to-call rings them first): no pop
    elif holder is not None and holder in mine:
        me, pop = "answered", "on_call"
    elif mine & set(p.ringing):
        me, pop = "ringing", "ringing"
    elif mine & set(p.handed_on):
        me = "transferred"  # theirs once, handed on since: listed, no pop
    elif p.answered_by:
        me = None  # answered elsewhere
    elif mine & st.rung:
        me, pop = "rung", "ringing"  # stopped ringing, nobody answered yet: keep the pop
    if me is not None:
        return me, pop, True
    audience = st.audience
    if viewer.watch is None:
        listed = True
    elif viewer.role == "manager":
        listed = bool(viewer.watch & audience) or not audience
    else:
        listed = False
    return None, None, listed
