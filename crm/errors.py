"""The errors every CRM service raises, in a module of their own so the service
mixins (reports, tokens, catalogue, settings) can raise them without import cycles."""

from __future__ import annotations


class InvalidInput(ValueError):
    """User input the CRM refuses; the message says why."""


class NotFound(LookupError):
    pass


class Forbidden(PermissionError):
    """The user may see the thing but not make this change to it; the message says why."""
