"""Dates, times, durations, numbers and percentages in the reader's language and time zone.

One module so that pages, screen pops, charts and exports agree: the server formats with
Babel here, and the browser formats pops with the same patterns, month names and duration
strings (``browser_formats``), so a pop shows exactly what the table under it shows.

The language, time zone and region come from ``web.i18n``'s context variables (set per
request, or per viewer for live rows), so the template filters are bound once and still
per-request.
"""

from __future__ import annotations

import datetime as dt
from functools import cache, lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_datetime as _babel_datetime
from babel.dates import get_month_names
from babel.numbers import format_decimal, format_percent

from web import i18n
from web.i18n import _

STYLES = ("date", "time", "time_s", "datetime", "datetime_s", "day_month", "full_s")
"""Named styles the ``time`` filter takes: the date, the time (with seconds: ``_s``), both,
a short "30 Nov 14:05" form for dense tables, and the weekday with the date and time."""

_STRFTIME_STYLES = {
    "%Y-%m-%d": "date",
    "%H:%M": "time",
    "%H:%M:%S": "time_s",
    "%Y-%m-%d %H:%M": "datetime",
    "%Y-%m-%d %H:%M:%S": "datetime_s",
    "%d %b %H:%M": "day_month",
}
"""The strftime patterns templates used before, read as the style they meant."""


def babel_locale(language: str | None = None) -> Locale:
    return _locale(language or i18n.CURRENT_LANGUAGE.get())


@cache
def _locale(language: str) -> Locale:
    return Locale.parse(language)


@cache
def patterns(language: str) -> dict[str, str]:
    """LDML patterns per style. English keeps the product's ISO-like dates; the other
    languages take CLDR's short date and their own day-and-month order."""
    loc = _locale(language)
    if language == "en":
        date, day_month, full = "yyyy-MM-dd", "d MMM", "EEEE yyyy-MM-dd"
    else:
        full = str(loc.date_formats["full"].pattern)
        date = str(loc.date_formats["short"].pattern)
        if "yy" not in date.replace("yyyy", ""):
            date = date.replace("y", "yyyy")
        day_month = str(loc.datetime_skeletons["MMMd"].pattern)
    return {
        "date": date,
        "time": "HH:mm",
        "time_s": "HH:mm:ss",
        "datetime": f"{date} HH:mm",
        "datetime_s": f"{date} HH:mm:ss",
        "day_month": f"{day_month} HH:mm",
        "full_s": f"{full} HH:mm:ss",
    }


def tzinfo(name: str | None = None) -> dt.tzinfo:
    try:
        return ZoneInfo(name or i18n.CURRENT_TIMEZONE.get())
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def local(value: float) -> dt.datetime:
    """An epoch as an aware datetime in the reader's time zone."""
    return dt.datetime.fromtimestamp(value, tzinfo())


_CLOCK_TAILS = (("HH:mm:ss", "%H:%M:%S"), ("HH:mm", "%H:%M"))
_DAY_FIELDS = frozenset("GyYuUQqMLlwWdDFgEec")
"""LDML field letters that depend on the calendar day alone (no hour, zone or period)."""


def _day_fields_only(pattern: str) -> bool:
    """Whether an LDML pattern's fields (ASCII letters outside 'quotes') depend on the
    calendar day alone."""
    if pattern.count("'") % 2:
        return False
    fields = "".join(pattern.split("'")[::2])
    return {c for c in fields if c.isascii() and c.isalpha()} <= _DAY_FIELDS


@cache
def _split(pattern: str) -> tuple[str, str] | None:
    """A pattern as its day part (LDML, may be empty) and its clock part (strftime, may be
    empty), when it is "<day fields> HH:mm[:ss]" or day fields alone, as every style is;
    else None."""
    for tail, clock in _CLOCK_TAILS:
        if pattern == tail:
            return "", clock
        if pattern.endswith(" " + tail) and _day_fields_only(head := pattern[: -len(tail) - 1]):
            return head, " " + clock
    return (pattern, "") if _day_fields_only(pattern) else None


