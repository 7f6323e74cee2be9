"""The admin's lead and callback rules, as data.

Kept apart from the ingest code so the settings page can show and edit exactly these
fields, and so tests can state a rule variant in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .phones import digits_only, normalize

CreateOn = Literal["every_call", "missed_only", "never"]


@dataclass(frozen=True, slots=True)
class LeadPolicy:
    create_on: CreateOn = "every_call"
    repeat_window_hours: float = 72.0
    """A junked lead swallows repeat calls from its number for this long; a call after
    the window reopens it as a new lead (people who were junk may come back in earnest)."""
    default_owner_id: int | None = None
    callback_sla_minutes: float = 60.0
    own_numbers: tuple[str, ...] = ()
    """The PBX's DIDs, as the carrier delivers them or in E.164."""
    default_region: str = "US"
    display_tz: str = "UTC"
    """Time zone used in generated lead names."""
    language: str = "en"
    """The install's default language: generated text (lead names) is written in it."""
    words: Callable[[str], str] = field(default=str, compare=False, repr=False)
    """Translates a phrase of generated text into ``language`` (the web layer hands in its
    catalog's gettext; the default keeps the English)."""
    _own: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        own: set[str] = set()
        for number in self.own_numbers:
            own.add(digits_only(number))
            e164 = normalize(number, self.default_region)
            if e164:
                own.add(e164)
        object.__setattr__(self, "_own", frozenset(own))

    def is_own_number(self, number: str | None) -> bool:
        """True for one of the PBX's DIDs in any of its spellings."""
        if not number:
            return False
        if number in self._own or digits_only(number) in self._own:
            return True
        e164 = normalize(number, self.default_region)
        return e164 is not None and e164 in self._own

    @property
    def repeat_window_seconds(self) -> float:
        return self.repeat_window_hours * 3600.0

    @property
    def callback_sla_seconds(self) -> float:
        return self.callback_sla_minutes * 60.0
