"""Per-queue settings: what counts as answered in time, what counts as a short abandon, and
the thresholds that turn a figure amber or red on the board and the queue report.

Kept in the store's run-time settings (section ``queues``: one object per queue name plus
``default`` for queues without their own), so every process reads the same values and
every change leaves a ``settings.changed`` audit entry (``crm.admin_settings``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from .errors import InvalidInput

if TYPE_CHECKING:
    from .store import Store

SECTION = "queues"
DEFAULT = "default"
"""The entry that applies to every queue without one of its own."""
QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
Level = Literal["ok", "amber", "red"]


@dataclass(frozen=True, slots=True)
class Threshold:
    """Two limits on one figure.  ``lower_is_worse``: amber at or below ``amber``, red at
    or below ``red`` (a service level); otherwise at or above (a wait, a queue length)."""

    amber: float
    red: float
    lower_is_worse: bool = False

    def level(self, value: float | None) -> Level:
        if value is None:
            return "ok"
        if self.lower_is_worse:
            return "red" if value <= self.red else "amber" if value <= self.amber else "ok"
        return "red" if value >= self.red else "amber" if value >= self.amber else "ok"


# Alike in shape to LinkSettings and QueueFigures on purpose: one typed default a line.
@dataclass(frozen=True, slots=True)
class QueueSettings:
    service_level_seconds: int = 20
    """A call answered within this many seconds of waiting counts toward the service level."""
    short_abandon_seconds: int = 5
    """A caller who hangs up within this many seconds is a short abandon, counted apart
    (a wrong number, a caller who heard the greeting and left): not the team's miss."""
    waiting_amber: int = 3
    waiting_red: int = 6
    longest_wait_amber: int = 60
    longest_wait_red: int = 120
    service_level_amber: int = 80
    service_level_red: int = 60
    """Percentages: the service level turns amber at or below 80 %, red at or below 60 %."""

    @property
    def waiting(self) -> Threshold:
        return Threshold(self.waiting_amber, self.waiting_red)

    @property
    def longest_wait(self) -> Threshold:
        return Threshold(self.longest_wait_amber, self.longest_wait_red)

    @property
    def service_level(self) -> Threshold:
        """On the service level as a share (0..1), as the figures carry it."""
        return Threshold(self.service_level_amber / 100, self.service_level_red / 100, True)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    label: str
    low: int
    high: int
    unit: str


FIELDS: tuple[Field, ...] = (
    Field("service_level_seconds", "Service level: answered within", 1, 3600, "s"),
    Field("short_abandon_seconds", "Short abandon: hung up within", 0, 600, "s"),
    Field("waiting_amber", "Callers waiting: amber from", 1, 1000, "callers"),
    Field("waiting_red", "Callers waiting: red from", 1, 1000, "callers"),
    Field("longest_wait_amber", "Longest wait: amber from", 1, 86400, "s"),
    Field("longest_wait_red", "Longest wait: red from", 1, 86400, "s"),
    Field("service_level_amber", "Service level: amber at or below", 0, 100, "%"),
    Field("service_level_red", "Service level: red at or below", 0, 100, "%"),
)


def parse(form: Mapping[str, Any]) -> QueueSettings:
    """Settings typed into the admin form; a message naming the field when one is wrong."""
    values: dict[str, int] = {}
    for f in FIELDS:
        text = str(form.get(f.name, "")).strip()
        try:
            value = int(text)
        except ValueError:
            raise InvalidInput(f"{f.label}: a whole number") from None
        if not f.low <= value <= f.high:
            raise InvalidInput(f"{f.label}: from {f.low} to {f.high}")
        values[f.name] = value
    s = QueueSettings(**values)
    if s.waiting_red < s.waiting_amber:
        raise InvalidInput("Callers waiting: red must be at or above amber")
    if s.longest_wait_red < s.longest_wait_amber:
        raise InvalidInput("Longest wait: red must be at or above amber")
    if s.service_level_red > s.service_level_amber:
        raise InvalidInput("Service level: red must be at or below amber")
    return s


def _lenient(stored: Any, base: QueueSettings) -> QueueSettings:
    """Stored values over ``base``, ignoring any that are not whole numbers (a hand-edited
    database must not take the board down)."""
    if not isinstance(stored, dict):
        return base
    names = {f.name for f in fields(QueueSettings)}
    good = {
        k: int(v)
        for k, v in stored.items()
        if k in names and isinstance(v, int | float) and not isinstance(v, bool)
    }
    return QueueSettings(**{**base.as_dict(), **good})


@dataclass(frozen=True, slots=True)
class QueueSettingsBook:
    """Every queue's settings as stored: its own, else the ``default`` entry."""

    default: QueueSettings = field(default_factory=QueueSettings)
    queues: dict[str, QueueSettings] = field(default_factory=dict)

    def for_queue(self, queue: str | None) -> QueueSettings:
        return self.queues.get(queue or "", self.default)

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any] | None) -> QueueSettingsBook:
        stored = stored or {}
        default = _lenient(stored.get(DEFAULT), QueueSettings())
        queues = {
            name: _lenient(values, default)
            for name, values in stored.items()
            if name != DEFAULT and QUEUE_NAME.match(name) and isinstance(values, dict)
        }
        return cls(default, queues)


def check_queue_name(name: str) -> str:
    name = (name or "").strip()
    if name != DEFAULT and not QUEUE_NAME.match(name):
        raise InvalidInput("queue: a queue name as the PBX knows it (letters, digits, . _ - @ +)")
    return name


class QueueSettingsServices:
    store: Store

    if TYPE_CHECKING:  # provided by SettingsServices

        async def get_setting(self, section: str) -> dict[str, Any]: ...

        async def put_setting(
            self, section: str, values: dict[str, Any], actor: str
        ) -> dict[str, Any]: ...

    async def queue_settings(self) -> QueueSettingsBook:
        return QueueSettingsBook.from_stored(await self.get_setting(SECTION))

    async def save_queue_settings(
        self, queue: str, form: Mapping[str, Any], actor: str
    ) -> QueueSettings:
        """Validate and store one queue's settings (or the default's), audited."""
        name = check_queue_name(queue)
        settings = parse(form)
        await self.put_setting(SECTION, {name: settings.as_dict()}, actor)
        return settings

    async def forget_queue_settings(self, queue: str, actor: str) -> None:
        """The queue goes back to the default settings (audited)."""
        name = check_queue_name(queue)
        if name == DEFAULT:
            raise InvalidInput("the default settings cannot be removed")
        # put_setting merges; an explicit None marks "no settings of its own".
        await self.put_setting(SECTION, {name: None}, actor)
