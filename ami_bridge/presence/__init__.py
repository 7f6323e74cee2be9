"""Who is free, ringing, talking or paused, and who waits in which queue: the pure
presence tracker beside the call tracker (AMI events in, presence facts out)."""

# The facts' public list is kept once, in facts.__all__: this package hands it on whole.
from . import facts
from .facts import *  # noqa: F403
from .tracker import RESYNC_ACTIONS, PresenceTracker

__all__ = ["RESYNC_ACTIONS", "PresenceTracker"]
__all__ += facts.__all__
