"""Queue figures from stored facts: per queue offered, answered, abandoned (short abandons
apart), service level, average speed of answer, average handle time, longest wait and
the wait-time distribution; per rep answered, rang-not-answered, talk, pause time and
occupancy.  For the board (today so far) and the queue report (per day and hour).

Everything is computed from what the store kept (queue calls, who they rang, agent pause
and registration events), never from counters in memory, so a restart loses nothing and
the figures agree with the calls list and the missed-calls audit of the same period:
offered = answered + abandoned + short abandons = the queue calls the calls list shows,
and abandoned + short abandons = the queue calls the missed-calls audit shows.

Definitions (the README repeats them for managers):
* wait: from the call's start to a rep's answer, or to its end when nobody answered;
* service level: answered within N seconds ÷ (offered - short abandons);
* short abandon: unanswered, the caller gone within S seconds; abandoned: the others
  nobody answered (the caller gave up or the queue let them go);
* ASA: average wait of the answered calls; AHT: average talk time of the answered calls;
* RONA: queue calls that rang the rep and that the rep did not answer, except the phone
  still ringing when the caller gave up (on a ring-all queue a call a colleague took
  first counts for everyone it rang: the stored facts do not tell those apart);
* pause time: time paused in at least one queue; occupancy: talk time of all the rep's
  calls ÷ (time registered - pause time), when the phone's registrations are known.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .access import Scope
from .errors import InvalidInput
from .models import AgentEventRow, QueueCallGroup, QueueRepGroup
from .queue_settings import Level, QueueSettings, QueueSettingsBook

if TYPE_CHECKING:
    from .store import Store

BUCKETS: tuple[int, ...] = (10, 20, 30, 60, 120, 300)
"""Upper limits (seconds, included) of the wait-time buckets; a last one holds the rest."""
ALL_QUEUES = ""
"""The queue name of the "all queues" total."""


def bucket_of(wait_limit: float | None) -> int:
    """The bucket of waits at most ``wait_limit`` (None: above every limit)."""
    if wait_limit is None:
        return len(BUCKETS)
    for i, top in enumerate(BUCKETS):
        if wait_limit <= top:
            return i
    return len(BUCKETS)


def limits_for(book: QueueSettingsBook) -> list[float]:
    """Every wait limit a figure needs: the buckets' edges and each queue's service-level
    and short-abandon seconds, so the store's wait classes answer all of them exactly."""
    found = set(BUCKETS)
    for s in (book.default, *book.queues.values()):
        found.update((s.service_level_seconds, s.short_abandon_seconds))
    return [float(x) for x in sorted(found)]


# Alike in shape to RepQueueFigures and QueueSettings on purpose: one counter a line.
@dataclass(slots=True)
class QueueFigures:
    """One queue's figures over a stretch of time (a period, a day, an hour of the day)."""

    queue: str
    settings: QueueSettings
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    answered_in_time: int = 0
    wait_answered_sum: float = 0.0
    talk_sum: float = 0.0
    longest_wait: float | None = None
    wait_answered: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    wait_abandoned: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))

    def add(self, g: QueueCallGroup) -> None:
        s = self.settings
        self.offered += g.calls
        b = bucket_of(g.wait_limit)
        within = g.wait_limit is not None
        if g.answered:
            self.answered += g.calls
            self.wait_answered_sum += g.wait_sum
            self.talk_sum += g.talk_sum
            self.wait_answered[b] += g.calls
            if within and g.wait_limit <= s.service_level_seconds:  # type: ignore[operator]
                self.answered_in_time += g.calls
        else:
            self.wait_abandoned[b] += g.calls
            if within and g.wait_limit <= s.short_abandon_seconds:  # type: ignore[operator]
                self.short_abandoned += g.calls
            else:
                self.abandoned += g.calls
        if self.longest_wait is None or g.wait_max > self.longest_wait:
            self.longest_wait = g.wait_max

    @property
    def service_level(self) -> float | None:
        """Share (0..1) answered within the queue's N seconds, short abandons left out."""
        base = self.offered - self.short_abandoned
        return self.answered_in_time / base if base > 0 else None

    @property
    def asa(self) -> float | None:
        return self.wait_answered_sum / self.answered if self.answered else None

    @property
    def aht(self) -> float | None:
        return self.talk_sum / self.answered if self.answered else None

    @property
    def service_level_level(self) -> Level:
        return self.settings.service_level.level(self.service_level)

    @property
    def longest_wait_level(self) -> Level:
        return self.settings.longest_wait.level(self.longest_wait)


