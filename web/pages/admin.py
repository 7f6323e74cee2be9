"""Admin: the PBX link (settings, test, live status) and the run-time settings (number
region, lead policy, callback SLA).  Users, extensions and the audit log are in
``admin_users.py`` and ``admin_audit.py``.

Settings saved here live in the store (``put_setting``) and override
``config/default.toml`` at startup (``apply_stored_settings``), so every process agrees.
The AMI secret is write-only: no page, JSON answer or log line carries it.  An empty
secret field keeps the stored one only while host, port, user name and TLS stay as they
are: the stored secret is never sent to an endpoint it was not entered for (a stolen
admin session cannot point it at its own host).  The test button is rate-limited per admin
and for the whole process, so it cannot serve as a port scanner.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jinja2
import phonenumbers
from aiohttp import web

from ami_bridge.link import LinkStatus, probe_connection, settings_from_config
from crm.backfill import backfill_settings
from crm.errors import InvalidInput
from crm.policy import LeadPolicy

from ..app import current_user, runtime
from ..formatting import babel_locale
from ..i18n import N_, _, gettext_or_none
from ..ratelimit import RateLimit, hit_all
from ..refusals import refusal
from ..render import ENV_KEY, render
from ..runtime import Runtime, lead_policy, restart_links
from .admin_routes import AdminRoutes
from .dial import clicktocall_of

routes = AdminRoutes()
AMI_FIELDS = ("host", "port", "username", "tls")
CREATE_ON = {
    "every_call": N_("every call from an unknown number"),
    "missed_only": N_("only missed calls from an unknown number"),
    "never": N_("never (add contacts by hand)"),
}
PROBE_TIMEOUT = 5.0
PROBES_PER_USER = 5
"""Test-connection clicks per admin per minute."""
PROBES_GLOBAL = 20
"""Test-connection clicks per process per minute, all admins together."""
SECRET_AGAIN = N_(
    "secret: enter the AMI secret again: the stored one is only used with the host, port, "
    "user name and TLS setting it was saved for. Nothing was changed."
)
NOTICES = {
    "pbx": N_("PBX link settings saved."),
    "pbx-restarted": N_("PBX link settings saved; the link is reconnecting with them."),
    "settings": N_("Settings saved."),
}
_HOST = re.compile(r"^[A-Za-z0-9.:_\-\[\]]{1,253}$")


# -- applying settings ----------------------------------------------------------------
async def _default_owner_id(rt: Runtime) -> int | None:
    name = str(rt.settings.get("leads", {}).get("default_owner", "") or "")
    if not name:
        return None
    user = await rt.store.get_user_by_username(name)
    return user.id if user is not None and user.active else None


async def apply_policy(rt: Runtime) -> LeadPolicy:
    """Rebuild the lead policy from ``rt.settings`` and hand it to the service and the
    ingest (the policy is frozen: both get the new object)."""
    policy = lead_policy(rt.settings, await _default_owner_id(rt))
    rt.service.policy = policy
    rt.ingest.policy = policy
    return policy


def apply_region(env: jinja2.Environment, region: str) -> None:
    """Point the templates at a new default region (no restart; the number filters read
    the request's region, which ``web.language`` takes from the settings)."""
    env.globals["region"] = region


def regions() -> list[tuple[str, str]]:
    """The regions phone numbers know, with country names in the reader's language,
    sorted by name."""
    names = babel_locale().territories
    found = [(code, str(names.get(code, code))) for code in phonenumbers.SUPPORTED_REGIONS]
    return sorted(found, key=lambda pair: pair[1])


async def apply_stored_settings(rt: Runtime) -> None:
    """At startup, before the link starts: the settings saved from the admin pages
    (``ami``, ``numbers``, ``leads``, ``recordings``) override the config file's, and the
    lead policy is rebuilt from the result.  Call it before ``create_app`` so the templates' number
    region is the stored one too."""
    for section in ("ami", "numbers", "leads", "recordings"):
        stored = await rt.service.get_setting(section)
        if stored:
            rt.settings.setdefault(section, {}).update(stored)
    await apply_policy(rt)


async def restart_link(rt: Runtime) -> bool:
    """Reconnect the running link with the current ``[ami]`` settings.  A process that
    runs no link (a web-only process, tests) keeps running none: False."""
    if rt.link is None:
        return False
    await restart_links(rt)
    return True


# -- the PBX page ---------------------------------------------------------------------
async def backfill_view(rt: Runtime) -> dict[str, Any]:
    """Calls during an outage: whether a CDR source is set, and per link (from the store,
    so any process shows it) when the last backfill ran, what it wrote, and its error."""
    from ..linkmanager import link_configs

    running = rt.extras.get("backfills") or {}
    try:
        configured = bool(running) or any(
            backfill_settings(rt.settings, cfg.ami).configured for cfg in link_configs(rt.settings)
        )
    except ValueError as exc:
        return {"configured": True, "error": f"[cdr] settings: {exc}", "states": []}
    try:
        states = await rt.store.list_backfill_states()
    except Exception as exc:  # the database may be down: say so, keep the page
        return {"configured": configured, "error": refusal(exc), "states": []}
    return {"configured": configured, "error": None, "states": states}


def link_status_json(status: LinkStatus | None) -> dict[str, Any]:
    if status is None:
        return {"state": "not running"}
    return dataclasses.asdict(status)


def _shown_ami(rt: Runtime, form: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the form shows: the current values (or what the admin just typed), never
    the secret; ``has_secret`` tells whether one is set."""
    ami = rt.settings.get("ami", {})
    shown = {k: ami.get(k, "") for k in AMI_FIELDS}
    shown["tls"] = bool(ami.get("tls", False))
    shown["tracker_process"] = bool(ami.get("tracker_process", False))
    if form is not None:
        shown.update({k: form[k] for k in (*AMI_FIELDS, "tracker_process") if k in form})
    shown["has_secret"] = bool(ami.get("secret"))
    return shown


@routes.get("/admin")
async def admin_home(
    request: web.Request,
    form: dict[str, Any] | None = None,
    error: str | None = None,
    probe: tuple[bool, str] | None = None,
    status: int = 200,
) -> web.Response:
    rt = runtime(request)
    ctx = {
        "section": "pbx",
        "backfill": await backfill_view(rt),
        "ami": _shown_ami(rt, form),
        "link": rt.link_status,
        "link_running": rt.link is not None,
        "store": rt.holding_status,
        "error": error,
        "probe": probe,
        "notice": gettext_or_none(NOTICES.get(request.query.get("done", ""))),
        "originate_refused": _originate_refused(rt),
    }
    return render(request, "admin.html", ctx, status=status)


def _originate_refused(rt: Runtime) -> float | None:
    """When the PBX last refused a click-to-call because the AMI user may not
    originate (None: it has not, or a click went through since)."""
    c2c = clicktocall_of(rt)
    return getattr(c2c, "refused_at", None) if c2c is not None else None


@routes.get("/admin/link-status")
async def link_status(request: web.Request) -> web.StreamResponse:
    """The live link status for admin.js (refreshes the numbers between SSE events)."""
    return web.json_response(link_status_json(runtime(request).link_status))


def _endpoint(ami: dict[str, Any]) -> tuple[str, str, str, bool]:
    """Where a secret goes: host, port, user name and TLS (any change needs the secret)."""
    return (str(ami.get("host", "")).strip().lower(), str(ami.get("port", "")).strip(),
            str(ami.get("username", "")).strip(), bool(ami.get("tls", False)))  # fmt: skip


async def _typed_ami(request: web.Request) -> dict[str, Any]:
    """The PBX form as typed, to show it again with a refusal."""
    form = await request.post()
    typed: dict[str, Any] = {k: str(form.get(k, "")) for k in AMI_FIELDS}
    typed["tls"] = form.get("tls") in ("on", "1", "true")
    typed["tracker_process"] = form.get("tracker_process") in ("on", "1", "true")
    return typed


async def _ami_form(request: web.Request) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(typed values for redisplay, values to store, the merged ``[ami]`` section).
    Raises InvalidInput with a message for the admin."""
    rt = runtime(request)
    form = await request.post()
    typed = {
        "host": str(form.get("host", "")).strip(),
        "port": str(form.get("port", "")).strip(),
        "username": str(form.get("username", "")).strip(),
        "tls": form.get("tls") in ("on", "1", "true"),
        "tracker_process": form.get("tracker_process") in ("on", "1", "true"),
    }
    if not _HOST.match(typed["host"]):
        raise InvalidInput(_("host: a host name or an IP address"))
    try:
        port = int(typed["port"])
    except ValueError:
        raise InvalidInput(_("port: a number from 1 to 65535")) from None
    values: dict[str, Any] = {
        "host": typed["host"],
        "port": port,
        "username": typed["username"],
        "tls": typed["tls"],
        "tracker_process": typed["tracker_process"],
    }
    secret = str(form.get("secret", ""))
    stored = rt.settings.get("ami", {})
    if secret:
        values["secret"] = secret
    elif stored.get("secret") and _endpoint(values) != _endpoint(stored):
        raise InvalidInput(_(SECRET_AGAIN))
    merged = {**rt.settings.get("ami", {}), **values}
    try:
        settings_from_config(merged)
    except ValueError as exc:
        raise InvalidInput(str(exc).removeprefix("ami.")) from None
    return typed, values, merged


@routes.post("/admin/pbx")
async def save_pbx(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    user = current_user(request)
    try:
        typed, values, merged = await _ami_form(request)
    except InvalidInput as exc:
        typed = await _typed_ami(request)
        return await admin_home(request, typed, refusal(exc), status=400)
    await rt.service.put_setting("ami", values, user.username)
    rt.settings["ami"] = merged
    restarted = await restart_link(rt)
    raise web.HTTPSeeOther(f"/admin?done={'pbx-restarted' if restarted else 'pbx'}")


@routes.post("/admin/pbx/test")
async def test_pbx(request: web.Request) -> web.StreamResponse:
    """Try the values in the form (an empty secret: the stored one, for the stored
    endpoint only) without saving; a few tries a minute."""
    user = current_user(request)
    limits = runtime(request).extras.setdefault(
        "probe_limits", (RateLimit(PROBES_PER_USER, 60.0), RateLimit(PROBES_GLOBAL, 60.0))
    )
    wait = hit_all((limits[0], user.id), (limits[1], None))
    if wait:
        typed = await _typed_ami(request)
        message = _("Too many connection tests; wait %(seconds)d s and try again.",
                    seconds=int(wait) + 1)  # fmt: skip
        resp = await admin_home(request, typed, message, status=429)
        resp.headers["Retry-After"] = str(int(wait) + 1)
        return resp
    try:
        typed, _values, merged = await _ami_form(request)
    except InvalidInput as exc:
        typed = await _typed_ami(request)
        return await admin_home(request, typed, refusal(exc), status=400)
    result = await probe_connection(settings_from_config(merged), PROBE_TIMEOUT)
    return await admin_home(request, typed, probe=result)


# -- numbers, leads, callback SLA ------------------------------------------------------
def _settings_ctx(rt: Runtime, users: list[Any], form: dict[str, Any] | None) -> dict[str, Any]:
    leads = rt.settings.get("leads", {})
    shown = {
        "default_region": rt.settings.get("numbers", {}).get("default_region", "US"),
        "create_on": leads.get("create_on", "every_call"),
        "repeat_window_hours": leads.get("repeat_window_hours", 72.0),
        "default_owner": leads.get("default_owner", "") or "",
        "callback_sla_minutes": leads.get("callback_sla_minutes", 60.0),
    }
    shown.update(form or {})
    return {
        "section": "settings",
        "values": shown,
        "regions": regions(),
        "create_on": {key: _(text) for key, text in CREATE_ON.items()},
        "owners": [u for u in users if u.active],
        "example": phonenumbers.format_number(
            phonenumbers.example_number(str(shown["default_region"]))
            or phonenumbers.example_number("US"),
            phonenumbers.PhoneNumberFormat.NATIONAL,
        )
        if str(shown["default_region"]) in phonenumbers.SUPPORTED_REGIONS
        else "",
    }


@routes.get("/admin/settings")
async def settings_page(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    ctx = _settings_ctx(rt, await rt.service.list_users(), None)
    ctx.update(error=None, notice=gettext_or_none(NOTICES.get(request.query.get("done", ""))))
    return render(request, "admin_settings.html", ctx)


def _number(text: str, what: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(_("%(field)s: a number", field=what)) from None
    if not low < value <= high:
        raise InvalidInput(_("%(field)s: more than %(low)s and at most %(high)s",
                             field=what, low=format(low, "g"), high=format(high, "g")))  # fmt: skip
    return value


@routes.post("/admin/settings")
async def save_settings(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    user = current_user(request)
    form = await request.post()
    typed = {
        k: str(form.get(k, "")).strip()
        for k in (
            "default_region",
            "create_on",
            "repeat_window_hours",
            "default_owner",
            "callback_sla_minutes",
        )
    }
    users = await rt.service.list_users()
    try:
        region = typed["default_region"].upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise InvalidInput(_("default region: %(region)s is not an ISO region code",
                                 region=repr(region)))  # fmt: skip
        if typed["create_on"] not in CREATE_ON:
            raise InvalidInput(_("create leads on: choose one of the options"))
        window = _number(typed["repeat_window_hours"], _("repeat window (hours)"), 0, 24 * 365)
        sla = _number(typed["callback_sla_minutes"], _("callback SLA (minutes)"), 0,
                      60 * 24 * 30)  # fmt: skip
        owner = typed["default_owner"]
        if owner and owner not in {u.username for u in users if u.active}:
            raise InvalidInput(_("default owner: choose an active user"))
    except InvalidInput as exc:
        ctx = _settings_ctx(rt, users, typed)
        ctx.update(error=refusal(exc), notice=None)
        return render(request, "admin_settings.html", ctx, status=400)
    leads = {
        "create_on": typed["create_on"],
        "repeat_window_hours": window,
        "default_owner": owner,
        "callback_sla_minutes": sla,
    }
    await rt.service.put_setting("numbers", {"default_region": region}, user.username)
    await rt.service.put_setting("leads", leads, user.username)
    rt.settings.setdefault("numbers", {})["default_region"] = region
    rt.settings.setdefault("leads", {}).update(leads)
    await apply_policy(rt)
    apply_region(request.app[ENV_KEY], region)
    raise web.HTTPSeeOther("/admin/settings?done=settings")


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
