"""Admin: API tokens for integrations.  A token acts as the user it belongs to (their role
and scope), is shown once when created (only its SHA-256 is stored), and can be revoked;
it may be read-only (GET/HEAD) and may expire after a number of days."""

from __future__ import annotations

from aiohttp import web

from crm.errors import InvalidInput, NotFound

from ..app import current_user, runtime
from ..i18n import _
from ..refusals import refusal
from ..render import render
from .admin_routes import AdminRoutes

routes = AdminRoutes()


@routes.get("/admin/tokens")
async def tokens(
    request: web.Request, *, new_token: str | None = None, error: str | None = None,
    status: int = 200,
) -> web.Response:  # fmt: skip
    rt = runtime(request)
    users = await rt.service.list_users()
    names = {u.id: u.display_name for u in users}
    tokens = await rt.service.list_api_tokens()
    ctx = {
        "section": "tokens",
        "users": users,
        "names": names,
        "tokens": tokens,
        "new_token": new_token,
        "error": error,
        "revoked": request.query.get("done") == "revoked",
        "now": rt.service.clock(),
    }
    return render(request, "admin_tokens.html", ctx, status=status)


@routes.post("/admin/tokens")
async def create_token(request: web.Request) -> web.StreamResponse:
    rt, form = runtime(request), await request.post()
    try:
        user_id = int(str(form.get("user_id", "")))
    except ValueError:
        return await tokens(request, error=_("Choose the user the token acts as."), status=400)
    try:
        days_text = str(form.get("expires_days", "")).strip()
        days = float(days_text) if days_text else None
        if days is not None and not 0 < days <= 3650:
            raise ValueError
    except ValueError:
        return await tokens(request, error=_("Expiry: a number of days (1-3650), or empty."),
                           status=400)  # fmt: skip
    try:
        token = await rt.service.create_api_token(
            user_id, str(form.get("name", "")), current_user(request).username,
            expires_at=rt.service.clock() + days * 86400 if days else None,
            scope="read" if form.get("scope") == "read" else "full",
        )  # fmt: skip
    except (InvalidInput, NotFound) as exc:
        return await tokens(request, error=refusal(exc), status=400)
    return await tokens(request, new_token=token)


@routes.post(r"/admin/tokens/{token_id:\d+}/revoke")
async def revoke_token(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    await rt.service.revoke_api_token(
        int(request.match_info["token_id"]), current_user(request).username
    )
    raise web.HTTPFound("/admin/tokens?done=revoked")


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
