"""Caller-ID numbers to E.164, the only form the CRM matches on.

The PBX hands over whatever the carrier or the handset sent: ``+14155550199``,
``4155550123``, ``00442079460958``, ``anonymous``.  International dialling prefixes
(``00``, ``011``) are the PBX's own dial plan, so they are configuration, not guesses.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

WITHHELD = frozenset(
    {"", "anonymous", "unknown", "<unknown>", "restricted", "private", "unavailable", "withheld"}
)
_NON_DIGITS = re.compile(r"[^\d+]")


def is_withheld(raw: str | None) -> bool:
    return raw is None or raw.strip().lower() in WITHHELD


@lru_cache(maxsize=65536)
def to_e164(
    raw: str | None, region: str = "US", intl_prefixes: tuple[str, ...] = ("00", "011")
) -> str | None:
    """E.164 for a dialable outside number, else None (withheld, too short, letters)."""
    if is_withheld(raw):
        return None
    assert raw is not None
    cleaned = _NON_DIGITS.sub("", raw.strip())
    if not cleaned or cleaned.count("+") > 1 or ("+" in cleaned and cleaned[0] != "+"):
        return None
    if cleaned[0] != "+":
        for prefix in intl_prefixes:
            if prefix and cleaned.startswith(prefix) and len(cleaned) > len(prefix) + 6:
                cleaned = "+" + cleaned[len(prefix) :]
                break
    try:
        number = phonenumbers.parse(cleaned, None if cleaned[0] == "+" else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=65536)
def valid_e164(
    raw: str | None, region: str = "US", intl_prefixes: tuple[str, ...] = ("00", "011")
) -> str | None:
    """E.164 only for a number that can really be dialled (``phonenumbers.is_valid_number``).

    A record's ``callee_e164`` is for matching a contact: a short DID such as ``5551000``
    read in region US has the right length to parse but is no number anyone has, so it
    must not turn into ``+15551000``.
    """
    e164 = to_e164(raw, region, intl_prefixes)
    if e164 is None or not phonenumbers.is_valid_number(phonenumbers.parse(e164, None)):
        return None
    return e164
