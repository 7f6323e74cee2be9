"""What the player partial shows for a call's recordings, and the signed links it uses.

A link names the recording, the user it was made for and when it expires, signed with a
key derived from the runtime's secret: it cannot be guessed, and it is useless to anybody
else (the stream handler also requires that the logged-in user is the one in the link and
re-checks their access to the call on every request).  The signature also names the action
(stream, download, waveform), so a player link cannot be turned into a download.  File
paths never appear in links; the handler takes the file from the catalogue's
``media_path``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from crm.models import Call, RecordingRow, User

from .app import current_user, runtime
from .i18n import N_, _
from .runtime import Runtime, resolve_path

LINK_TTL = 2 * 3600.0
ACTIONS = ("stream", "download", "waveform")
DEFAULT_DOWNLOAD_ROLES = ("manager", "admin")


@dataclass(frozen=True, slots=True)
class SignedLink:
    rec_id: int
    user_id: int
    expires: int
    sigs: tuple[tuple[str, str], ...]
    """(action, signature) for each action; a signature is good for its action only."""

    @property
    def sig(self) -> str:
        """The stream link's signature."""
        return dict(self.sigs)["stream"]

    def url(self, action: str) -> str:
        query = urlencode({"u": self.user_id, "e": self.expires, "s": dict(self.sigs)[action]})
        return f"/recordings/{self.rec_id}/{action}?{query}"


# Deliberately alike in shape to recordings/probe.py's ProbeResult (a frozen dataclass with
# a status, a size and a property): the page's view of a recording, not the probe's.
@dataclass(frozen=True, slots=True)
class PlayerItem:
    """One recording of a call, as the ``_player.html`` partial shows it."""

    id: int
    status: str
    """``ready`` (playable), ``pending``, ``missing``, ``corrupt`` or ``deleted``."""
    duration: float | None
    size_bytes: int | None
    message: str
    """Why it cannot be played, in words (empty when ready)."""
    stream_url: str | None = None
    waveform_url: str | None = None
    download_url: str | None = None

    @property
    def playable(self) -> bool:
        return self.stream_url is not None


def _link_key(rt: Runtime) -> bytes:
    """A key only for recording links, derived from the runtime's secret (so a link's MAC
    can never be mistaken for a session or CSRF token)."""
    return rt.signer.derive(b"crm recording links v1")


def _mac(key: bytes, action: str, rec_id: int, user_id: int, expires: int) -> str:
    msg = f"{action}:{rec_id}:{user_id}:{expires}".encode()
    digest = hmac.new(key, msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(rt: Runtime, rec_id: int, user_id: int, now: float | None = None,
         ttl: float | None = None) -> SignedLink:  # fmt: skip
    now = time.time() if now is None else now
    ttl = link_ttl(rt) if ttl is None else ttl
    expires = int(now + ttl)
    key = _link_key(rt)
    sigs = tuple((a, _mac(key, a, rec_id, user_id, expires)) for a in ACTIONS)
    return SignedLink(rec_id, user_id, expires, sigs)


def verify(rt: Runtime, rec_id: int, user_id: int, query: Any, action: str,
           now: float | None = None) -> SignedLink | None:  # fmt: skip
    """The link in ``query`` if it is genuine, made for ``action`` and ``user_id``, and not
    expired."""
    try:
        link_user, expires, sig = int(query.get("u", "")), int(query.get("e", "")), query["s"]
    except (KeyError, ValueError):
        return None
    now = time.time() if now is None else now
    if link_user != user_id or expires < now or not isinstance(sig, str):
        return None
    if action not in ACTIONS:
        return None
    expected = _mac(_link_key(rt), action, rec_id, user_id, expires)
    if not hmac.compare_digest(expected, sig):
        return None
    return SignedLink(rec_id, user_id, expires, ((action, sig),))


def link_ttl(rt: Runtime) -> float:
    return float(rt.settings.get("recordings", {}).get("link_ttl_seconds", LINK_TTL))


def media_dir(rt: Runtime) -> Path:
    """Where the recordings worker writes transcoded files (``[recordings] media_dir``)."""
    return resolve_path(str(rt.settings.get("recordings", {}).get("media_dir", "var/media")))


def may_download(rt: Runtime, user: User) -> bool:
    allowed = rt.settings.get("recordings", {}).get("download_roles", DEFAULT_DOWNLOAD_ROLES)
    return user.role in tuple(allowed)


_MESSAGES = {
    "pending": N_("The recording is being prepared; reload in a minute."),
    "missing": N_("The recording file was not found on the PBX."),
    "corrupt": N_("The recording file is damaged and cannot be played."),
    "deleted": N_("The recording was deleted (retention period)."),
}


def _item(rt: Runtime, user: User, row: RecordingRow, now: float) -> PlayerItem:
    if row.status != "ready" or not row.media_path or user.id is None:
        message = _(_MESSAGES.get(row.status, N_("The recording cannot be played.")))
        if row.status == "ready":
            message = _(_MESSAGES["missing"])
        return PlayerItem(row.id, row.status if row.status != "ready" else "missing",
                          row.duration_seconds, row.size_bytes, message)  # fmt: skip
    link = sign(rt, row.id, user.id, now)
    return PlayerItem(
        row.id, "ready", row.duration_seconds, row.size_bytes, "",
        stream_url=link.url("stream"), waveform_url=link.url("waveform"),
        download_url=link.url("download") if may_download(rt, user) else None,
    )  # fmt: skip


async def player_items(request: web.Request, call: Call) -> list[PlayerItem]:
    """The recordings of ``call`` for the logged-in user, with links only when that user
    may hear the call (the page showing it should already have checked; this checks
    again so a partial can never leak a link)."""
    rt = runtime(request)
    user = current_user(request)
    if call.id is None:
        return []
    scope = await rt.service.scope_for(user)
    if not await rt.service.can_see_call(scope, call):
        return []
    rows = await rt.service.recordings_for_call(call.id)
    now = time.time()
    return [_item(rt, user, row, now) for row in rows]
