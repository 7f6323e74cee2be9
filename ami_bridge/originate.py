"""The AMI side of click-to-call: an Originate request and what became of it.

The CRM asks for a call with an ``OriginateRequest``; the link sends it once as an
``Async`` Originate and turns the ``OriginateResponse`` event (or the link dropping
first) into a ``facts.OriginateResult``.  The request's ``action_id`` is both the AMI
ActionID and the value of the correlation channel variable, so the tracker can tie the
call record to the click, even for a failure whose ``Uniqueid`` is ``<unknown>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .facts import OriginateResult
from .protocol import Message, first

LINK_DOWN = "PBX link down"

# Asterisk's originate "Reason" is the last control frame the dialled channel sent.
REASONS: dict[int, str] = {
    0: "failed (no such device, or it is unavailable)",
    1: "hung up",
    3: "rang, no answer",
    4: "answered",
    5: "busy",
    8: "congestion",
}


def _check_text(name: str, value: str, *, required: bool = False) -> None:
    if required and not value.strip():
        raise ValueError(f"{name} must not be empty")
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} must not contain a line break")


# Alike in shape to crm.models.RecordingRow: both plain records, not one thing.
@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """One click-to-call: ring ``channel`` (the rep's phone), then dial ``exten`` in ``context``.

    Validated on creation, because a CR/LF in any value would let a user inject AMI
    headers (or whole actions) into the PBX session.
    """

    action_id: str
    channel: str
    exten: str
    context: str = "from-internal"
    caller_id: str | None = None
    account: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    timeout_ms: int = 30000
    priority: int = 1
    correlation_var: str = "CRM_CALL_ID"

    def __post_init__(self) -> None:
        _check_text("action_id", self.action_id, required=True)
        if any(c.isspace() for c in self.action_id):
            raise ValueError("action_id must not contain spaces")
        _check_text("channel", self.channel, required=True)
        if "/" not in self.channel:
            raise ValueError("channel must be a dial string like PJSIP/103")
        _check_text("exten", self.exten, required=True)
        _check_text("context", self.context, required=True)
        _check_text("caller_id", self.caller_id or "")
        _check_text("account", self.account or "")
        _check_text("correlation_var", self.correlation_var, required=True)
        for key, value in self.variables.items():
            _check_text("variable name", key, required=True)
            if "=" in key:
                raise ValueError("a variable name must not contain '='")
            _check_text(f"variable {key}", str(value))
        if isinstance(self.timeout_ms, bool) or not isinstance(self.timeout_ms, int):
            raise ValueError("timeout_ms must be an integer")
        if self.timeout_ms <= 0:
            raise ValueError("timeout_ms must be positive")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ValueError("priority must be an integer")

    def to_fields(self) -> dict[str, object]:
        """The headers of ``Action: Originate``; booleans go as the strings AMI expects."""
        variables = [f"{k}={v}" for k, v in self.variables.items() if k != self.correlation_var]
        variables.append(f"{self.correlation_var}={self.action_id}")
        fields: dict[str, object] = {
            "Action": "Originate",
            "ActionID": self.action_id,
            "Channel": self.channel,
            "Context": self.context,
            "Exten": self.exten,
            "Priority": str(self.priority),
        }
        if self.caller_id:
            fields["CallerID"] = self.caller_id
        fields["Timeout"] = str(self.timeout_ms)
        if self.account:
            fields["Account"] = self.account
        fields["Variable"] = variables
        fields["Async"] = "true"
        return fields


def _reason(msg: Message) -> int | None:
    try:
        return int(first(msg.get("Reason")))
    except ValueError:
        return None


def _known(value: str) -> str | None:
    return value if value and value != "<unknown>" else None


def result_from_event(action_id: str, event: Message, at: float) -> OriginateResult:
    """An ``OriginateResponse`` event as a result."""
    success = first(event.get("Response")) == "Success"
    reason = _reason(event)
    text = REASONS.get(reason, f"reason {reason}") if reason is not None else "unknown"
    return OriginateResult(
        action_id=action_id,
        success=success,
        reason=reason,
        reason_text=text,
        channel=_known(first(event.get("Channel"))),
        uniqueid=_known(first(event.get("Uniqueid"))),
        at=at,
    )


def result_from_error(action_id: str, response: Message, at: float) -> OriginateResult:
    """The PBX refused the action itself (``Response: Error``: permission, bad channel)."""
    message = first(response.get("Message")) or "Originate refused by the PBX"
    return OriginateResult(action_id, False, None, message, None, None, at)


def failure(action_id: str, text: str, at: float) -> OriginateResult:
    """A failure the PBX never reported: the link dropped, or no answer came in time."""
    return OriginateResult(action_id, False, None, text, None, None, at)
