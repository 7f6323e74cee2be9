"""The managers' figures: missed-call summary, calls per day, per rep, busiest hours.

The store aggregates in SQL; this layer checks the period, applies the visibility scope
and shapes results for pages and charts.  Periods are [since, until) in POSIX seconds;
days and hours are UTC shifted by ``utc_offset`` seconds (the team's local offset).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .access import Scope
from .errors import InvalidInput
from .figures_memo import FiguresMemo
from .lead_stats import LeadStats, lead_stats
from .models import MissedSummary, RepFigures

if TYPE_CHECKING:
    from .policy import LeadPolicy
    from .store import Store

MAX_OFFSET = 14 * 3600


def _period(since: float, until: float) -> None:
    if until <= since:
        raise InvalidInput("the period must end after it starts")


def _offset(utc_offset: float) -> float:
    if abs(utc_offset) > MAX_OFFSET:
        raise InvalidInput("UTC offset must be within +/-14 hours")
    return float(utc_offset)


def _ids(scope: Scope | None) -> list[int] | None:
    return scope.ids() if scope else None


def _key(
    kind: str, since: float, until: float, scope: Scope | None, *more: object
) -> tuple[object, ...]:
    ids = _ids(scope)
    return (kind, since, until, None if ids is None else tuple(ids), *more)


class ReportServices:
    """Every figure is served through ``figures_memo``: computed once per state of the
    database, however many managers ask (``crm.figures_memo``)."""

    store: Store
    policy: LeadPolicy
    figures_memo: FiguresMemo

    async def missed_summary(
        self, since: float, until: float, scope: Scope | None = None
    ) -> MissedSummary:
        """Inbound total, missed count and rate, callbacks (median time, share within the
        callback SLA), and per-rep and per-line (DID) rows for the period."""
        _period(since, until)
        sla = self.policy.callback_sla_seconds
        return await self.figures_memo.get(
            _key("missed", since, until, scope, sla),
            lambda: self.store.missed_summary(since, until, sla, _ids(scope)),
        )

    async def calls_per_day(
        self, since: float, until: float, scope: Scope | None = None, utc_offset: float = 0.0
    ) -> list[tuple[str, str, int]]:
        """(day ``YYYY-MM-DD``, outcome, count) for days that had calls."""
        _period(since, until)
        offset = _offset(utc_offset)
        return await self.figures_memo.get(
            _key("per_day", since, until, scope, offset),
            lambda: self.store.calls_per_day(since, until, _ids(scope), offset),
        )

    async def per_rep(
        self, since: float, until: float, scope: Scope | None = None
    ) -> list[RepFigures]:
        """Per rep: calls that connected, missed inbound calls that rang them (by their
        current extensions), talk seconds; reps with no calls are left out."""
        _period(since, until)
        return await self.figures_memo.get(
            _key("per_rep", since, until, scope),
            lambda: self.store.per_rep(since, until, _ids(scope)),
        )

    async def busiest_hours(
        self, since: float, until: float, scope: Scope | None = None, utc_offset: float = 0.0
    ) -> list[tuple[int, int]]:
        """All 24 hours (0-23) with the number of calls that started in each, zeros
        included, so a chart needs no gap filling."""
        _period(since, until)
        offset = _offset(utc_offset)
        counts = dict(
            await self.figures_memo.get(
                _key("hours", since, until, scope, offset),
                lambda: self.store.busiest_hours(since, until, _ids(scope), offset),
            )
        )
        return [(hour, counts.get(hour, 0)) for hour in range(24)]

    async def lead_stats(self, since: float, until: float, scope: Scope | None = None) -> LeadStats:
        """Leads created in the period by source and by rep (owned within ``scope``;
        unassigned leads only without one), converted share and time to conversion."""
        _period(since, until)
        return await self.figures_memo.get(
            _key("leads", since, until, scope),
            lambda: self._lead_stats(since, until, scope),
        )

    async def _lead_stats(self, since: float, until: float, scope: Scope | None) -> LeadStats:
        return lead_stats(await self.store.lead_stats(since, until, _ids(scope)))