@lru_cache(maxsize=8192)
def _day_text(language: str, pattern: str, day: dt.date) -> str:
    """One day in one LDML pattern of day fields: the same few days fill a page's rows."""
    moment = dt.datetime(day.year, day.month, day.day, 12)
    return _babel_datetime(moment, pattern, locale=_locale(language))


def format_time(value: float | None, style: str = "datetime") -> str:
    """An epoch in the reader's time zone and language; ``style`` is one of STYLES (an old
    strftime pattern is read as the style it meant, or applied as it is). The day part
    goes through Babel once per day and pattern, the clock (digits in every language) is
    strftime's: a table formats one or two times a row."""
    if value is None or value == "":
        return ""
    style = _STRFTIME_STYLES.get(style, style)
    when = local(float(value))
    language = i18n.CURRENT_LANGUAGE.get()
    pattern = patterns(language).get(style)
    if pattern is None:
        return when.strftime(style)
    parts = _split(pattern)
    if parts is None:
        return _babel_datetime(when, pattern, locale=_locale(language))
    day, clock = parts
    text = when.strftime(clock)
    return _day_text(language, day, when.date()) + text if day else text


def format_date(value: dt.date | None) -> str:
    """A calendar day (a report's period) in the reader's short date form."""
    if value is None:
        return ""
    language = i18n.CURRENT_LANGUAGE.get()
    return _day_text(language, patterns(language)["date"], value)


def format_day_month(day: str) -> str:
    """An ISO day ("2026-11-30") as a chart's axis shows it: "11-30", "30.11", "11/30"."""
    try:
        value = dt.date.fromisoformat(day)
    except ValueError:
        return day
    language = i18n.CURRENT_LANGUAGE.get()
    if language == "en":
        return day[5:]
    return _day_text(language, str(_locale(language).datetime_skeletons["Md"].pattern), value)


def format_duration(seconds: float | None) -> str:
    """Seconds as "45s", "3m 05s", "1h 02m", in the reader's language."""
    if seconds is None or seconds == "":
        return ""
    return _duration(i18n.CURRENT_LANGUAGE.get(), round(float(seconds)))


@lru_cache(maxsize=8192)
def _duration(language: str, s: int) -> str:
    """``format_duration`` of whole seconds in ``language`` (the current one: ``_`` reads
    it); rows repeat the same few ring and callback times."""
    if s < 60:
        return _("%(s)ds", s=s)
    if s < 3600:
        return _("%(m)dm %(s)02ds", m=s // 60, s=s % 60)
    return _("%(h)dh %(m)02dm", h=s // 3600, m=s % 3600 // 60)


def format_count(value: float | int | None) -> str:
    """A count or amount with the reader's grouping ("1,234", "1 234")."""
    if value is None or value == "":
        return ""
    return format_decimal(value, locale=babel_locale())


def format_fixed(value: float | None, digits: int = 1) -> str:
    """A measure with a fixed number of decimals ("12.5", "12,5")."""
    if value is None or value == "":
        return ""
    fmt = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=fmt, locale=babel_locale())


def format_percentage(ratio: float | None, digits: int = 0) -> str:
    """A ratio (0.125) as a percentage ("12.5%", "12,5 %")."""
    if ratio is None:
        return "—"
    fmt = "#,##0" + ("." + "0" * digits if digits else "") + "%"
    return format_percent(ratio, format=fmt, locale=babel_locale())


def browser_formats(language: str, timezone: str) -> dict[str, Any]:
    """What the browser needs to format a time or duration exactly as the server does."""
    loc = _locale(language)
    months = get_month_names("abbreviated", locale=loc)
    months_wide = get_month_names("wide", locale=loc)
    with i18n.using(language):
        durations = {
            "s": _("%(s)ds"),
            "ms": _("%(m)dm %(s)02ds"),
            "hm": _("%(h)dh %(m)02dm"),
        }
    return {
        "lang": language,
        "tz": timezone,
        "patterns": patterns(language),
        "months": [months[i] for i in range(1, 13)],
        "months_wide": [months_wide[i] for i in range(1, 13)],
        "durations": durations,
    }
