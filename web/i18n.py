"""Translation entry points shared by templates, Python code and the browser's JavaScript.

Every user-facing string goes through ``_`` / ``ngettext`` (Python) or ``_()`` /
``ngettext()`` (templates), so that the catalogs can be extracted from one place
(``babel.cfg``, see the README). The language of the current request lives in a context
variable, so code far from the request (a flash message, a validation error, a live row
rendered for one viewer) translates without being handed it.

The catalogs are the ``.po`` files under ``web/locale``, read and compiled in memory on
first use: a fresh checkout needs no compile step, and a translator's edit shows after a
restart.
"""

from __future__ import annotations

import contextvars
import gettext as _gettext
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
SOURCE_LANGUAGE = "en"
LANGUAGES: tuple[str, ...] = ("en", "ru", "ja", "zh_Hans")
"""Languages users can choose, in the order the switchers list them."""

CURRENT_LANGUAGE: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_language", default=SOURCE_LANGUAGE
)
CURRENT_TIMEZONE: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_timezone", default="UTC"
)
CURRENT_REGION: contextvars.ContextVar[str] = contextvars.ContextVar("current_region", default="US")


@cache
def translations(language: str) -> _gettext.NullTranslations:
    """The compiled catalog of one language (English, the source, is the identity)."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language == SOURCE_LANGUAGE or not po.is_file():
        return _gettext.NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=language)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


@cache
def language_name(language: str) -> str:
    """A language's own name for itself ("Русский", "日本語"), for the switchers."""
    try:
        name = Locale.parse(language).get_display_name(language) or language
    except (ValueError, UnknownLocaleError):
        return language
    return name[:1].upper() + name[1:]


def normalize(tag: str | None) -> str | None:
    """A language tag ("ru-RU", "zh-CN", "ja") as one of LANGUAGES, or None."""
    if not tag:
        return None
    tag = tag.strip().replace("_", "-").lower()
    if tag.startswith("zh"):
        # Simplified unless the tag says Traditional; a Traditional reader still gets
        # Chinese rather than English.
        return "zh_Hans"
    base = tag.split("-")[0]
    return base if base in LANGUAGES else None


def from_accept_language(header: str | None) -> str | None:
    """The best of LANGUAGES for an Accept-Language header, by its q-values."""
    if not header:
        return None
    choices: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        tag, _sep, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = normalize(tag)
        if lang and q > 0:
            choices.append((-q, i, lang))
    return min(choices)[2] if choices else None


@contextmanager
def using(language: str, timezone: str | None = None, region: str | None = None) -> Iterator[None]:
    """Run a block in one user's language (and time zone, region): live rows, e-mails."""
    tokens = [CURRENT_LANGUAGE.set(language)]
    tz_token = CURRENT_TIMEZONE.set(timezone) if timezone else None
    region_token = CURRENT_REGION.set(region) if region else None
    try:
        yield
    finally:
        if region_token is not None:
            CURRENT_REGION.reset(region_token)
        if tz_token is not None:
            CURRENT_TIMEZONE.reset(tz_token)
        CURRENT_LANGUAGE.reset(tokens[0])


def gettext(message: str, **variables: Any) -> str:
    text = translations(CURRENT_LANGUAGE.get()).gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
    text = translations(CURRENT_LANGUAGE.get()).ngettext(singular, plural, n)
    variables.setdefault("num", n)
    return text % variables


def raw_gettext(message: str) -> str:
    """The translation alone, unformatted (jinja2's newstyle gettext formats it itself)."""
    return translations(CURRENT_LANGUAGE.get()).gettext(message)


def raw_ngettext(singular: str, plural: str, n: int) -> str:
    return translations(CURRENT_LANGUAGE.get()).ngettext(singular, plural, n)


def gettext_or_none(message: str | None) -> str | None:
    """A message kept untranslated (``N_``) until shown, or None."""
    return gettext(message) if message else None


def N_(message: str) -> str:
    """Marks a string for extraction without translating it (translated where shown)."""
    return message


STATIC_DIR = Path(__file__).resolve().parent / "static"


@cache
def js_messages() -> tuple[str, ...]:
    """The msgids the browser's scripts mark ``_("...")``, read from the scripts themselves
    (the same extractor ``pybabel extract`` uses), so there is no second list to keep."""
    from babel.messages.extract import extract_javascript

    found: dict[str, None] = {}
    for path in sorted(STATIC_DIR.glob("*.js")):
        with path.open("rb") as f:
            for _lineno, _func, message, _comments in extract_javascript(
                f, keywords=["_"], comment_tags=[], options={}
            ):
                if isinstance(message, str):
                    found[message] = None
    return tuple(found)


def js_strings(language: str) -> dict[str, str]:
    """The browser's strings in one language, to be put in the page as JSON."""
    t = translations(language)
    return {m: t.gettext(m) for m in js_messages()}


_ = gettext
