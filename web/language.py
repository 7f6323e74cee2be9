"""Which language and time zone a request is answered in.

Language: the user's own choice (My account), else the login page's switcher (a cookie),
else the browser's Accept-Language, else the install's ``[server] language``. Time zone:
the user's own choice, else the install's ``[server] display_tz``. The answer goes into
``web.i18n``'s context variables, which the templates, the formatting module and every
``_()`` read.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from aiohttp import web

from crm.models import User
from web import i18n

LANG_COOKIE = "crm_lang"
"""The login page's language switcher remembers its choice here (no account needed)."""


def install_language(settings: dict[str, Any]) -> str:
    return i18n.normalize(str(settings.get("server", {}).get("language", "en"))) or "en"


def install_timezone(settings: dict[str, Any]) -> str:
    name = str(settings.get("server", {}).get("display_tz", "UTC"))
    return name if valid_timezone(name) else "UTC"


def valid_timezone(name: str | None) -> bool:
    if not name or name.startswith("/") or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def timezone_choices() -> list[str]:
    """The IANA zones a user may choose, sorted (Etc/ and legacy aliases left out)."""
    return sorted(
        z for z in available_timezones()
        if "/" in z and not z.startswith(("Etc/", "SystemV/", "US/", "posix/", "right/"))
    ) + ["UTC"]  # fmt: skip


def request_language(request: web.Request, user: User | None, settings: dict[str, Any]) -> str:
    chosen = i18n.normalize(getattr(user, "language", None) or None)
    if chosen:
        return chosen
    cookie = i18n.normalize(request.cookies.get(LANG_COOKIE))
    if cookie:
        return cookie
    return i18n.from_accept_language(request.headers.get("Accept-Language")) or install_language(
        settings
    )


def request_timezone(user: User | None, settings: dict[str, Any]) -> str:
    chosen = getattr(user, "timezone", None)
    return chosen if valid_timezone(chosen) else install_timezone(settings)


def apply(request: web.Request, user: User | None, settings: dict[str, Any]) -> None:
    """Set this request's language, time zone and number region (context variables: they
    end with the request's task)."""
    i18n.CURRENT_LANGUAGE.set(request_language(request, user, settings))
    i18n.CURRENT_TIMEZONE.set(request_timezone(user, settings))
    i18n.CURRENT_REGION.set(str(settings.get("numbers", {}).get("default_region", "US")))
