"""The supervisor board: ``/board`` (managers: their team; admins: everyone),
``/board/wall`` (big figures for a TV or a phone, no interaction), ``/board/events``
(its Server-Sent Events stream) and the managers' actions on queue members
(``POST /board/pause``, ``POST /board/membership``).

The live state is ``web.board_live.BoardHub``'s; the actions are ``crm.queue_actions``'s.
The page is rendered complete on the server (it works without JavaScript, and a form
post answers with the page and a message); ``static/board.js`` keeps it live.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from crm.queue_actions import QueueActions

from ..app import RUNTIME, current_user, roles, runtime, wants_json
from ..board_live import BoardHub
from ..i18n import _
from ..render import render
from ..words import words
from .queue_figures import queue_figures_context

routes = web.RouteTableDef()
BOARD_HUB = web.AppKey("board_hub", BoardHub)
HEARTBEAT = 15.0
POLL = 1.0
STATES = ("available", "ringing", "on_call", "on_hold", "paused", "wrapup", "offline")


def state_labels() -> dict[str, str]:
    return words("rep_state")


def js_labels() -> dict[str, str]:
    """What board.js writes on the page, translated here (it has no catalog)."""
    return {**words("rep_state"), **words("board_js")}


def member_state(status: int | None) -> str:
    """Asterisk's queue member status as a board state (for the member chips)."""
    return {
        2: "on_call",
        3: "on_call",
        4: "offline",
        5: "offline",
        6: "ringing",
        7: "ringing",
        8: "on_hold",
    }.get(int(status or 0), "available")


async def _board_context(request: web.Request) -> dict[str, Any]:
    hub = request.app[BOARD_HUB]
    viewer = await hub.viewer_for(current_user(request))
    state = hub.state_for(viewer)
    counts = {s: 0 for s in STATES}
    for rep in state["reps"]:
        counts[rep["state"]] = counts.get(rep["state"], 0) + 1
    return {
        "board": state,
        "counts": counts,
        "labels": state_labels(),
        "states": STATES,
        "board_labels": js_labels(),
        "notice": None,
        "member_state": member_state,
    }


async def _board_page(request: web.Request, template: str) -> web.StreamResponse:
    """The board or the wall: the live state and today's queue figures."""
    ctx = await _board_context(request)
    ctx.update(await queue_figures_context(request))
    return render(request, template, ctx)


@routes.get("/board")
@roles("manager", "admin")
async def board(request: web.Request) -> web.StreamResponse:
    return await _board_page(request, "board.html")


@routes.get("/board/wall")
@roles("manager", "admin")
async def wall(request: web.Request) -> web.StreamResponse:
    return await _board_page(request, "board_wall.html")


@routes.get("/board/events")
@roles("manager", "admin")
async def board_events(request: web.Request) -> web.StreamResponse:
    hub = request.app[BOARD_HUB]
    viewer = await hub.viewer_for(current_user(request))
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    client = hub.connect(viewer)
    loop = asyncio.get_running_loop()
    beat = loop.time() + HEARTBEAT
    try:
        await response.write(b"retry: 3000\n: connected\n\n")
        while not client.closed:
            messages = await client.wait(POLL)
            if messages:
                await response.write("".join(f"data: {m}\n\n" for m in messages).encode())
                beat = loop.time() + HEARTBEAT
            elif loop.time() >= beat:
                await response.write(b": ping\n\n")
                beat = loop.time() + HEARTBEAT
            transport = request.transport
            if transport is None or transport.is_closing():
                break
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        hub.disconnect(client)
    return response


def _actions(request: web.Request) -> QueueActions:
    rt = runtime(request)
    found = rt.extras.get("queue_actions")
    if found is None:

        def link_for(name: str | None) -> Any:
            links = rt.links
            if name and name in links:
                return links[name]
            return rt.link

        template = str(rt.settings.get("dial", {}).get("channel_template", "PJSIP/{ext}"))
        found = rt.extras["queue_actions"] = QueueActions(rt.store, rt.clock, link_for, template)
    return found


async def _act(request: web.Request, op: str) -> web.StreamResponse:
    form = await request.post()
    user = current_user(request)
    hub = request.app[BOARD_HUB]
    viewer = await hub.viewer_for(user)
    ext = str(form.get("extension", ""))
    rep = hub.reps.get(ext.strip())
    result = await _actions(request).run(
        user,
        viewer.scope,
        viewer.extensions,
        op,  # type: ignore[arg-type]
        ext,
        str(form.get("queue", "")),
        str(form.get("reason", "")),
        link=rep.get("link") if rep else None,
        member_name=hub._names.get(ext.strip()),
    )
    if wants_json(request):
        return web.json_response(
            {"ok": result.ok, "message": _(result.text, **result.params)}, status=result.status
        )
    ctx = await _board_context(request)
    ctx.update(await queue_figures_context(request))
    ctx["notice"] = {"ok": result.ok, "message": _(result.text, **result.params)}
    return render(request, "board.html", ctx, status=result.status)


@routes.post("/board/pause")
@roles("manager", "admin")
async def pause(request: web.Request) -> web.StreamResponse:
    """``paused``: 1 pauses (with ``reason``), 0 unpauses; ``queue`` empty: every queue."""
    form = await request.post()
    op = "pause" if str(form.get("paused", "1")) in ("1", "true", "on") else "unpause"
    return await _act(request, op)


@routes.post("/board/membership")
@roles("manager", "admin")
async def membership(request: web.Request) -> web.StreamResponse:
    """``op``: add or remove ``extension`` to / from ``queue``."""
    form = await request.post()
    op = str(form.get("op", ""))
    if op not in ("add", "remove"):
        raise web.HTTPBadRequest(text=_("Choose add or remove."))
    return await _act(request, op)


async def _start(app: web.Application) -> None:
    await app[BOARD_HUB].start()


async def _stop(app: web.Application) -> None:
    await app[BOARD_HUB].close()


def setup(app: web.Application) -> None:
    hub = BoardHub(app[RUNTIME])
    app[BOARD_HUB] = hub
    app[RUNTIME].extras.setdefault("board_hub", hub)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    app.router.add_routes(routes)
