"""Numbers typed into the CRM (forms, CSV, search) to E.164, and E.164 back to something
people read.  Parsing is ami_bridge.numbers.to_e164 so the CRM and the bridge can never
disagree on what a number is; only the default region is the CRM's own setting.
"""

from __future__ import annotations

import re

import phonenumbers

from ami_bridge.numbers import is_withheld, to_e164

__all__ = [
    "digits_only",
    "format_display",
    "is_withheld",
    "normalize",
    "number_fragment",
    "number_search",
]

_DIGITS = re.compile(r"\D")


def normalize(raw: str | None, region: str = "US") -> str | None:
    """E.164 for ``raw`` read in ``region`` (the configured default), else None."""
    if raw is None:
        return None
    return to_e164(raw.strip(), region.upper())


def digits_only(text: str) -> str:
    return _DIGITS.sub("", text)


FRAGMENT_MIN_DIGITS = 4
"""Fewer digits than this match too many numbers to be a search."""


def number_fragment(text: str) -> str | None:
    """The digits to look for inside stored E.164 numbers when a search box holds part of
    a number ("any part of a number"), or None when it is not mostly digits.

    One rule for every list (contacts, leads, calls, the header search).  A leading
    ``00`` (international prefix) or ``0`` (trunk prefix) is dropped, since E.164 has
    neither: "020 7946" then finds +44 20 7946 ...; the match is a superset, never a miss.
    """
    text = (text or "").strip()
    digits = digits_only(text)
    if len(digits) < FRAGMENT_MIN_DIGITS or len(digits) * 2 < len(text.replace(" ", "")):
        return None
    if digits.startswith("00"):
        digits = digits[2:]
    elif digits.startswith("0"):
        digits = digits[1:]
    return digits if len(digits) >= FRAGMENT_MIN_DIGITS - 1 else None


def number_search(text: str, region: str = "US") -> tuple[str | None, str | None]:
    """(whole number, part of a number) for a search box: the E.164 number when the text
    is a complete, valid number (its calls are found exactly, through an index), else the
    digits to look for inside numbers (``number_fragment``), else (None, None).  Typing
    "555 0199" is part of a number, though a lenient parser would call it +15550199."""
    e164 = normalize(text, region) if text and text.strip() else None
    if e164 is not None:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(e164)):
                return e164, None
        except phonenumbers.NumberParseException:
            pass
    return None, number_fragment(text)


def format_display(number: str | None, region: str = "US", style: str = "auto") -> str:
    """How a number is shown: national form for numbers of the home region, international
    for everyone else (``auto``), or forced with ``national``/``international``.
    Anything that is not E.164 (an extension, a DID as dialled) is shown unchanged."""
    if not number:
        return ""
    if not number.startswith("+"):
        return number
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    if style == "national" or (
        style == "auto" and phonenumbers.region_code_for_number(parsed) == region.upper()
    ):
        fmt = phonenumbers.PhoneNumberFormat.NATIONAL
    else:
        fmt = phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(parsed, fmt)
