"""Click-to-call over HTTP: ``POST /dial`` (the UI's buttons and a plain form without
JavaScript) and ``GET /dial?number=`` (where ``tel:`` links land when the app handles
them: it asks before dialling, because a GET must never place a call).

The orchestration (checks, double-click protection, the Originate, progress events) is
``crm.clicktocall.ClickToCall``; this module builds it from the ``[dial]`` settings and
answers HTTP.  On PostgreSQL the click may be served by any process: the link manager
routes the Originate to the process consuming the rep's PBX link.  Progress reaches the
page as ``click_progress`` events on ``/events``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from aiohttp import web

from ami_bridge.dialrules import DialRuleError, DialRules
from ami_bridge.facts import OriginateResult
from ami_bridge.originate import LINK_DOWN, OriginateRequest
from crm.clicktocall import ClickResult, ClickToCall, ClickToCallError

from .. import i18n
from ..app import current_user, runtime, safe_next
from ..i18n import N_, _
from ..render import render
from ..runtime import Runtime

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
EXTRA = "clicktocall"
RULE_KEYS = ("outside_prefix", "international_prefix", "channel_template", "context",
             "caller_id", "ring_timeout_s")  # fmt: skip


class RuntimeLink:
    """The runtime's current PBX link, looked up at each use: an admin who changes the
    ``[ami]`` settings gets a new ``AmiLink``, and click-to-call follows it."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @property
    def status(self) -> Any:
        return self.rt.link.status if self.rt.link is not None else None

    async def originate(self, req: OriginateRequest,
                        timeout: float | None = None) -> OriginateResult:  # fmt: skip
        link = self.rt.link
        if link is None:
            return OriginateResult(req.action_id, False, None, LINK_DOWN, None, None, 0.0)
        return await link.originate(req, timeout)


def build_clicktocall(rt: Runtime) -> ClickToCall:
    """Click-to-call from ``[dial]`` (dial rules, blocked numbers, rate limit), the PBX's
    extension pattern and correlation variable, and the number region.  Raises
    ``DialRuleError``/``ValueError`` on settings that cannot work."""
    dial: dict[str, Any] = dict(rt.settings.get("dial", {}))
    pbx = rt.settings.get("pbx", {})
    region = str(rt.settings.get("numbers", {}).get("default_region", "US"))
    rules = DialRules.from_config({
        **{k: dial[k] for k in RULE_KEYS if k in dial},
        "home_region": region,
        "extension_pattern": str(pbx.get("extension_pattern", r"\d{2,6}")),
    })  # fmt: skip
    manager = rt.extras.get("link_manager")
    # Several processes (PostgreSQL): the link manager knows which process consumes the
    # rep's link and relays the Originate there.  One process: the local link, directly.
    router = manager.link_for if manager is not None and manager.desk is not None else None
    return ClickToCall(
        rt.service,
        RuntimeLink(rt),
        rules,
        rt.bus,
        blocked=[str(n) for n in dial.get("blocked", ())],
        per_user_per_minute=int(dial.get("per_user_per_minute", 10)),
        default_region=region,
        correlation_var=str(pbx.get("correlation_var", "CRM_CALL_ID")),
        router=router,
    )


def clicktocall_of(rt: Runtime) -> ClickToCall | None:
    """The runtime's click-to-call, built on first use when startup did not; None (and
    logged) when the ``[dial]`` settings are unusable."""
    c2c = rt.extras.get(EXTRA)
    if c2c is None:
        try:
            c2c = build_clicktocall(rt)
        except (DialRuleError, ValueError, TypeError):
            log.exception("click-to-call disabled: bad [dial] settings")
            return None
        rt.extras[EXTRA] = c2c
        rt.on_close(c2c.aclose)
    return c2c  # type: ignore[no-any-return]


def click_json(result: ClickResult) -> dict[str, Any]:
    data = asdict(result)
    data.pop("dial_string", None)  # PBX detail; the rep knows the number
    return data


REFUSALS = {
    "inactive": N_("This account cannot place calls."),
    "blocked": N_("This number is on the blocked list and cannot be called."),
    "bad_number": N_("That is not a phone number this PBX can dial."),
    "bad_extension": N_("Your extension cannot be rung by this PBX; ask an admin."),
    "no_extension": N_("You have no phone extension yet; ask an admin to assign one."),
    "not_your_extension": N_("You can only call from your own phone; that extension is not yours."),
    "rate_limited": N_("You are dialling too fast; wait a moment and try again."),
}
"""The service's refusals (crm/clicktocall.py, English with details) in the rep's language;
English readers keep the service's own, more detailed, words."""


def refusal_words(exc: ClickToCallError) -> str:
    if i18n.CURRENT_LANGUAGE.get() == i18n.SOURCE_LANGUAGE or exc.code not in REFUSALS:
        return exc.message
    return _(REFUSALS[exc.code])


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "") or (
        request.content_type == "application/json"
    )


def _error(request: web.Request, status: int, message: str, code: str) -> web.Response:
    if _wants_json(request):
        return web.json_response(
            {"error": {"status": status, "message": message, "code": code}}, status=status
        )
    return render(request, "error.html",
                  {"status": status, "reason": _("The call was not placed"), "message": message},
                  status=status)  # fmt: skip


def _page(request: web.Request, number: str, result: ClickResult | None,
          back: str) -> web.Response:  # fmt: skip
    return render(request, "dial.html", {"number": number, "result": result, "back": back})


def _number_from(value: str) -> str:
    value = value.strip()
    if value.lower().startswith("tel:"):
        value = value[4:]
    return value.split(";", 1)[0].strip()[:60]


@routes.get("/dial")
async def dial_confirm(request: web.Request) -> web.StreamResponse:
    """Where ``tel:`` links land; shows a button, never dials by itself."""
    current_user(request)
    number = _number_from(request.query.get("number", ""))
    back = safe_next(request.query.get("next"))
    return _page(request, number, None, back)


@routes.post("/dial")
async def dial(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            return _error(request, 400, _("The request was not valid JSON."), "bad_request")
        if not isinstance(data, dict):
            return _error(request, 400, _("The request was not a JSON object."), "bad_request")
    else:
        data = dict(await request.post())
    number = _number_from(str(data.get("number") or ""))
    extension = str(data.get("extension") or "").strip() or None
    key = str(data.get("request_key") or "").strip()[:80] or None
    c2c = clicktocall_of(runtime(request))
    if c2c is None:
        return _error(request, 503, _("Click-to-call is not set up; ask an admin."), "disabled")
    try:
        result = await c2c.start(user, number, extension, key)
    except ClickToCallError as exc:
        status = 429 if exc.code == "rate_limited" else 422
        return _error(request, status, refusal_words(exc), exc.code)
    if _wants_json(request):
        return web.json_response(click_json(result), status=202)
    return _page(request, result.number, result, safe_next(str(data.get("next") or "/")))


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