@dataclass(slots=True)
class RepQueueFigures:
    user_id: int
    name: str
    answered: int = 0
    rona: int = 0
    talk_seconds: float = 0.0
    """Talk time of the queue calls the rep answered."""
    all_talk_seconds: float = 0.0
    """Talk time of all the rep's calls (queue or not): what occupancy counts."""
    pause_seconds: float = 0.0
    registered_seconds: float | None = None
    """Time with a registered phone; None when no registration was ever stored."""
    pause_reasons: dict[str, float] = field(default_factory=dict)

    @property
    def occupancy(self) -> float | None:
        if self.registered_seconds is None:
            return None
        available = self.registered_seconds - self.pause_seconds
        if available <= 0:
            return None
        return min(1.0, self.all_talk_seconds / available)


@dataclass(slots=True)
class QueueReport:
    since: float
    until: float
    queues: list[QueueFigures]
    total: QueueFigures
    """All queues together (thresholds of the default settings)."""
    by_day: dict[str, list[QueueFigures]]
    """``YYYY-MM-DD`` -> per queue (only days with calls)."""
    by_hour: dict[int, list[QueueFigures]]
    """Hour of the day 0-23 -> per queue (only hours with calls)."""
    reps: list[RepQueueFigures]


# -- pure aggregation -------------------------------------------------------------------
def _figures(
    groups: Iterable[QueueCallGroup], book: QueueSettingsBook, key: Callable[[QueueCallGroup], str]
) -> dict[str, QueueFigures]:
    out: dict[str, QueueFigures] = {}
    for g in groups:
        k = key(g)
        if k not in out:
            out[k] = QueueFigures(k, book.for_queue(k))
        out[k].add(g)
    return out


def _total(groups: Iterable[QueueCallGroup], book: QueueSettingsBook) -> QueueFigures:
    """All queues together; each call still judged by its own queue's N and S."""
    total = QueueFigures(ALL_QUEUES, book.default)
    for g in groups:
        own = QueueFigures(g.queue, book.for_queue(g.queue))
        own.add(g)
        total.offered += own.offered
        total.answered += own.answered
        total.abandoned += own.abandoned
        total.short_abandoned += own.short_abandoned
        total.answered_in_time += own.answered_in_time
        total.wait_answered_sum += own.wait_answered_sum
        total.talk_sum += own.talk_sum
        if own.longest_wait is not None and (
            total.longest_wait is None or own.longest_wait > total.longest_wait
        ):
            total.longest_wait = own.longest_wait
        for i in range(len(BUCKETS) + 1):
            total.wait_answered[i] += own.wait_answered[i]
            total.wait_abandoned[i] += own.wait_abandoned[i]
    return total


