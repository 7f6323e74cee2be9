"""``GET /metrics``: the process's figures for Prometheus (``web.metrics``).

From this machine (loopback, and no proxy header) it answers anyone, as a local
Prometheus or node agent expects; from anywhere else only to an admin's API token
(``Authorization: Bearer ...``): 401 without a token, 403 with another role's or with a
browser session.  ``[metrics] enabled = false`` turns the route off (404),
``loopback = false`` asks for a token from this machine too.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from ..app import public, runtime
from ..metrics import is_local
from ..render import visitor

routes = web.RouteTableDef()
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


@routes.get("/metrics")
@public
async def metrics(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    cfg = rt.settings.get("metrics", {})
    if not cfg.get("enabled", True):
        raise web.HTTPNotFound()
    v = visitor(request)  # a bad token was refused already (401) by the auth middleware
    if v.auth == "token" and v.user is not None:
        if v.user.role != "admin":
            raise web.HTTPForbidden(text="metrics need an admin's API token")
    elif not (cfg.get("loopback", True) and is_local(request.remote, _proxied(request))):
        if v.user is not None:
            raise web.HTTPForbidden(text="metrics need an admin's API token")
        raise web.HTTPUnauthorized(
            text="metrics need an admin's API token", headers={"WWW-Authenticate": "Bearer"}
        )
    # the text format Prometheus asks for (OpenMetrics if its Accept says so)
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encode(rt.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": content_type})


def _proxied(request: web.Request) -> bool:
    return any(h in request.headers for h in PROXY_HEADERS)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
