"""The call facts the bridge hands to the CRM: the one boundary between Asterisk and the domain.

These are plain, frozen dataclasses so the CRM (and tests) never need to know what an AMI
event looked like.  Times are POSIX seconds (UTC); ``None`` means "did not happen".
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Direction = Literal["inbound", "outbound", "internal"]
Outcome = Literal["answered", "missed", "abandoned", "busy", "no_answer", "failed"]
Source = Literal["ami", "cdr"]
HangupBy = Literal["caller", "callee", "pbx"]


def iso_utc(ts: float | None) -> str | None:
    """ISO 8601 in UTC with milliseconds, the form the replay contract promises."""
    if ts is None:
        return None
    moment = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Transfer:
    """One transfer inside a call: who handed the caller on, to whom."""

    kind: Literal["blind", "attended"]
    from_: str | None
    to: str | None
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "from": self.from_, "to": self.to, "at": iso_utc(self.at)}


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A finished call, exactly one per Linkedid group (merged groups keep the oldest id).

    ``caller`` is E.164 for an outside number and the bare extension for a rep
    (``caller_raw`` keeps what the PBX sent); ``callee`` is what was dialled, as dialled
    (the DID for inbound calls), with ``callee_e164`` for matching.  ``complete`` is
    False when the bridge did not see the whole call (attached mid-call, or the link was
    down when it ended) so the CRM can flag the figures.  ``source`` says where the facts
    came from: ``ami`` (the tracker, live) or ``cdr`` (the PBX's own CDR, for a call no
    link saw; ``ami_bridge.cdr``).
    """

    linkedid: str
    direction: Direction
    caller: str | None
    caller_raw: str | None
    caller_name: str | None
    callee: str | None
    callee_e164: str | None
    did: str | None
    rang: tuple[str, ...]
    answered: bool
    answered_by: str | None
    final_agent: str | None
    transfers: tuple[Transfer, ...]
    outcome: Outcome
    hangup_by: HangupBy | None
    started_at: float
    answered_at: float | None
    ended_at: float
    ring_seconds: float
    talk_seconds: float
    recordings: tuple[str, ...]
    originate_id: str | None
    queue: str | None = None
    hangup_cause: int | None = None
    complete: bool = True
    uniqueids: tuple[str, ...] = field(default=())
    declined: tuple[str, ...] = field(default=())
    """Extensions (also in ``rang``) whose phones declined the call (SIP 403/603)."""
    source: Source = "ami"

    def to_json(self) -> dict[str, Any]:
        """The replay contract's JSON object (times as ISO 8601 UTC strings)."""
        data = asdict(self)
        data["transfers"] = [t.to_json() for t in self.transfers]
        data["rang"] = list(self.rang)
        data["recordings"] = list(self.recordings)
        data["uniqueids"] = list(self.uniqueids)
        data["declined"] = list(self.declined)
        for key in ("started_at", "answered_at", "ended_at"):
            data[key] = iso_utc(getattr(self, key))
        data["ring_seconds"] = round(self.ring_seconds, 3)
        data["talk_seconds"] = round(self.talk_seconds, 3)
        return data


@dataclass(frozen=True, slots=True)
class CallProgress:
    """A live call changed: who is ringing now, whether it was answered.

    Emitted on every change that a screen pop or a live list cares about; ``state`` is the
    call's state after the change.  ``ringing`` lists the extensions whose phones ring now,
    also after the answer: a transfer offering the call on rings its target.
    """

    linkedid: str
    state: Literal["ringing", "answered", "ended"]
    direction: Direction
    caller: str | None
    caller_name: str | None
    callee: str | None
    did: str | None
    ringing: tuple[str, ...]
    answered_by: str | None
    at: float
    originate_id: str | None = None
    agent: str | None = None
    """The rep the caller is with now: who answered, then whom a transfer handed the call
    to.  None before the answer, while a transfer rings its target (``ringing`` names it:
    a call is offered on after it was answered) and once it went to an outside number."""
    handed_on: tuple[str, ...] = ()
    """Reps who transferred the call away: it left them.  With no ``agent`` and nobody
    here, whoever answered still has the call (a producer that does not say)."""
    received_at: float | None = None
    """Wall time the live link read the event behind this change (None when not from a
    live link): where the screen-pop latency figure starts."""


@dataclass(frozen=True, slots=True)
class OriginateResult:
    """What became of a click-to-call Originate, keyed by the ActionID we sent."""

    action_id: str
    success: bool
    reason: int | None
    reason_text: str
    channel: str | None
    uniqueid: str | None
    at: float


@dataclass(frozen=True, slots=True)
class PbxIncompatible:
    """The PBX is too old for this bridge: Asterisk before 13 (AMI 1.x) has no Linkedid
    and reports calls with ``Dial``/``Bridge``/``Masquerade`` events, which would make
    several wrong records per call.  The bridge says so once and records nothing more.

    ``found`` names what was seen (``AMI 1.3``, ``Dial events``); ``needed`` the version
    that works.
    """

    found: str
    needed: str
    at: float

    @property
    def message(self) -> str:
        return (
            f"The PBX is too old: it runs Asterisk before 13 ({self.found}). "
            f"This CRM needs {self.needed}; no calls are recorded from this PBX."
        )


Fact = CallRecord | CallProgress | OriginateResult | PbxIncompatible