def _day_text(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def summarise(
    days: Sequence[QueueCallGroup], hours: Sequence[QueueCallGroup], book: QueueSettingsBook
) -> tuple[
    list[QueueFigures], QueueFigures, dict[str, list[QueueFigures]], dict[int, list[QueueFigures]]
]:
    """Per queue, the total, per day per queue (from the groups by day), per hour of the
    day per queue (from the groups by hour)."""

    def per_queue(gs: Iterable[QueueCallGroup]) -> list[QueueFigures]:
        return [v for _, v in sorted(_figures(gs, book, lambda g: g.queue).items())]

    by_day: dict[int, list[QueueCallGroup]] = {}
    for g in days:
        by_day.setdefault(g.slot, []).append(g)
    by_hour: dict[int, list[QueueCallGroup]] = {}
    for g in hours:
        by_hour.setdefault(g.slot, []).append(g)
    return (
        per_queue(days),
        _total(days, book),
        {_day_text(d): per_queue(gs) for d, gs in sorted(by_day.items())},
        {h: per_queue(gs) for h, gs in sorted(by_hour.items())},
    )


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, None
    start = None
    for a, b in sorted(intervals):
        if end is None or a > end:
            if end is not None and start is not None:
                total += end - start
            start, end = a, b
        else:
            end = max(end, b)
    if end is not None and start is not None:
        total += end - start
    return total


def agent_times(
    events: Sequence[AgentEventRow], since: float, end: float
) -> dict[int, tuple[float, float | None, dict[str, float]]]:
    """Per user: (pause seconds, registered seconds or None, pause seconds per reason)
    within [since, end).  Events before ``since`` give the state the period starts in;
    a pause is per queue (or for the whole device when ``queue`` is None), and a rep
    paused in several queues at once is paused once (per reason too)."""
    opened: dict[tuple[int, str, str, str], tuple[float, str | None]] = {}
    paused: dict[int, list[tuple[float, float]]] = {}
    reasons: dict[int, dict[str, list[tuple[float, float]]]] = {}
    registered: dict[int, list[tuple[float, float]]] = {}
    seen_reg: set[int] = set()

    def close(uid: int, key: tuple[int, str, str, str], at: float) -> None:
        start, reason = opened.pop(key)
        a, b = max(start, since), min(at, end)
        if b <= a:
            return
        if key[3] == "p":
            paused.setdefault(uid, []).append((a, b))
            reasons.setdefault(uid, {}).setdefault(reason or "", []).append((a, b))
        else:
            registered.setdefault(uid, []).append((a, b))

    for e in events:
        if e.user_id is None:
            continue
        uid = e.user_id
        fam = "p" if e.kind in ("paused", "unpaused") else "r"
        if fam == "r":
            seen_reg.add(uid)
        key = (uid, e.extension, e.queue or "", fam)
        if e.kind in ("paused", "registered"):
            if key not in opened:
                opened[key] = (e.ts, e.reason)
        elif key in opened:
            close(uid, key, e.ts)
    for key in list(opened):
        close(key[0], key, end)
    out: dict[int, tuple[float, float | None, dict[str, float]]] = {}
    for uid in set(paused) | seen_reg:
        reg = _union(registered.get(uid, [])) if uid in seen_reg else None
        why = {r: _union(spans) for r, spans in reasons.get(uid, {}).items()}
        out[uid] = (_union(paused.get(uid, [])), reg, why)
    return out


def rep_figures(
    groups: Sequence[QueueRepGroup],
    talk: dict[int, float],
    times: dict[int, tuple[float, float | None, dict[str, float]]],
    names: dict[int, str],
    scope: Scope | None,
) -> list[RepQueueFigures]:
    """One row per rep in scope who had queue calls or agent events in the period."""
    reps: dict[int, RepQueueFigures] = {}

    def rep(uid: int) -> RepQueueFigures:
        if uid not in reps:
            reps[uid] = RepQueueFigures(uid, names.get(uid, f"user {uid}"))
        return reps[uid]

    for g in groups:
        r = rep(g.user_id)
        r.answered += g.answered
        r.rona += g.rona
        r.talk_seconds += g.talk_seconds
    for uid, (pause, reg, why) in times.items():
        if scope is not None and not scope.covers(uid):
            continue
        r = rep(uid)
        r.pause_seconds, r.registered_seconds, r.pause_reasons = pause, reg, why
    for uid, r in reps.items():
        r.all_talk_seconds = talk.get(uid, 0.0)
    return sorted(reps.values(), key=lambda r: (r.name.lower(), r.user_id))


# -- the service -------------------------------------------------------------------------
class QueueStatsServices:
    store: Store
    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by QueueSettingsServices

        async def queue_settings(self) -> QueueSettingsBook: ...

    async def queue_report(
        self, since: float, until: float, scope: Scope | None = None, utc_offset: float = 0.0
    ) -> QueueReport:
        """The queue figures of [since, until) as ``scope`` may see them: queue calls
        the calls list shows them, reps of their team (all for an admin)."""
        if until <= since:
            raise InvalidInput("the period must end after it starts")
        if abs(utc_offset) > 14 * 3600:
            raise InvalidInput("UTC offset must be within +/-14 hours")
        ids = scope.ids() if scope else None
        book = await self.queue_settings()
        limits = limits_for(book)
        days = await self.store.queue_call_groups(since, until, ids, utc_offset, limits, "day")
        hours = await self.store.queue_call_groups(since, until, ids, utc_offset, limits, "hour")
        rep_groups = await self.store.queue_rep_groups(since, until, ids)
        talk = await self.store.talk_seconds_by_user(since, until, ids)
        end = min(until, self.clock())
        events = await self.store.agent_state_events(since, until) if end > since else []
        names = {u.id: u.display_name for u in await self.store.list_users(True) if u.id}
        queues, total, by_day, by_hour = summarise(days, hours, book)
        reps = rep_figures(rep_groups, talk, agent_times(events, since, end), names, scope)
        return QueueReport(since, until, queues, total, by_day, by_hour, reps)
