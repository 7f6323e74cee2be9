"""Turn a tracked call into the facts the CRM reads: who called whom, how it ended.

Separate from the event handling so the rules that decide outcomes and figures read in
one place, and change in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from ..facts import CallProgress, CallRecord, Direction, HangupBy, Outcome
from ..numbers import is_withheld
from ..protocol import Message, first
from .model import EXTENSION, LOCAL, TRUNK, Call, Channel, split_channel_name, uniqueid_order

if TYPE_CHECKING:
    from ..profile import PbxProfile
    from .tracker import CallTracker

# Hangup causes (Q.850) that mean "could not be reached", as opposed to "nobody answered".
_FAILED_CAUSES = frozenset({1, 3, 27, 28, 34, 38, 41, 42, 47, 58, 88})
_FAILED_DIAL = frozenset({"CHANUNAVAIL", "CONGESTION", "INVALIDARGS"})
_BUSY_CAUSES = frozenset({17})
_NO_ANSWER_CAUSES = frozenset({18, 19})


class Parties(NamedTuple):
    caller: str | None
    caller_raw: str | None
    caller_name: str | None
    callee: str | None
    did: str | None


def label_of(ch: Channel, call: Call) -> str:
    """How a party is named in a record: a rep by extension, an outside line by number."""
    if ch.kind == EXTENSION and ch.extension:
        return ch.extension
    if ch.kind == TRUNK:
        if ch.dialed:
            return ch.dialled_number or ch.cid_num or ch.resource
        return ch.first_cid_num or ch.cid_num or ch.resource
    return ch.extension or ch.resource


def party_of(ch: Channel, call: Call, profile: PbxProfile) -> str:
    """A party as the record names it: a rep by extension, an outside party in E.164
    (the form every external number takes in a record), else whatever label it has."""
    label = label_of(ch, call)
    if ch.kind == TRUNK:
        return profile.e164(label)
    return label


def number_party(number: str | None, profile: PbxProfile) -> str | None:
    """A dialled number (a blind transfer's target) named as a record names parties."""
    if not number or profile.is_extension(number):
        return number or None
    return profile.e164(number)


def direction_of(tracker: CallTracker, call: Call) -> Direction:
    a = tracker.a_party(call)
    if a is not None and a.kind == TRUNK:
        return "inbound"
    if any(c.kind == TRUNK and c is not a for c in call.channels.values()):
        return "outbound"
    target = call.originate_exten or tracker.callee_number(call)
    if target and not tracker.profile.is_extension(target):
        return "outbound"
    return "internal"


def _parties(tracker: CallTracker, call: Call, direction: Direction) -> Parties:
    profile = tracker.profile
    a = tracker.a_party(call)
    if a is None:
        return Parties(None, None, None, tracker.callee_number(call) or call.originate_exten, None)
    if direction == "inbound":
        raw = a.first_cid_num or a.cid_num
        caller = None if is_withheld(raw) else profile.e164(raw)
        did = a.first_exten if a.first_exten not in ("", "s") else tracker.callee_number(call)
        return Parties(caller, raw or None, a.first_cid_name or a.cid_name or None, did, did)
    caller = a.extension or label_of(a, call)
    callee = tracker.callee_number(call) or call.originate_exten or call.answered_label
    return Parties(
        caller, a.first_cid_num or None, a.first_cid_name or a.cid_name or None, callee, None
    )


def build_progress(tracker: CallTracker, call: Call, at: float) -> CallProgress:
    direction = direction_of(tracker, call)
    parties = _parties(tracker, call, direction)
    ringing = sorted(
        (ch for uid in call.ringing if (ch := tracker.channel(uid)) is not None and ch.extension),
        key=lambda c: (c.ringing_at or 0.0, c.uniqueid),
    )
    return CallProgress(
        linkedid=call.linkedid,
        state="answered" if call.answered_at is not None else "ringing",
        direction=direction,
        caller=parties.caller,
        caller_name=parties.caller_name,
        callee=parties.callee,
        did=parties.did,
        ringing=tuple(dict.fromkeys(c.extension for c in ringing if c.extension)),
        answered_by=call.answered_label,
        at=at,
        originate_id=call.originate_id,
        agent=call.agent if call.answered_at is not None else None,
        handed_on=tuple(
            dict.fromkeys(
                ch.extension
                for uid in sorted(call.handed_on, key=uniqueid_order)
                if (ch := tracker.channel(uid)) is not None and ch.extension
            )
        ),
    )


# Q.850 21 "Call rejected": the phone declined the call (SIP 403/603), often before it
# ever reported ringing.
_DECLINED_CAUSE = 21


def _declined(c: Channel) -> bool:
    return c.dialed and c.up_at is None and c.cause == _DECLINED_CAUSE


def rang_of(call: Call) -> tuple[str, ...]:
    """Extensions whose phones rang, in the order they were dialled (a ring group's order),
    not the order the phones happened to report ringing.  A phone that declined the call
    counts: it was offered the call, and a manager wants to see who turned it down."""
    rung = [
        c
        for c in call.channels.values()
        if c.kind == EXTENSION
        and c.extension
        and (c.ringing_at is not None or (c.dialed and c.up_at) or _declined(c))
    ]
    rung.sort(key=lambda c: (c.dial_begin_at or c.ringing_at or c.up_at or 0.0, c.uniqueid))
    return tuple(dict.fromkeys(c.extension for c in rung if c.extension))


def declined_of(call: Call) -> tuple[str, ...]:
    """Extensions whose phones declined the call (and never took it), in dialling order."""
    legs = [c for c in call.channels.values() if c.kind == EXTENSION and c.extension]
    taken = {c.extension for c in legs if c.up_at is not None}
    out = [c for c in legs if _declined(c) and c.extension not in taken]
    out.sort(key=lambda c: (c.dial_begin_at or c.created_at, c.uniqueid))
    return tuple(dict.fromkeys(c.extension for c in out if c.extension))


def _final_party(tracker: CallTracker, call: Call) -> str | None:
    """Where the call ended: the last rep the conversation reached, or, when a transfer
    sent it out of the PBX, the outside party it ended with (in E.164)."""
    final = call.agents[-1] if call.agents else None
    if not call.transfers:
        return final
    peer = tracker.channel(call.anchor_peer)
    if (
        peer is not None
        and peer.kind == TRUNK
        and peer.uniqueid not in (call.a_party, call.anchor)
        and peer.dialed
    ):
        return party_of(peer, call, tracker.profile)
    return final


def _real_legs(call: Call) -> list[Channel]:
    return [c for c in call.channels.values() if c.dialed and c.kind != LOCAL]


def _outcome(tracker: CallTracker, call: Call, direction: Direction, a: Channel | None) -> Outcome:
    if call.answered_at is not None:
        return "answered"
    legs = _real_legs(call)
    statuses = [c.dial_status for c in legs if c.dial_status]
    cause = a.cause if a is not None else None
    busy = cause in _BUSY_CAUSES or (
        cause not in _NO_ANSWER_CAUSES and bool(statuses) and all(s == "BUSY" for s in statuses)
    )
    if direction == "inbound":
        if call.queue_abandoned:
            return "abandoned"
        if call.caller_hangup_at is not None and (call.caller_hangup_while_ringing or not legs):
            return "abandoned"
        return "busy" if busy else "missed"
    if call.originate_failed and call.originate_reason is not None:
        # The rep's own phone never took the click-to-call, so the customer was never
        # dialled: "no_answer" would read as "the customer did not answer".
        return "busy" if call.originate_reason == 5 else "failed"
    if busy:
        return "busy"
    if call.caller_hangup_at is not None:
        return "no_answer"
    if (statuses and all(s in _FAILED_DIAL for s in statuses)) or cause in _FAILED_CAUSES:
        return "failed"
    return "no_answer"


def _hangup_by(call: Call, outcome: Outcome, a: Channel | None) -> str:
    if call.answered_at is not None:
        return call.hangup_by or "pbx"
    if call.caller_hangup_at is not None:
        return "caller"
    if outcome in ("busy", "failed") and any(c.hangup_request_at for c in _real_legs(call)):
        return "callee"
    return "pbx"


def _ring_seconds(call: Call, a: Channel | None, ended_at: float) -> float:
    start = call.first_dial_at or call.originate_dial_at or call.started_at
    if call.answered_at is not None:
        return max(0.0, call.answered_at - start)
    caller_end = ended_at
    if a is not None:
        caller_end = call.caller_hangup_at or a.hungup_at or ended_at
    legs = _real_legs(call) or [c for c in call.channels.values() if c.dialed]
    ends = [c.dial_end_at or c.hungup_at for c in legs]
    end = caller_end
    if legs and all(e is not None for e in ends):
        end = min(caller_end, max(e for e in ends if e is not None))
    return max(0.0, end - start)


def build_record(tracker: CallTracker, call: Call) -> CallRecord | None:
    a = tracker.a_party(call)
    if a is None and not call.channels:
        return None
    direction = direction_of(tracker, call)
    parties = _parties(tracker, call, direction)
    outcome = _outcome(tracker, call, direction, a)
    ends = [c.hungup_at for c in call.channels.values() if c.hungup_at is not None]
    ended_at = max(ends) if ends else (call.done_at or call.last_event_at)
    # Times come off the wire (or a clock that stepped): whatever they were, a record's
    # own times stay in order and its talk fits inside the call.  Closing a call still
    # in progress (a flush) must not end it before a channel that stayed up answered.
    started_at = call.started_at
    answered_at = call.answered_at
    if answered_at is not None and answered_at < started_at:
        answered_at = started_at
    ended_at = max(ended_at, started_at, answered_at or started_at)
    if not call.complete and call.done_at is not None:
        ended_at = max(ended_at, min(call.done_at, call.last_event_at))
    profile = tracker.profile
    answered_by = call.answered_label
    final_agent = _final_party(tracker, call)
    return CallRecord(
        linkedid=call.linkedid,
        direction=direction,
        caller=parties.caller,
        caller_raw=parties.caller_raw,
        caller_name=parties.caller_name,
        callee=parties.callee,
        callee_e164=profile.callee_e164(parties.callee),
        did=parties.did,
        rang=rang_of(call),
        answered=call.answered_at is not None,
        answered_by=answered_by,
        final_agent=final_agent,
        transfers=tuple(call.transfers),
        outcome=outcome,
        hangup_by=_hangup_by(call, outcome, a),  # type: ignore[arg-type]
        started_at=started_at,
        answered_at=answered_at,
        ended_at=ended_at,
        ring_seconds=min(_ring_seconds(call, a, ended_at), ended_at - started_at),
        talk_seconds=min(call.talk, ended_at - started_at),
        recordings=tuple(call.recordings),
        originate_id=call.originate_id,
        queue=call.queue,
        hangup_cause=a.cause if a is not None else None,
        complete=call.complete,
        uniqueids=tuple(sorted(call.channels)),
        declined=declined_of(call),
    )


def synthetic_failed_originate(
    tracker: CallTracker, msg: Message, action_id: str, reason: int | None, at: float
) -> CallRecord:
    """An Originate that failed before Asterisk made any channel still is a call attempt a
    rep made; without this it would vanish from the records."""
    profile = tracker.profile
    dial = first(msg.get("Channel"))
    _tech, resource, _base = split_channel_name(dial + "-x") if dial else ("", "", "")
    return unconnected_originate(
        profile,
        linkedid=f"originate-{action_id}",
        caller=profile.extension_map.get(resource) or resource or None,
        callee=first(msg.get("Exten")) or None,
        outcome="busy" if reason == 5 else "failed",
        hangup_by="pbx",
        started_at=at,
        ended_at=at,
        originate_id=action_id,
    )


# Alike in shape to the CDR's full CallRecord on purpose: all fields named.
def unconnected_originate(
    profile: PbxProfile,
    *,
    linkedid: str,
    caller: str | None,
    callee: str | None,
    outcome: Outcome,
    hangup_by: HangupBy,
    started_at: float,
    ended_at: float,
    rang: tuple[str, ...] = (),
    ring_seconds: float = 0.0,
    originate_id: str | None = None,
    **rest: Any,
) -> CallRecord:
    """A rep's Originate that never reached anyone (refused, busy, rang out), whether the
    tracker saw it fail or the CDR tells of it: a call to ``callee`` with no conversation
    (``rest``: the record's other fields, as the source knows them)."""
    direction: Direction = "internal" if callee and profile.is_extension(callee) else "outbound"
    return CallRecord(
        linkedid=linkedid,
        direction=direction,
        caller=caller,
        caller_raw=None,
        caller_name=None,
        callee=callee,
        callee_e164=profile.callee_e164(callee),
        did=None,
        rang=rang,
        answered=False,
        answered_by=None,
        final_agent=None,
        transfers=(),
        outcome=outcome,
        hangup_by=hangup_by,
        started_at=started_at,
        answered_at=None,
        ended_at=ended_at,
        ring_seconds=ring_seconds,
        talk_seconds=0.0,
        recordings=(),
        originate_id=originate_id,
        **rest,
    )
