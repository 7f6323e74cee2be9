"""Recordings over HTTP: stream (with byte ranges, so the player can seek), download and
waveform, each behind a signed link made for the logged-in user.

Every request is checked again from scratch: the link is genuine, unexpired and made for
this user; the recording is ready; the user's scope still covers the call.  Anything else
is 403 (no detail to help a guesser).  Plays and downloads are written to the audit log: a
download every time, a play once per link (the first request from byte 0), not once per
Range chunk the player asks for while seeking.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from pathlib import Path

from aiohttp import web

from crm.models import RecordingRow, User
from recordings.locate import UnsafeName
from recordings.transcode import MEDIA_CONTENT_TYPE, media_file, waveform_name_for

from ..app import current_user, runtime
from ..i18n import N_, _
from ..recordings_view import may_download, media_dir, verify

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
_PLAYED_KEY: web.AppKey[OrderedDict[str, float]] = web.AppKey("played_links", OrderedDict)
EMPTY_SUFFIX = re.compile(r"\s*bytes\s*=\s*-\s*0+\s*", re.IGNORECASE)
"""``Range: bytes=-0``: a suffix of zero bytes."""
REFUSED = N_("You cannot listen to this recording, or the link has expired; reload the page.")


async def _allowed(request: web.Request, user: User,
                   action: str) -> tuple[RecordingRow, Path]:  # fmt: skip
    """The recording and its file, if this request may have them for ``action`` (the
    link's signature names it); else 403."""
    rt = runtime(request)
    try:
        rec_id = int(request.match_info["rec_id"])
    except ValueError:
        raise web.HTTPForbidden(text=REFUSED) from None
    if user.id is None or verify(rt, rec_id, user.id, request.query, action) is None:
        raise web.HTTPForbidden(text=REFUSED)
    row = await rt.service.get_recording(rec_id)
    if row is None:
        raise web.HTTPForbidden(text=REFUSED)
    call = await rt.store.get_call(row.call_id)
    scope = await rt.service.scope_for(user)
    if call is None or not await rt.service.can_see_call(scope, call):
        raise web.HTTPForbidden(text=REFUSED)
    if row.status != "ready" or not row.media_path:
        raise web.HTTPNotFound(text=_("This recording is not available for playing."))
    try:
        path = media_file(media_dir(rt), row.media_path)
    except UnsafeName:
        log.error("recording %s: refusing media_path %r", row.id, row.media_path)
        raise web.HTTPNotFound(text=_("This recording is not available for playing.")) from None
    return row, path


async def _exists(path: Path) -> bool:
    return await asyncio.get_running_loop().run_in_executor(None, path.is_file)


async def _refuse_empty_suffix(request: web.Request, path: Path) -> None:
    """``Range: bytes=-0`` ("the last 0 bytes") is unsatisfiable (RFC 9110 14.1.2): 416,
    where aiohttp would send the whole file."""
    if EMPTY_SUFFIX.fullmatch(request.headers.get("Range", "")):
        size = await asyncio.get_running_loop().run_in_executor(None, lambda: path.stat().st_size)
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})


def _first_play(request: web.Request) -> bool:
    """True once per signed link: the request that starts from the first byte."""
    try:
        rng = request.http_range
    except ValueError:
        return False  # a malformed Range: answered 416, nothing played
    if rng.start not in (None, 0) or (rng.start is None and rng.stop is not None):
        return False  # a seek or a suffix range: the play was already counted
    seen = request.app[_PLAYED_KEY]
    sig = request.query.get("s", "")
    if sig in seen:
        return False
    seen[sig] = time.time()
    while len(seen) > 50_000:
        seen.popitem(last=False)
    return True


@routes.get(r"/recordings/{rec_id:\d+}/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    row, path = await _allowed(request, user, "stream")
    if not await _exists(path):
        raise web.HTTPNotFound(text=_("The recording's file is gone."))
    await _refuse_empty_suffix(request, path)
    if _first_play(request):
        await runtime(request).service.recording_played(user.username, row.call_id, row.id)
    response = web.FileResponse(path, headers={
        "Content-Type": MEDIA_CONTENT_TYPE, "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-store", "Content-Disposition": "inline",
    })  # fmt: skip
    return response


@routes.get(r"/recordings/{rec_id:\d+}/download")
async def download(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    row, path = await _allowed(request, user, "download")
    if not may_download(runtime(request), user):
        raise web.HTTPForbidden(text=_("Your role may listen to recordings but not download them."))
    if not await _exists(path):
        raise web.HTTPNotFound(text=_("The recording's file is gone."))
    await _refuse_empty_suffix(request, path)
    await runtime(request).service.audit(
        user.username, "recording.downloaded", f"call:{row.call_id}", {"recording": row.id}
    )
    name = f"call-{row.call_id}-recording-{row.id}{path.suffix}"
    return web.FileResponse(path, headers={
        "Content-Type": MEDIA_CONTENT_TYPE, "Cache-Control": "private, no-store",
        "Content-Disposition": f'attachment; filename="{name}"',
    })  # fmt: skip


@routes.get(r"/recordings/{rec_id:\d+}/waveform")
async def waveform(request: web.Request) -> web.StreamResponse:
    """``{"duration", "peaks": [0..1, ...]}``; an empty list when the worker wrote none."""
    user = current_user(request)
    row, path = await _allowed(request, user, "waveform")
    wave = path.parent / waveform_name_for(path.name)

    def read() -> dict[str, object]:
        try:
            data = json.loads(wave.read_text(encoding="utf-8"))
            peaks = [float(p) for p in data.get("peaks", [])][:2000]
            return {"duration": float(data.get("duration") or row.duration_seconds or 0),
                    "peaks": peaks}  # fmt: skip
        except (OSError, ValueError, TypeError, AttributeError):
            return {"duration": row.duration_seconds or 0, "peaks": []}

    body = await asyncio.get_running_loop().run_in_executor(None, read)
    return web.json_response(body, headers={"Cache-Control": "private, no-store"})


def setup(app: web.Application) -> None:
    app[_PLAYED_KEY] = OrderedDict()
    app.router.add_routes(routes)
