"""The wrap-up after a call: a result from the admin's list (per team if the admin wants),
a comment, and an optional follow-up time that becomes a callback task.

The results are run-time settings (section ``wrapup`` in the store, edited on Admin >
Wrap-up), so a team can have its own words without a deploy.  ``required`` makes the
browser keep the wrap-up card up until it is saved: the next call's pop waits under it.
A wrap-up is a note on the call (author, result, comment), so the call page, the
contact's timeline and the API see it with no new object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInput
from .models import Call, CallbackTask, Note, User
from .services import CrmService

SECTION = "wrapup"
DEFAULT_RESULTS: tuple[str, ...] = (
    "Interested",
    "Not interested",
    "Call back later",
    "Meeting booked",
    "Sale",
    "Support request",
    "Wrong number",
    "Voicemail / no answer",
)
RESULT_MAX = 80
RESULTS_MAX = 40


@dataclass(frozen=True, slots=True)
class WrapupSettings:
    results: tuple[str, ...] = DEFAULT_RESULTS
    team_results: dict[int, tuple[str, ...]] = field(default_factory=dict)
    """Per team id: that team's own list instead of ``results``."""
    required: bool = False

    def results_for(self, user: User | None) -> tuple[str, ...]:
        if user is not None and user.team_id is not None and user.team_id in self.team_results:
            return self.team_results[user.team_id]
        return self.results

    def all_results(self) -> set[str]:
        """Every result any list offers (a manager may wrap up a rep's call)."""
        out = set(self.results)
        for values in self.team_results.values():
            out.update(values)
        return out


def parse_results(text: str) -> tuple[str, ...]:
    """One result a line, blanks and repeats dropped; refused when too long or many."""
    out: list[str] = []
    for line in text.splitlines():
        value = " ".join(line.split())
        if not value or value in out:
            continue
        if len(value) > RESULT_MAX:
            raise InvalidInput(f"results: keep each under {RESULT_MAX} characters")
        out.append(value)
    if len(out) > RESULTS_MAX:
        raise InvalidInput(f"results: at most {RESULTS_MAX}")
    return tuple(out)


def settings_of(stored: dict[str, Any]) -> WrapupSettings:
    results = tuple(str(x) for x in stored.get("results") or ()) or DEFAULT_RESULTS
    teams: dict[int, tuple[str, ...]] = {}
    for key, values in (stored.get("team_results") or {}).items():
        try:
            team_id = int(key)
        except (TypeError, ValueError):
            continue
        if values:
            teams[team_id] = tuple(str(x) for x in values)
    return WrapupSettings(results, teams, bool(stored.get("required", False)))


async def load(service: CrmService) -> WrapupSettings:
    return settings_of(await service.get_setting(SECTION))


async def save_settings(
    service: CrmService,
    actor: str,
    results: tuple[str, ...],
    team_results: dict[int, tuple[str, ...]],
    required: bool,
) -> WrapupSettings:
    if not results:
        raise InvalidInput("results: write at least one")
    stored = {
        "results": list(results),
        "team_results": {str(k): list(v) for k, v in team_results.items() if v},
        "required": required,
    }
    return settings_of(await service.put_setting(SECTION, stored, actor))


@dataclass(frozen=True, slots=True)
class Wrapup:
    """What a wrap-up saved: the note, and the follow-up task when one was asked for."""

    note: Note
    follow_up: CallbackTask | None = None


async def save(
    service: CrmService,
    work: Any,
    user: User,
    call: Call,
    settings: WrapupSettings,
    result: str = "",
    comment: str = "",
    topic: str = "",
    follow_up_at: float | None = None,
) -> Wrapup:
    """The note and (``follow_up_at``) a callback task owned by ``user``.  ``work`` is
    the ``CallbackWork`` that creates the task.  The result must be one of the lists'."""
    result = result.strip()
    if result and result not in settings.all_results():
        raise InvalidInput("result: choose one from the list")
    if follow_up_at is not None and not call.remote_e164:
        raise InvalidInput("follow-up: this call has no outside number to ring back")
    if not (topic.strip() or result or comment.strip()):
        raise InvalidInput("Choose a result or write a comment: the wrap-up is empty.")
    note = await service.add_note(call.id or 0, user.id, topic, result, comment)
    task = await work.follow_up(user, call, follow_up_at) if follow_up_at is not None else None
    return Wrapup(note, task)
