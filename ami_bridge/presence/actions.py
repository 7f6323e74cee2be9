"""The AMI side of the board's actions: pause / unpause a queue member (``QueuePause``),
add / remove one (``QueueAdd`` / ``QueueRemove``), and what a refusal means.

Asterisk answers these with ``Response: Error`` and a terse message (recorded from a real
Asterisk 22 in tests/fixtures/asterisk-22/31-queue-add-remove); ``refusal`` turns each
into a sentence a manager can act on.  The same action is never re-sent: a timeout is
reported as "unknown", because the PBX may have done it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

QueueOp = Literal["pause", "unpause", "add", "remove"]


@dataclass(frozen=True, slots=True)
class QueueRequest:
    op: QueueOp
    interface: str
    """The member's interface (``PJSIP/102``), from the dial channel template."""
    queue: str | None
    """None: pause / unpause in every queue the member is in (add / remove need one)."""
    reason: str | None = None
    member_name: str | None = None

    def fields(self) -> dict[str, str]:
        if self.op in ("pause", "unpause"):
            out = {
                "Action": "QueuePause",
                "Interface": self.interface,
                "Paused": "true" if self.op == "pause" else "false",
            }
            if self.queue:
                out["Queue"] = self.queue
            if self.op == "pause" and self.reason:
                out["Reason"] = self.reason
            return out
        if not self.queue:
            raise ValueError(f"{self.op} needs a queue")
        if self.op == "add":
            out = {
                "Action": "QueueAdd",
                "Queue": self.queue,
                "Interface": self.interface,
                "StateInterface": self.interface,
                "Paused": "false",
            }
            if self.member_name:
                out["MemberName"] = self.member_name
            return out
        return {"Action": "QueueRemove", "Queue": self.queue, "Interface": self.interface}


_KNOWN = (
    (
        "member not dynamic",
        "Extension %(ext)s is a member set in the PBX's queue configuration (queues.conf); "
        "only the PBX admin can take them out of %(queue)s.",
    ),
    ("already there", "Extension %(ext)s is already a member of %(queue)s."),
    ("no such queue", "The PBX has no queue named %(queue)s."),
    ("not there", "Extension %(ext)s is not a member of %(queue)s."),
    (
        "interface not found",
        "Extension %(ext)s is not a member of %(queue)s (or the PBX has no such queue).",
    ),
    (
        "permission denied",
        "The CRM's AMI user may not change queues: it needs write=agent in the PBX's manager.conf.",
    ),
)


def refusal(req: QueueRequest, message: str | None, extension: str) -> tuple[str, dict[str, str]]:
    """What to tell the manager when the PBX answered Error with ``message``: an English
    sentence with ``%(name)s`` placeholders (the web layer translates it) and its values."""
    text = (message or "").strip()
    low = text.lower()
    params = {"ext": extension, "queue": req.queue or "*", "pbx": text}
    for needle, sentence in _KNOWN:
        if needle in low:
            return sentence, params
    if text:
        return "The PBX refused: %(pbx)s", params
    return "The PBX refused without saying why.", params
