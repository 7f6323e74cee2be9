"""How big free-form input may be, checked where every path in (API, forms, CSV import)
meets: the services and the import.  Without these a single request stored a 15 MB
``custom`` object (the database grew to 32 MB) and every page showing the contact paid for
it.

The limits are generous for real CRM data and small enough that one contact stays a few
kilobytes; a refusal names the field and the limit (``TooLarge``, which the API answers
with 413).
"""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidInput

NAME_MAX = 200
COMPANY_MAX = 200
EMAIL_MAX = 254
TAG_MAX = 50
TAGS_MAX = 50
PHONES_MAX = 20
PHONE_MAX = 40
NOTE_TOPIC_MAX = 120
NOTE_RESULT_MAX = 200
NOTE_COMMENT_MAX = 4000
CELL_MAX = 2000
"""Any one CSV cell (the columns that become ``custom`` keys included)."""
CUSTOM_MAX_BYTES = 16 * 1024
"""``custom`` as compact JSON (UTF-8)."""
CUSTOM_MAX_DEPTH = 4
CUSTOM_MAX_KEYS = 200
"""Keys of all the objects in ``custom`` together."""
CUSTOM_KEY_MAX = 64


class TooLarge(InvalidInput):
    """Input over a size limit; the message names the field and the limit."""


def check_text(field: str, value: str | None, limit: int) -> str:
    if value is not None and len(value) > limit:
        raise TooLarge(f"{field}: at most {limit} characters (got {len(value)})")
    return value or ""


def check_custom(custom: Any) -> dict[str, Any]:
    """``custom`` if it is a JSON object within the limits of size, depth and keys."""
    if custom is None:
        return {}
    if not isinstance(custom, dict):
        raise InvalidInput("custom: must be an object")
    keys = 0

    def walk(value: Any, depth: int) -> None:
        nonlocal keys
        if depth > CUSTOM_MAX_DEPTH:
            raise TooLarge(f"custom: nested deeper than {CUSTOM_MAX_DEPTH} levels")
        if isinstance(value, dict):
            keys += len(value)
            if keys > CUSTOM_MAX_KEYS:
                raise TooLarge(f"custom: more than {CUSTOM_MAX_KEYS} keys")
            for k, v in value.items():
                if not isinstance(k, str) or len(k) > CUSTOM_KEY_MAX:
                    raise TooLarge(f"custom: keys are text of at most {CUSTOM_KEY_MAX} characters")
                walk(v, depth + 1)
        elif isinstance(value, list):
            for v in value:
                walk(v, depth + 1)

    walk(custom, 1)
    try:
        size = len(json.dumps(custom, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError):
        raise InvalidInput("custom: must hold JSON values only") from None
    if size > CUSTOM_MAX_BYTES:
        raise TooLarge(f"custom: at most {CUSTOM_MAX_BYTES // 1024} KB as JSON (got {size} bytes)")
    return custom


def check_contact_fields(name: str | None = None, company: str | None = None,
                         email: str | None = None, tags: Any = None, phones: Any = None,
                         custom: Any = None) -> None:  # fmt: skip
    """Every free-form field of a contact that is given (None: not being changed)."""
    check_text("name", name, NAME_MAX)
    check_text("company", company, COMPANY_MAX)
    check_text("email", email, EMAIL_MAX)
    if tags is not None:
        tags = [t for t in tags if str(t).strip()]
        if len(tags) > TAGS_MAX:
            raise TooLarge(f"tags: at most {TAGS_MAX}")
        for tag in tags:
            check_text("tags", str(tag), TAG_MAX)
    if phones is not None:
        phones = list(phones)
        if len(phones) > PHONES_MAX:
            raise TooLarge(f"phones: at most {PHONES_MAX} numbers")
        for p in phones:
            check_text("phones", getattr(p, "raw", p) if not isinstance(p, str) else p,
                       PHONE_MAX)  # fmt: skip
    if custom is not None:
        check_custom(custom)
