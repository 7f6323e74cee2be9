"""Translation entry points shared by templates and Python code.

Every user-facing string goes through ``_`` / ``ngettext`` (Python) or ``_()`` /
``{% trans %}`` (templates), so that the catalogs can be extracted from one place.
The language of the current request lives in a context variable, so code far from the
request (a flash message, a validation error) translates without being handed it.
"""

from __future__ import annotations

import contextvars
from typing import Any

CURRENT_LANGUAGE: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_language", default="en"
)


def gettext(message: str, **variables: Any) -> str:
    text = message
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
    text = singular if n == 1 else plural
    variables.setdefault("num", n)
    return text % variables


_ = gettext
