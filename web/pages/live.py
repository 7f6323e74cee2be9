"""``GET /events``: the logged-in user's Server-Sent Events stream (screen pops, live
lists, callbacks, click-to-call progress, the PBX link's state).

Each message is one ``data:`` line holding ``{"kind": ..., "data": ...}``; a comment line
every ``server.sse_heartbeat`` seconds (15 by default) keeps proxies from closing the
connection.  The fan-out logic lives in ``web.live``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from aiohttp import HttpVersion11, web

from .. import sessions
from ..app import RUNTIME, current_user, runtime
from ..live import LIVE_HUB, LiveHub
from ..render import ENV_KEY, visitor
from ..security import SESSION_COOKIE

routes = web.RouteTableDef()
POLL = 1.0
"""Seconds between checks that the browser is still there."""
WRITE_NOW_LIMIT = 64 * 1024
"""Bytes a browser may leave unread before its messages wait in its queue instead."""


def _writer(transport: asyncio.BaseTransport) -> Callable[[bytes], bool]:
    """A function writing one SSE frame as one HTTP/1.1 chunk (the framing of aiohttp's
    own chunked writes, so the two interleave safely: the hub writes only while the
    handler waits), unless the browser left or has not read what it was sent (False: the
    handler writes it, waiting for the browser without holding anybody else up).  The
    transport's methods are looked up once: the hub calls this for every browser a
    message goes to (uvloop's transports are no ``asyncio.WriteTransport`` subclass,
    hence no type check)."""
    write = transport.write  # type: ignore[attr-defined]
    closing = transport.is_closing
    buffered = transport.get_write_buffer_size  # type: ignore[attr-defined]

    def write_now(frame: bytes) -> bool:
        if closing() or buffered() > WRITE_NOW_LIMIT:
            return False
        write(_chunk(frame))
        return True

    return write_now


@functools.lru_cache(maxsize=64)
def _chunk(frame: bytes) -> bytes:
    """``frame`` as one HTTP/1.1 chunk; the same message to hundreds of browsers is
    framed once."""
    return b"%x\r\n%b\r\n" % (len(frame), frame)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _still_valid(request: web.Request, role: str) -> bool:
    """At each heartbeat: the session (or token) behind the stream is still alive and the
    user still has the role the stream was built for; a missed ``streams_close`` (another
    process, a lost notification) ends the stream here within one heartbeat."""
    rt = runtime(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if visitor(request).auth == "session" and cookie:
        found = await sessions.session_user(rt, cookie, touch=False)
        return found is not None and found[0].role == role
    auth = request.headers.get("Authorization", "")
    found_token = await rt.service.api_token_auth(auth[7:].strip())
    return found_token is not None and found_token[0].role == role


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    hub = request.app[LIVE_HUB]
    viewer = await hub.viewer_for(user)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    chunked = request.version >= HttpVersion11
    if chunked:
        response.enable_chunked_encoding()  # what aiohttp does anyway without a length
    await response.prepare(request)
    if request.method == "HEAD":  # aiohttp routes HEAD here too: headers only, no stream
        return response
    client = hub.connect(viewer)
    client.session = visitor(request).session
    if chunked and request.transport is not None:
        client.attach(_writer(request.transport), hub.flusher)
    loop = asyncio.get_running_loop()
    beat = loop.time() + hub.heartbeat
    written = client.written
    try:
        await response.write(b"retry: 3000\n: connected\n\n")
        while not client.closed:
            messages = await client.wait(min(POLL, hub.heartbeat))
            if messages:
                await response.write("".join(f"data: {m}\n\n" for m in messages).encode())
                hub.written(client)
                beat = loop.time() + hub.heartbeat
            elif client.written != written:  # the hub wrote (``Client.attach``): not idle
                written = client.written
                beat = loop.time() + hub.heartbeat
            elif loop.time() >= beat:
                if not await _still_valid(request, user.role):
                    break
                await response.write(b": ping\n\n")
                beat = loop.time() + hub.heartbeat
            if _gone(request):
                break
    except (ConnectionResetError, RuntimeError):
        pass  # the browser went away mid-write
    finally:
        hub.disconnect(client)
    return response


async def _start_hub(app: web.Application) -> None:
    await app[LIVE_HUB].start()


async def _stop_hub(app: web.Application) -> None:
    hub = app[LIVE_HUB]
    if hub.rt.extras.get("live_hub") is hub:
        del hub.rt.extras["live_hub"]
    await hub.close()


def setup(app: web.Application) -> None:
    rt = app[RUNTIME]
    hub = LiveHub(rt, app.get(ENV_KEY))
    app[LIVE_HUB] = hub
    rt.extras.setdefault("live_hub", hub)
    app.on_startup.append(_start_hub)
    app.on_shutdown.append(_stop_hub)
    app.router.add_routes(routes)
