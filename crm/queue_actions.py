"""The board's actions on queue members: pause / unpause (with a reason), add / remove.

The same care as click-to-call (``crm.clicktocall``): a manager acts only on their own
team's extensions (an admin on anyone's); every request is audited before it is sent (no
audit entry, no action); it goes to the PBX once (a double click while the first is in
flight is answered "already in progress", and nothing is ever re-sent after a timeout or
a dropped link); a refusal comes back as a sentence the manager can act on
(``ami_bridge.presence.actions.refusal``), and is audited too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ami_bridge.presence.actions import QueueOp, QueueRequest, refusal

from .access import Scope
from .models import AuditEntry, User
from .store import Store

log = logging.getLogger(__name__)

ACTION_TIMEOUT = 8.0
REASON_MAX = 80
_QUEUE_RE = re.compile(r"[A-Za-z0-9_.-]{1,80}")
_EXT_RE = re.compile(r"[0-9A-Za-z_.-]{1,32}")


class ActionLink(Protocol):
    async def send_action(self, fields: dict[str, Any], timeout: float = ...) -> Any: ...


@dataclass(frozen=True, slots=True)
class QueueActionResult:
    ok: bool
    text: str
    """A sentence for the manager (what was done, or why not), in English with
    ``%(name)s`` placeholders: the web layer translates it, then fills in ``params``."""
    status: int = 200
    """The HTTP status a page or API answers with."""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.text % self.params if self.params else self.text


class QueueActions:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], float],
        link_for: Callable[[str | None], ActionLink | None],
        channel_template: str = "PJSIP/{ext}",
    ) -> None:
        self.store = store
        self.clock = clock
        self.link_for = link_for
        """The link a board row came from (its name; None: the only / first link)."""
        self.channel_template = channel_template
        self._in_flight: set[tuple[str, str, str | None]] = set()

    async def run(
        self,
        actor: User,
        scope: Scope,
        team_extensions: frozenset[str] | None,
        op: QueueOp,
        extension: str,
        queue: str | None,
        reason: str | None = None,
        link: str | None = None,
        member_name: str | None = None,
    ) -> QueueActionResult:
        """Check, audit, send once, and say what happened."""
        extension = (extension or "").strip()
        queue = (queue or "").strip() or None
        reason = (reason or "").strip()[:REASON_MAX] or None
        params = {"ext": extension, "queue": queue or "*", "reason": reason or ""}

        def no(text: str, status: int) -> QueueActionResult:
            return QueueActionResult(False, text, status, params)

        if actor.role not in ("manager", "admin"):
            return no("Only managers and admins change queues.", 403)
        if not _EXT_RE.fullmatch(extension):
            return no("Choose an extension.", 400)
        if queue is not None and not _QUEUE_RE.fullmatch(queue):
            return no("That is not a queue name.", 400)
        if op in ("add", "remove") and queue is None:
            return no("Choose the queue.", 400)
        if team_extensions is not None and extension not in team_extensions:
            return no("Extension %(ext)s is not on your team; ask its manager.", 403)
        key = (op if op in ("add", "remove") else "pause", extension, queue)
        if key in self._in_flight:
            return no("That change is already on its way to the PBX.", 409)
        link_obj = self.link_for(link)
        if link_obj is None:
            return no("The PBX link is down; nothing was changed.", 503)
        interface = self.channel_template.format(ext=extension)
        req = QueueRequest(op, interface, queue, reason, member_name)
        self._in_flight.add(key)
        try:
            # no audit entry, no action: the log holds every attempt
            detail = {"extension": extension, "queue": queue, "reason": reason, "link": link}
            entry = AuditEntry(
                None, self.clock(), actor.username, f"queue.{op}", _target(extension, queue), detail
            )
            await self.store.append_audit(entry)
            try:
                resp = await link_obj.send_action(req.fields(), timeout=ACTION_TIMEOUT)
            except TimeoutError:
                text = (
                    "The PBX did not answer in time; the change may or may not have been "
                    "made (the board shows what the PBX did)."
                )
                return await self._refused(actor, op, QueueActionResult(False, text, 504, params))
            except (ConnectionError, OSError):
                text = "The PBX link went down; nothing was sent."
                return await self._refused(actor, op, QueueActionResult(False, text, 503, params))
            head = resp[0] if isinstance(resp, list) and resp else resp
            if str(_get(head, "Response") or "").lower() != "success":
                text, why = refusal(req, str(_get(head, "Message") or ""), extension)
                return await self._refused(actor, op, QueueActionResult(False, text, 409, why))
            return QueueActionResult(True, _DONE[op][bool(queue)], 200, params)
        finally:
            self._in_flight.discard(key)

    async def _refused(self, actor: User, op: str, result: QueueActionResult) -> QueueActionResult:
        try:
            entry = AuditEntry(
                None,
                self.clock(),
                actor.username,
                "queue.refused",
                _target(result.params.get("ext", ""), result.params.get("queue")),
                {"op": op, "why": result.message},
            )
            await self.store.append_audit(entry)
        except Exception:
            log.exception("could not audit a refused queue action")
        return result


_DONE = {
    "pause": ("Extension %(ext)s paused in every queue.", "Extension %(ext)s paused in %(queue)s."),
    "unpause": (
        "Extension %(ext)s is back in every queue.",
        "Extension %(ext)s is back in %(queue)s.",
    ),
    "add": ("", "Extension %(ext)s added to %(queue)s."),
    "remove": ("", "Extension %(ext)s removed from %(queue)s."),
}


def _target(extension: str, queue: str | None) -> str:
    return f"{queue if queue and queue != '*' else '*'}/{extension}"


def _get(msg: Any, key: str) -> Any:
    try:
        value = msg.get(key)
    except AttributeError:
        return None
    return value[0] if isinstance(value, list) else value
