"""Server-side SVG charts: pure functions from numbers to SVG markup.

Drawn on the server so the reports work without JavaScript and without a chart library,
and so the page's Content-Security-Policy (no inline scripts, no ``style=``) holds:
colours and fonts are SVG presentation attributes (``fill=``, ``font-size=``).  Every
label may come from a user (a rep's display name), so every text is escaped.  Each chart
is ``role="img"`` with an ``aria-label``; each bar has a ``<title>`` tooltip; the pages
print the same numbers as a table below the chart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from web.formatting import format_day_month
from web.i18n import _
from web.labels import label

WIDTH = 720
INK = "#1d2330"
MUTED = "#667085"
GRID = "#e3e6eb"
FONT = 'font-family="system-ui, sans-serif"'
OUTCOME_COLORS = {
    "answered": "#32d583",
    "missed": "#f04438",
    "abandoned": "#f79009",
    "busy": "#7a5af8",
    "no_answer": "#98a2b3",
    "failed": "#475467",
}
Formatter = Callable[[float], str]


@dataclass(frozen=True, slots=True)
class Series:
    """One named row of values (one per category) and its colour."""

    name: str
    values: Sequence[float]
    color: str


def count(value: float) -> str:
    """Counts as whole numbers, anything else with one decimal."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def nice_scale(top: float, ticks: int = 4, integer: bool = True) -> tuple[float, float]:
    """An axis maximum >= ``top`` and a round step (1, 2, 2.5 or 5 times a power of ten)
    dividing it into about ``ticks`` parts; whole steps for counts."""
    if top <= 0:
        return float(ticks if integer else 1), 1.0 if integer else 0.25
    raw = top / ticks
    mag = 10 ** math.floor(math.log10(raw))
    step = mag
    for m in (1, 2, 2.5, 5, 10):
        step = m * mag
        if step >= raw and (not integer or float(step).is_integer()):
            break
    if integer:
        step = max(1.0, math.ceil(step))
    return step * math.ceil(top / step - 1e-9), step


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _text(
    x: float,
    y: float,
    text: str,
    anchor: str = "middle",
    size: int = 12,
    fill: str = MUTED,
    extra: str = "",
) -> str:
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{fill}" {FONT}{extra}>{escape(text)}</text>'
    )


def _short(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _open(title: str, width: float, height: float, kind: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg chart-{kind}" '
        f'viewBox="0 0 {_f(width)} {_f(height)}" width="100%" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(title)}</title>",
    ]


def _legend(series: Sequence[Series], x0: float, y: float) -> list[str]:
    out: list[str] = ['<g class="legend">']
    x = x0
    for s in series:
        out.append(
            f'<rect x="{_f(x)}" y="{_f(y - 10)}" width="12" height="12" rx="2" fill="{s.color}"/>'
        )
        out.append(_text(x + 17, y, s.name, "start", 12, INK))
        x += 30 + 7.2 * len(s.name)
    out.append("</g>")
    return out


def _empty_note(x: float, y: float, total: float) -> list[str]:
    return [] if total > 0 else [_text(x, y, _("No calls in this period"), size=14)]


def _stacked(
    series: Sequence[Series], i: int, length: float, axis_max: float
) -> Iterator[tuple[Series, float, float]]:
    """The series' values at ``i`` that show (above zero), each with its length on an axis
    ``length`` long that ends at ``axis_max``."""
    for s in series:
        v = s.values[i]
        if v <= 0:
            continue
        yield s, v, length * v / axis_max


def _segment(x: float, y: float, w: float, h: float, s: Series, tip: str) -> str:
    """One series' piece of a column or a bar, its figure in the tooltip."""
    return (
        f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}" '
        f'fill="{s.color}"><title>{escape(tip)}</title></rect>'
    )


