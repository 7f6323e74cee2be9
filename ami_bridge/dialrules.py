"""Dial rules: the CRM's E.164 numbers turned into what one PBX link's dial plan expects.

The CRM stores every number as E.164, but a PBX dials what its outbound routes match:
usually the national form for the home country, an international prefix (``011`` in
North America, ``00`` in most of the world) otherwise, and often an outside-line digit
in front of both.  These rules are per PBX link (each link gets its own ``DialRules``),
pure (no I/O), and the only place that knows this, so the CRM never builds a dial string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import phonenumbers

__all__ = ["DialRuleError", "DialRules", "clicked_number"]

_SAFE = re.compile(r"^[0-9*#+]*$")
_CLICK_NAME = "Call to "
"""How ``DialRules.caller_id_for`` names a click's Originate CallerID."""


def clicked_number(name: str | None, number: str | None) -> str | None:
    """The dial string a click-to-call was for, read back from the CallerID its Originate
    got from ``caller_id_for`` (``"Call to 4155550123" <4155550123>``): the only trace
    of the click a CDR row of the rep's channel keeps.  None for any other caller ID (a
    configured outbound caller ID does not say whom the rep was calling)."""
    if name and number and name.startswith(_CLICK_NAME):
        return number
    return None


class DialRuleError(ValueError):
    """A number or extension these rules cannot turn into a dial string; says why."""


# Alike in shape to tracker.model.Channel: plain fields with defaults, not one thing.
@dataclass(frozen=True, slots=True)
class DialRules:
    """How one PBX link dials.

    ``outside_prefix`` goes in front of every outside number (``9`` on many PBXs, ``0`` in
    much of Europe).  ``international_prefix`` replaces the ``+`` of numbers outside the
    home country (``011``, ``00``; ``+`` for trunks that take E.164 as is).  Numbers of
    the home country (by country calling code, so Canada is "home" for a US PBX, as NANP
    dials it) are dialled in national form, trunk prefix included (``020...`` in the UK).
    ``channel_template`` names the rep's own phone (``{ext}`` is the extension);
    ``caller_id`` is the configured outbound caller ID (``None``: show the rep whom they
    are calling).  ``extension_pattern`` says what an internal extension looks like; those
    dial as they are, without any prefix.
    """

    outside_prefix: str = ""
    international_prefix: str = "011"
    home_region: str = "US"
    channel_template: str = "PJSIP/{ext}"
    context: str = "from-internal"
    caller_id: str | None = None
    extension_pattern: str = r"\d{2,6}"
    ring_timeout_s: float = 30.0
    _ext_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _home_cc: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _SAFE.match(self.outside_prefix):
            raise DialRuleError("the outside-line prefix may hold only digits, * and #")
        if not self.international_prefix or not _SAFE.match(self.international_prefix):
            raise DialRuleError("the international prefix must be digits (or +)")
        region = self.home_region.upper()
        home_cc = phonenumbers.country_code_for_region(region)
        if home_cc == 0:
            raise DialRuleError(f"unknown home region {self.home_region!r}")
        if "{ext}" not in self.channel_template or "/" not in self.channel_template:
            raise DialRuleError("the channel template must look like PJSIP/{ext}")
        if any(c in (self.caller_id or "") for c in "\r\n"):
            raise DialRuleError("the caller ID must not contain a line break")
        if self.ring_timeout_s <= 0:
            raise DialRuleError("the ring timeout must be positive")
        try:
            ext_re = re.compile(self.extension_pattern)
        except re.error as exc:
            raise DialRuleError(f"bad extension pattern: {exc}") from None
        object.__setattr__(self, "home_region", region)
        object.__setattr__(self, "_ext_re", ext_re)
        object.__setattr__(self, "_home_cc", home_cc)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> DialRules:
        """From a settings section (e.g. ``[dialing]`` of one PBX link); missing keys
        keep their defaults, unknown keys are refused so a typo does not go unnoticed."""
        known = {f.name for f in fields(cls) if f.init}  # the settings are the fields
        unknown = sorted(set(section) - known)
        if unknown:
            raise DialRuleError(f"unknown dial rule setting(s): {', '.join(unknown)}")
        values = dict(section)
        if values.get("caller_id") == "":
            values["caller_id"] = None
        return cls(**values)

    def is_extension(self, number: str) -> bool:
        """An internal extension (dials as is)."""
        return bool(self._ext_re.fullmatch(number))

    def to_dial_string(self, number: str) -> str:
        """What the PBX must dial for ``number`` (E.164, or an internal extension)."""
        number = number.strip()
        if self.is_extension(number):
            return number
        if not number.startswith("+"):
            raise DialRuleError(f"not an E.164 number or an extension: {number!r}")
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            raise DialRuleError(f"not a phone number: {number!r}") from None
        if not phonenumbers.is_possible_number(parsed):
            raise DialRuleError(f"not a possible phone number: {number!r}")
        if parsed.country_code == self._home_cc:
            national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
            dial = re.sub(r"\D", "", national)
        else:
            nsn = phonenumbers.national_significant_number(parsed)
            dial = f"{self.international_prefix}{parsed.country_code}{nsn}"
        return self.outside_prefix + dial

    def channel_for(self, extension: str) -> str:
        """The rep's own phone as an Originate ``Channel`` (``PJSIP/103``)."""
        if not self.is_extension(extension):
            raise DialRuleError(f"not an extension: {extension!r}")
        return self.channel_template.format(ext=extension)

    def caller_id_for(self, dial: str, shown: str | None = None) -> str:
        """The Originate ``CallerID``: the configured outbound caller ID, else the number
        being called, so the rep's handset shows whom it is about to dial."""
        if self.caller_id:
            return self.caller_id
        label = (shown or dial).replace('"', "")
        return f'"{_CLICK_NAME}{label}" <{dial}>'
