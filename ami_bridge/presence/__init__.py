"""Who is free, ringing, talking or paused, and who waits in which queue: the pure
presence tracker beside the call tracker (AMI events in, presence facts out)."""

# The names presence.tracker imports too, on purpose: this is the package's public list.
from .facts import (
    AgentChange,
    PresenceChange,
    QueueCaller,
    QueueMember,
    QueueView,
    RepCall,
    RepView,
)
from .tracker import RESYNC_ACTIONS, PresenceTracker

__all__ = [
    "RESYNC_ACTIONS",
    "AgentChange",
    "PresenceChange",
    "PresenceTracker",
    "QueueCaller",
    "QueueMember",
    "QueueView",
    "RepCall",
    "RepView",
]