def column_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Formatter = count,
    max_labels: int = 12,
    width: float = WIDTH,
    height: float = 300,
) -> Markup:
    """Vertical columns, one per category, the series stacked in each (one series: plain
    columns).  Category labels are thinned to at most ``max_labels`` so 31 days fit."""
    left, right, top, bottom = 52.0, 12.0, 34.0, 34.0
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(categories))]
    axis_max, step = nice_scale(max(totals, default=0))
    out = _open(title, width, height, "columns")
    out += _legend(series, left, 16)
    out += _grid_y(left, top, plot_w, plot_h, axis_max, step, fmt)
    n = max(1, len(categories))
    band = plot_w / n
    every = max(1, math.ceil(n / max_labels))
    base = top + plot_h
    for i, cat in enumerate(categories):
        x = left + i * band + band * 0.15
        w = max(1.0, band * 0.7)
        y = base
        out.append('<g class="column">')
        for s, v, h in _stacked(series, i, plot_h, axis_max):
            y -= h
            out.append(_segment(x, y, w, h, s, f"{cat} · {s.name}: {fmt(v)}"))
        out.append("</g>")
        if i % every == 0:
            out.append(_text(left + (i + 0.5) * band, base + 18, cat))
    out.append(
        f'<line x1="{_f(left)}" y1="{_f(base)}" x2="{_f(left + plot_w)}" '
        f'y2="{_f(base)}" stroke="{MUTED}"/>'
    )
    out += _empty_note(left + plot_w / 2, top + plot_h / 2, sum(totals))
    out.append("</svg>")
    return Markup("".join(out))


def _grid_y(
    left: float,
    top: float,
    plot_w: float,
    plot_h: float,
    axis_max: float,
    step: float,
    fmt: Formatter,
) -> list[str]:
    out = ['<g class="grid">']
    ticks = round(axis_max / step)
    for k in range(ticks + 1):
        v = k * step
        y = top + plot_h - plot_h * v / axis_max
        out.append(
            f'<line x1="{_f(left)}" y1="{_f(y)}" x2="{_f(left + plot_w)}" '
            f'y2="{_f(y)}" stroke="{GRID}"/>'
        )
        out.append(_text(left - 6, y + 4, fmt(v), "end"))
    out.append("</g>")
    return out


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Formatter = count,
    width: float = WIDTH,
    row_height: float = 28,
) -> Markup:
    """Horizontal bars, one row per label (a rep), the series stacked along it.  Long
    labels are shortened on the axis; the bar's tooltip has the full one."""
    left, right, top, bottom = 130.0, 36.0, 34.0, 30.0
    plot_w = width - left - right
    rows = max(1, len(labels))
    plot_h = rows * row_height
    height = top + plot_h + bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    axis_max, step = nice_scale(max(totals, default=0), integer=fmt is count)
    out = _open(title, width, height, "bars")
    out += _legend(series, left, 16)
    out.append('<g class="grid">')
    for k in range(round(axis_max / step) + 1):
        v = k * step
        x = left + plot_w * v / axis_max
        out.append(
            f'<line x1="{_f(x)}" y1="{_f(top)}" x2="{_f(x)}" '
            f'y2="{_f(top + plot_h)}" stroke="{GRID}"/>'
        )
        out.append(_text(x, top + plot_h + 18, fmt(v)))
    out.append("</g>")
    for i, name in enumerate(labels):
        y = top + i * row_height + row_height * 0.18
        h = row_height * 0.64
        out.append(_text(left - 8, y + h / 2 + 4, _short(name, 18), "end", 12, INK))
        x = left
        out.append('<g class="bar">')
        for s, v, w in _stacked(series, i, plot_w, axis_max):
            out.append(_segment(x, y, w, h, s, f"{name} · {s.name}: {fmt(v)}"))
            x += w
        out.append("</g>")
    out.append(
        f'<line x1="{_f(left)}" y1="{_f(top)}" x2="{_f(left)}" '
        f'y2="{_f(top + plot_h)}" stroke="{MUTED}"/>'
    )
    out += _empty_note(left + plot_w / 2, top + plot_h / 2 + 4, sum(totals))
    out.append("</svg>")
    return Markup("".join(out))


def calls_per_day_chart(days: Sequence[str], by_outcome: dict[str, Sequence[int]]) -> Markup:
    """Calls per day stacked by outcome (answered first, then the ways a call is lost)."""
    order = [o for o in OUTCOME_COLORS if o in by_outcome] + sorted(
        o for o in by_outcome if o not in OUTCOME_COLORS
    )
    series = [Series(label(o), by_outcome[o], OUTCOME_COLORS.get(o, MUTED)) for o in order]
    labels = [format_day_month(d) for d in days]
    return column_chart(_("Calls per day by outcome"), labels, series, width=1000, height=280)


def busiest_hours_chart(hours: Sequence[tuple[int, int]], width: float = 520) -> Markup:
    """Calls by the hour of the day they started in (all 24 hours)."""
    labels = [f"{h:02d}" for h, _count in hours]
    series = [Series(_("calls"), [c for _hour, c in hours], "#2458d6")]
    return column_chart(
        _("Calls by hour of day"), labels, series, max_labels=12, width=width, height=240
    )
