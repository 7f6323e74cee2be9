"""What a screen pop or a live row says to one viewer (``web.live``): the call's JSON
shared by every viewer, narrowed to what each may see, encoded and rendered once per
version of the call for all who see the same thing."""

from __future__ import annotations

import logging
import time
from typing import Any

import jinja2

from ami_bridge.facts import iso_utc

from . import i18n
from .live_details import CallerDetails
from .live_json import _bare_contact, _hidden_contact, remote_number
from .live_state import LiveState
from .live_streams import Viewer, message_line
from .render import format_number

log = logging.getLogger(__name__)


class CallDisplay:
    """The messages and rows of the calls in progress, per viewer, for one hub."""

    def __init__(self, env: jinja2.Environment | None, region: str, details: CallerDetails) -> None:
        self.env = env
        self.region = region
        self.details = details
        self._templates: dict[str, tuple[float, jinja2.Template]] = {}

    def shared(self, st: LiveState) -> dict[str, Any]:
        cached = st.cache.get("json")
        if cached is None:
            cached = st.cache["json"] = self._build_shared(st)
        return cached

    def view_json(self, viewer: Viewer, st: LiveState, can_open: bool) -> dict[str, Any]:
        """The call as ``viewer`` may see it: the contact only when they may open it (an
        admin, its owner's scope, or shared), the last call only when it was theirs to
        see, the open callback only when they may see it."""
        data = self.shared(st)
        if viewer.scope.unrestricted:
            return data
        contact = data["contact"]
        if contact is not None and not can_open:
            visible = self._visible_before_details(viewer, st)
            if visible is not True:
                contact = _hidden_contact(other_rep=st.info is not None or visible is False)
        last = data["last_call"]
        rep_id = last.get("rep_id") if last is not None else None
        if last is not None and not (
            viewer.scope.covers(rep_id) or (rep_id is None and (st.contact_id is None or can_open))
        ):
            last = None  # fmt: skip
        callback = data["open_callback"]
        if callback is not None and not (
            callback.get("owner_id") is None or viewer.scope.covers(callback.get("owner_id"))
        ):
            callback = None  # fmt: skip
        if (contact, last, callback) == (data["contact"], data["last_call"],
                                         data["open_callback"]):  # fmt: skip
            return data
        return {**data, "contact": contact, "last_call": last, "open_callback": callback}

    def _visible_before_details(self, viewer: Viewer, st: LiveState) -> bool | None:
        """Before the details arrive: whether the contact the ingest named is the
        viewer's to see, from the contact cache (None: not known yet)."""
        if st.info is not None or st.contact_id is None:
            return None
        cached = self.details.contacts.get(st.contact_id)
        if cached is None or cached[1] is None:
            return None
        owner = cached[1].owner_id
        return owner is None or viewer.scope.covers(owner)

    def _build_shared(self, st: LiveState) -> dict[str, Any]:
        p = st.progress
        number = remote_number(p.direction, p.caller, p.callee)
        if p.direction == "internal":
            number = p.caller
        caller_user = self.details.by_ext.get(p.caller or "") if p.caller else None
        answered_user = self.details.by_ext.get(p.answered_by or "") if p.answered_by else None
        info = st.info or {}
        data: dict[str, Any] = {
            "linkedid": st.linkedid,
            "state": p.state,
            "direction": p.direction,
            "number": number,
            "number_display": format_number(number, self.region),
            "caller": p.caller,
            "caller_name": p.caller_name,
            "caller_user": caller_user.display_name if caller_user else None,
            "callee": p.callee,
            "did": p.did,
            "ringing": list(p.ringing),
            "rung": sorted(st.rung),
            "answered_by": p.answered_by,
            "answered_by_name": answered_user.display_name if answered_user else None,
            "at": p.at,
            "at_iso": iso_utc(p.at),
            "started_at": st.started_at,
            "started_iso": iso_utc(st.started_at),
            "answered_at": st.answered_at,
            "originate_id": p.originate_id,
            "match_reason": st.match_reason,
            "contact": info.get("contact") or _bare_contact(st.contact_id, st.contact_name),
            "last_call": info.get("last_call"),
            "open_callback": info.get("open_callback"),
            "details": st.info is not None,
        }
        return data

    @staticmethod
    def can_open(viewer: Viewer, st: LiveState) -> bool:
        """Whether the viewer may open the caller's contact card (the pop and the row
        link to it only then)."""
        if st.contact_id is None:
            return False
        if viewer.scope.unrestricted:
            return True
        contact = (st.info or {}).get("contact")
        if not contact:
            return False
        owner = contact.get("owner_id")
        return owner is None or viewer.scope.covers(owner)

    def line(
        self, viewer: Viewer, st: LiveState, me: str | None, pop: str | None, listed: bool
    ) -> str:
        can_open = self.can_open(viewer, st)
        view = self.view_json(viewer, st, can_open)
        shared = self.shared(st)
        contact = view["contact"]
        # Everything a viewer's message depends on: connections that agree on it get the
        # same line, encoded once per version of the call (the cache clears on a change);
        # not their language: the browser words the row itself.
        key = ("line", me, pop, listed, can_open, contact is shared["contact"],
               (contact or {}).get("other_rep"), view["last_call"] is None,
               view["open_callback"] is None)  # fmt: skip
        line = st.cache.get(key)
        if line is None:
            data = {**view, "me": me, "pop": pop, "listed": listed}
            data["can_open"] = can_open
            # No row HTML: the browser builds the live list's row from these fields
            # (web/static/live.js), as _live_row.html renders it on page load.  A call
            # changes several times a second; rendering the row for every change took a
            # third of the event loop at 300 calls/s.
            line = st.cache[key] = message_line("call_progress", data)
        return line

    def render(self, name: str, locale: tuple[str, str, str] | None = None, **ctx: Any) -> str:
        """A row in one viewer's language, time zone and region (``Viewer.locale``)."""
        if self.env is None:
            return ""
        try:
            template = self._template(name)
            if locale is None:
                return template.render(ctx)
            with i18n.using(*locale):
                return template.render(ctx)
        except jinja2.TemplateError:
            log.exception("live: could not render %s", name)
            return ""

    def _template(self, name: str) -> jinja2.Template:
        """The template, asked of the environment at most once a second: asking checks
        the file's time on disk (so an edited template shows), once per row rendered."""
        assert self.env is not None
        now = time.monotonic()
        cached = self._templates.get(name)
        if cached is None or cached[0] < now:
            cached = self._templates[name] = (now + 1.0, self.env.get_template(name))
        return cached[1]
