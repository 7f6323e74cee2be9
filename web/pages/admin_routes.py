"""The route table of the admin sections: every route it holds is for admins only, so a
handler added to an admin page cannot forget the guard (``web.app.roles``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.web_routedef import _Deco, _HandlerType

from ..app import roles


class AdminRoutes(web.RouteTableDef):
    """A ``RouteTableDef`` whose every handler is marked ``@roles("admin")``."""

    def route(self, method: str, path: str, **kwargs: Any) -> _Deco:
        register = super().route(method, path, **kwargs)

        def admin_only(handler: _HandlerType) -> _HandlerType:
            return register(roles("admin")(handler))

        return admin_only
