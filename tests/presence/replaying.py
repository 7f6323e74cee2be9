"""Feeding a recorded capture to the presence tracker the way the live link does: frames
the tracker does not want are skipped, and a resync starts when the capture's client sent
its first listing action (``resync-<tag>-...``).  ``checkpoints`` holds every rep's and
queue's view when a resync's last listing (``PJSIPShowContacts``) completed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ami_bridge.capture import read_capture
from ami_bridge.presence import AgentChange, PresenceChange, PresenceTracker, QueueView, RepView
from ami_bridge.protocol import encode_action, first

ASTERISK22 = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-22"
FIXTURES = ASTERISK22 / "presence"
"""The board's captures (their truth is about presence, not calls: kept apart from the
call tracker's scenarios)."""


def capture_dir(scenario: str) -> Path:
    found = FIXTURES / scenario
    return found if found.is_dir() else ASTERISK22 / scenario


@dataclass
class Replayed:
    tracker: PresenceTracker
    changes: list[PresenceChange] = field(default_factory=list)
    agent: list[AgentChange] = field(default_factory=list)
    checkpoints: dict[str, tuple[dict[str, RepView], dict[str, QueueView]]] = field(
        default_factory=dict
    )
    responses: dict[str, dict[str, str]] = field(default_factory=dict)
    end: float = 0.0

    def reps(self) -> dict[str, RepView]:
        return {e: self.tracker.rep_view(e, self.end) for e in self.tracker.reps}

    def queue(self, name: str) -> QueueView:
        return self.tracker.queue_view(name)


def replay(scenario: str, *, start_at: str | None = None) -> Replayed:
    """``start_at``: feed nothing before the resync of that tag (a CRM connecting then)."""
    out = Replayed(PresenceTracker())
    started = start_at is None
    for msg, at in read_capture(capture_dir(scenario) / "events.jsonl"):
        out.end = at
        action_id = first(msg.get("ActionID"))
        if "Response" in msg:
            out.responses[action_id] = {k: first(v) for k, v in msg.items()}
            if action_id.startswith("resync-") and action_id.endswith(
                ("-CoreShowChannels", "-QueueStatus")
            ):
                tag = action_id.split("-")[1]
                if not started and tag == start_at:
                    started = True
                if started and not (
                    action_id.endswith("-QueueStatus")
                    and f"resync-{tag}-CoreShowChannels" in out.responses
                ):
                    out.tracker.begin_resync(at)
            continue
        if not started or "Event" not in msg:
            continue
        name = first(msg["Event"])
        if not out.tracker.wants(name, encode_action(msg).decode()):
            continue
        for fact in out.tracker.feed(msg, at):
            if isinstance(fact, AgentChange):
                out.agent.append(fact)
            else:
                out.changes.append(fact)
        if name == "ContactListComplete" and action_id.startswith("resync-"):
            tag = action_id.split("-")[1]
            reps = {e: out.tracker.rep_view(e, at) for e in out.tracker.reps}
            queues = {q: out.tracker.queue_view(q) for q in out.tracker.queues}
            out.checkpoints[tag] = (reps, queues)
    return out
