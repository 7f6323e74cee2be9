"""The pure call tracker: AMI events (with their times) in, call facts out."""

from .tracker import CallTracker

__all__ = ["CallTracker"]
