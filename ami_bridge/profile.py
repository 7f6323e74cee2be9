"""What the tracker must be told about one PBX: which endpoints are trunks, what an
extension looks like, where recordings are named.

Direction is decided from this, never from the length of a number: a 4-digit caller ID
from a carrier is still an outside caller, and a rep's 10-digit DID is still a rep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .numbers import to_e164, valid_e164


@dataclass(frozen=True, slots=True)
class PbxProfile:
    trunk_endpoints: tuple[str, ...] = ("trunk",)
    """Endpoint names (the ``101`` of ``PJSIP/101-0000002a``) of carrier trunks; each
    entry is matched in full as a regular expression."""
    trunk_contexts: tuple[str, ...] = ("from-trunk", "from-pstn")
    """Dialplan contexts that calls from carriers arrive in."""
    extension_pattern: str = r"\d{2,6}"
    """A rep's extension, matched in full against the endpoint name or caller ID."""
    extension_map: dict[str, str] = field(default_factory=dict)
    """Endpoint name -> extension, where handsets are not named by their extension."""
    own_numbers: tuple[str, ...] = ()
    """The PBX's own DIDs (as the carrier delivers them)."""
    default_region: str = "US"
    intl_prefixes: tuple[str, ...] = ("00", "011")
    recording_vars: tuple[str, ...] = ("MIXMONITOR_FILENAME", "REC_FILE", "CALLFILENAME")
    correlation_var: str = "CRM_CALL_ID"
    """Channel variable our Originate sets, so the call record finds its click."""
    finish_grace: float = 1.0
    """Seconds to wait after a call's last hangup for its trailing Cdr and
    OriginateResponse events before the record is emitted."""
    _trunk_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _ext_re: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "_trunk_re",
            re.compile("|".join(f"(?:{p})" for p in self.trunk_endpoints) or r"(?!)"),
        )
        object.__setattr__(self, "_ext_re", re.compile(self.extension_pattern))

    def is_trunk(self, endpoint: str, context: str) -> bool:
        return bool(self._trunk_re.fullmatch(endpoint)) or context in self.trunk_contexts

    def is_extension(self, text: str | None) -> bool:
        return text is not None and bool(self._ext_re.fullmatch(text))

    # The tracker and the CDR name numbers alike, so both ask the profile (its region and
    # international prefixes) rather than each spelling the call to ``numbers``.
    def e164(self, number: str) -> str:
        """An outside number as a record names it: E.164 when it reads as one, else as the
        PBX gave it (a record keeps what it cannot read rather than losing the party)."""
        return to_e164(number, self.default_region, self.intl_prefixes) or number

    def callee_e164(self, callee: str | None) -> str | None:
        """What a record matches a contact by: the dialled number in E.164, only for an
        outside number someone can have (never an extension, never a short DID)."""
        if not callee or self.is_extension(callee):
            return None
        return valid_e164(callee, self.default_region, self.intl_prefixes)
