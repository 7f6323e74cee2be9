"""The managers' lead statistics, shaped from the store's grouped rows
(``Store.lead_stats``): leads of a period by source and by rep, how many became
customers, and how long that took.  Pure: rows in, figures out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .models import LeadSource, LeadStatRow

SOURCE_NAMES: dict[LeadSource, str] = {
    "inbound_call": "inbound",
    "missed_call": "missed",
    "outbound_call": "outbound",
    "import": "import",
    "manual": "manual",
}
"""The sources in the order every table shows them, with the words a manager reads."""


# Alike in shape to other figure records: one counter a line, each its own meaning.
@dataclass
class LeadFigures:
    """Leads, conversions and conversion time of one group (a source, a rep, all)."""

    leads: int = 0
    converted: int = 0
    conversion_seconds: float = 0.0
    timed: int = 0

    def add(self, row: LeadStatRow) -> None:
        self.leads += row.leads
        self.converted += row.converted
        self.conversion_seconds += row.conversion_seconds
        self.timed += row.timed

    @property
    def converted_share(self) -> float:
        return self.converted / self.leads if self.leads else 0.0

    @property
    def mean_conversion_seconds(self) -> float | None:
        """Mean time from lead to customer, None when no conversion has a known time."""
        return self.conversion_seconds / self.timed if self.timed else None


@dataclass
class LeadStats:
    total: LeadFigures = field(default_factory=LeadFigures)
    by_source: dict[LeadSource, LeadFigures] = field(default_factory=dict)
    by_rep: dict[int | None, LeadFigures] = field(default_factory=dict)
    """Owner id (None: unassigned) to figures."""


def lead_stats(rows: Iterable[LeadStatRow]) -> LeadStats:
    """Every source appears (zeros included); reps only when they had leads."""
    out = LeadStats(by_source={s: LeadFigures() for s in SOURCE_NAMES})
    for row in rows:
        out.total.add(row)
        out.by_source.setdefault(row.source, LeadFigures()).add(row)
        out.by_rep.setdefault(row.owner_id, LeadFigures()).add(row)
    return out


def csv_rows(stats: LeadStats, names: Mapping[int, str]) -> list[list[str]]:
    """The statistics as CSV rows: a header, one row per source, one per rep, the total.
    ``names`` maps owner ids to display names."""

    def cells(kind: str, name: str, f: LeadFigures) -> list[str]:
        mean = f.mean_conversion_seconds
        return [
            kind,
            name,
            str(f.leads),
            str(f.converted),
            f"{f.converted_share * 100:.1f}",
            "" if mean is None else f"{mean / 3600:.1f}",
        ]

    header = ["group", "name", "leads", "converted", "converted_percent", "mean_hours_to_convert"]
    out = [header]
    out += [cells("source", SOURCE_NAMES[s], f) for s, f in stats.by_source.items()]
    reps = sorted(stats.by_rep.items(), key=lambda kv: names.get(kv[0] or 0, "~").lower())
    out += [cells("rep", names.get(uid or 0, "unassigned"), f) for uid, f in reps]
    out.append(cells("total", "", stats.total))
    return out
