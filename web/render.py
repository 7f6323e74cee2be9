"""Templates: one autoescaping jinja2 environment and the filters every page uses.

Numbers, times and durations are formatted through ``web.formatting`` only, so every page
shows them the same way, in the reader's language and time zone; a number is always a
click-to-call control. The filters are bound once but read the request's language, time
zone and region from ``web.i18n``'s context variables, so they are per-request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import phonenumbers
from aiohttp import web
from markupsafe import Markup, escape

from crm.models import User
from web import formatting, i18n
from web.i18n import _
from web.labels import LABELS, PHRASES, label

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
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


def format_number(value: str | None, region: str | None = None) -> str:
    """E.164 in the readable international form; extensions and odd strings as they are."""
    if not value:
        return ""
    if value.startswith("+"):
        return _format_e164(value, region or i18n.CURRENT_REGION.get())
    return value


@lru_cache(maxsize=4096)
def _format_e164(value: str, region: str) -> str:
    """Parsing a number costs more than the rest of a live row's rendering, and the same
    numbers come back call after call."""
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


def dial_link(value: str | None, region: str | None = None) -> Markup:
    """A number as a click-to-call button (a form, so it works without JavaScript)."""
    if not value:
        return Markup("")
    return _dial_link(value, region or i18n.CURRENT_REGION.get(), i18n.CURRENT_LANGUAGE.get())


@lru_cache(maxsize=4096)
def _dial_link(value: str, region: str, language: str) -> Markup:
    """``dial_link`` in one region and language (every live row has one, in every
    update of the call)."""
    shown = format_number(value, region)
    return Markup('<a class="dial" href="tel:{v}" data-dial="{v}" title="{t}">{s}</a>').format(
        v=value, s=escape(shown), t=_("Call %(number)s", number=shown)
    )


format_time = formatting.format_time
format_duration = formatting.format_duration


_WORDS: dict[tuple[str, str], Markup] = {}
"""``_("...")`` without variables, per language, as the template gets it."""


@jinja2.pass_context
def template_gettext(context: jinja2.runtime.Context, message: str, /, **variables: Any) -> str:
    """The templates' ``_``: jinja2's newstyle gettext (the translation as Markup, always
    %-formatted, so "%%" is "%"), with the plain words kept per language: a table calls it
    for every cell, and each call went through two context calls and a format."""
    autoescape = context.eval_ctx.autoescape
    key = (i18n.CURRENT_LANGUAGE.get(), message)
    if not variables and autoescape:
        cached = _WORDS.get(key)
        if cached is not None:
            return cached
    text = i18n.raw_gettext(message)
    rv = (Markup(text) if autoescape else text) % variables
    if not variables and autoescape:
        if len(_WORDS) > 20_000:  # only literals reach here; a bound all the same
            _WORDS.clear()
        _WORDS[key] = rv
    return rv


def make_env(settings: dict[str, Any]) -> jinja2.Environment:
    """The one environment of the app. Templates are compiled once and never checked for
    changes again (``auto_reload`` off): like the catalogs, an edit shows after a restart,
    and no page stats its templates on every request."""
    region = str(settings.get("numbers", {}).get("default_region", "US"))
    tz = str(settings.get("server", {}).get("display_tz", "UTC"))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        auto_reload=False,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(i18n.raw_gettext, i18n.raw_ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["_"] = template_gettext
    env.filters["number"] = format_number
    env.filters["dial"] = dial_link
    env.filters["time"] = formatting.format_time
    env.filters["day"] = formatting.format_date
    env.filters["duration"] = formatting.format_duration
    env.filters["count"] = formatting.format_count
    env.filters["percent"] = formatting.format_percentage
    env.filters["decimal"] = formatting.format_fixed
    env.filters["label"] = label
    env.filters["tr"] = lambda v: i18n.gettext(str(v)) if v else ""
    env.globals["region"] = region
    env.globals["install_tz"] = tz
    env.extend(rendered_pieces={})  # see piece()
    return env


@lru_cache(maxsize=128)
def page_i18n(language: str, timezone: str) -> Markup:
    """The JSON the browser's scripts read (``#crm-i18n``): strings in the reader's language,
    and the time zone, patterns and names to format times exactly as the page does."""
    blob = formatting.browser_formats(language, timezone)
    with i18n.using(language):
        blob["strings"] = i18n.js_strings(language)
        blob["labels"] = {code: label(code) for code in LABELS}
        blob["phrases"] = {text: i18n.gettext(text) for text in PHRASES}
    text = json.dumps(blob, ensure_ascii=False, separators=(",", ":"))
    # Safe inside <script type="application/json">: no "</" can close the element.
    return Markup(text.replace("</", "<\\/"))


_STATIC_URLS: dict[tuple[str, str], tuple[tuple[int, int], str]] = {}


def _static(request: web.Request) -> Any:
    resource = request.app.router["static"]

    def url(filename: str) -> str:
        """The file's URL with its version (a hash of its bytes, aiohttp's
        ``append_version``), worked out again only when the file changed: aiohttp reads
        and hashes the whole file on every call, five files on every page."""
        try:
            st = (STATIC / filename).stat()
        except OSError:
            return str(resource.url_for(filename=filename))
        stamp, key = (st.st_mtime_ns, st.st_size), (resource.canonical, filename)
        known = _STATIC_URLS.get(key)
        if known is None or known[0] != stamp:
            known = _STATIC_URLS[key] = (stamp, str(resource.url_for(filename=filename)))
        return known[1]

    return url


def _link_down(request: web.Request) -> Any:
    """The banner's "PBX link down since" (``web.linkstate``), None when up or when the
    app runs without a runtime."""
    from .app import RUNTIME
    from .linkstate import link_down

    rt = request.app.get(RUNTIME)
    return link_down(rt) if rt is not None else None


PIECES_KEPT = 5_000
"""Rendered pieces kept per environment: a few pages of rows for every manager."""


def piece(request: web.Request, template: str, macro: str, item: tuple[Any, ...]) -> Markup:
    """``macro`` of ``template`` called with ``item`` alone, kept for the reader's language,
    time zone and region: the managers reload the same pages, whose rows cost more than
    the rest of the page. ``item`` must be everything the macro reads (a flat tuple of
    values, so its equality is the rendering's); the key holds it whole, so a changed
    value (a renamed rep, a closed callback) is a new key, never a stale row."""
    env = request.app[ENV_KEY]
    kept: dict[tuple[Any, ...], Markup] = env.rendered_pieces  # type: ignore[attr-defined]
    key = (
        template, macro, item, i18n.CURRENT_LANGUAGE.get(), i18n.CURRENT_TIMEZONE.get(),
        i18n.CURRENT_REGION.get(),
    )  # fmt: skip
    html = kept.get(key)
    if html is None:
        html = Markup(getattr(env.get_template(template).module, macro)(item))
        if len(kept) >= PIECES_KEPT:
            del kept[next(iter(kept))]  # the oldest
        kept[key] = html
    return html


def render(
    request: web.Request, name: str, context: dict[str, Any] | None = None, status: int = 200
) -> web.Response:
    env = request.app[ENV_KEY]
    v = visitor(request)
    language, timezone = i18n.CURRENT_LANGUAGE.get(), i18n.CURRENT_TIMEZONE.get()
    ctx = {
        "request": request, "user": v.user, "csrf": v.csrf_token, "static": _static(request),
        "lang": language, "lang_tag": language.replace("_", "-"), "timezone": timezone,
        "languages": [(code, i18n.language_name(code)) for code in i18n.LANGUAGES],
        "i18n_json": lambda: page_i18n(language, timezone),
        "pbx_link_down": lambda: _link_down(request),
    }  # fmt: skip
    ctx.update(context or {})
    html = env.get_template(name).render(ctx)
    return web.Response(text=html, content_type="text/html", status=status)
