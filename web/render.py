"""Templates: one autoescaping jinja2 environment and the filters every page uses.

Numbers, times and durations are formatted here and only here, so every page shows them
the same way and a number is always a click-to-call control.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import phonenumbers
from aiohttp import web
from markupsafe import Markup, escape

from crm.models import User
from web import i18n

TEMPLATES = Path(__file__).resolve().parent / "templates"
ENV_KEY: web.AppKey[jinja2.Environment] = web.AppKey("jinja_env", jinja2.Environment)


@dataclass
class Visitor:
    """Who is asking, as the auth middleware found out; one per request."""

    user: User | None = None
    auth: str | None = None
    """``session`` (cookie; CSRF applies) or ``token`` (API bearer token)."""
    csrf_nonce: str = ""
    csrf_token: str = ""
    session: str | None = None
    """The store's id of the session (cookie logins only)."""


VISITOR: web.RequestKey[Visitor] = web.RequestKey("visitor", Visitor)


def visitor(request: web.Request) -> Visitor:
    v = request.get(VISITOR)
    if v is None:
        v = request[VISITOR] = Visitor()
    return v


def format_number(value: str | None, region: str = "US") -> str:
    """E.164 in the readable international form; extensions and odd strings as they are."""
    if not value:
        return ""
    if value.startswith("+"):
        try:
            parsed = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            return value
        fmt = (
            phonenumbers.PhoneNumberFormat.NATIONAL
            if phonenumbers.region_code_for_number(parsed) == region
            else phonenumbers.PhoneNumberFormat.INTERNATIONAL
        )
        return phonenumbers.format_number(parsed, fmt)
    return value


def dial_link(value: str | None, region: str = "US") -> Markup:
    """A number as a click-to-call button (a form, so it works without JavaScript)."""
    if not value:
        return Markup("")
    shown = escape(format_number(value, region))
    return Markup(
        '<a class="dial" href="tel:{v}" data-dial="{v}" title="Call {s}">{s}</a>'
    ).format(v=value, s=shown)


def format_time(value: float | None, tz: str = "UTC", fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    return dt.datetime.fromtimestamp(value, ZoneInfo(tz)).strftime(fmt)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def make_env(settings: dict[str, Any]) -> jinja2.Environment:
    region = str(settings.get("numbers", {}).get("default_region", "US"))
    tz = str(settings.get("server", {}).get("display_tz", "UTC"))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["number"] = lambda v: format_number(v, region)
    env.filters["dial"] = lambda v: dial_link(v, region)
    env.filters["time"] = lambda v, fmt="%Y-%m-%d %H:%M": format_time(v, tz, fmt)
    env.filters["duration"] = format_duration
    env.globals["region"] = region
    return env


def _static(request: web.Request) -> Any:
    resource = request.app.router["static"]

    def url(filename: str) -> str:
        return str(resource.url_for(filename=filename))

    return url


def _link_down(request: web.Request) -> Any:
    """The banner's "PBX link down since" (``web.linkstate``), None when up or when the
    app runs without a runtime."""
    from .app import RUNTIME
    from .linkstate import link_down

    rt = request.app.get(RUNTIME)
    return link_down(rt) if rt is not None else None


def render(
    request: web.Request, name: str, context: dict[str, Any] | None = None, status: int = 200
) -> web.Response:
    env = request.app[ENV_KEY]
    v = visitor(request)
    ctx = {
        "request": request,
        "user": v.user,
        "csrf": v.csrf_token,
        "static": _static(request),
        "pbx_link_down": lambda: _link_down(request),
    }
    ctx.update(context or {})
    html = env.get_template(name).render(ctx)
    return web.Response(text=html, content_type="text/html", status=status)
