"""CallRecords built by hand, the way the tracker will emit them."""

from __future__ import annotations

import itertools
from typing import Any

from ami_bridge.facts import CallRecord

T0 = 1_795_341_294.0  # 2026-11-22 09:54:54 UTC, the fixtures' day
_seq = itertools.count(1)


def inbound(
    caller: str | None = "+14155550199",
    *,
    answered_by: str | None = "101",
    outcome: str | None = None,
    at: float = T0,
    linkedid: str | None = None,
    did: str = "5551000",
    **extra: Any,
) -> CallRecord:
    answered = answered_by is not None
    fields: dict[str, Any] = dict(
        linkedid=linkedid or f"{at:.0f}.{next(_seq)}",
        direction="inbound",
        caller=caller,
        caller_raw=caller,
        caller_name=None,
        callee=did,
        callee_e164=None,
        did=did,
        rang=("101", "102"),
        answered=answered,
        answered_by=answered_by,
        final_agent=answered_by,
        transfers=(),
        outcome=outcome or ("answered" if answered else "missed"),
        hangup_by="caller" if answered else "pbx",
        started_at=at,
        answered_at=at + 4 if answered else None,
        ended_at=at + 12 if answered else at + 15,
        ring_seconds=4.0 if answered else 15.0,
        talk_seconds=8.0 if answered else 0.0,
        recordings=(f"/var/spool/asterisk/monitor/in_{caller}_{at:.0f}.wav",) if answered else (),
        originate_id=None,
    )
    fields.update(extra)
    return CallRecord(**fields)


def outbound(
    callee: str = "4155550123",
    callee_e164: str | None = "+14155550123",
    *,
    caller: str = "101",
    answered: bool = True,
    at: float = T0,
    linkedid: str | None = None,
    **extra: Any,
) -> CallRecord:
    fields: dict[str, Any] = dict(
        linkedid=linkedid or f"{at:.0f}.{next(_seq)}",
        direction="outbound",
        caller=caller,
        caller_raw=caller,
        caller_name="Alice Adams",
        callee=callee,
        callee_e164=callee_e164,
        did=None,
        rang=(),
        answered=answered,
        answered_by=None,
        final_agent=None,
        transfers=(),
        outcome="answered" if answered else "no_answer",
        hangup_by="caller",
        started_at=at,
        answered_at=at + 3 if answered else None,
        ended_at=at + 8,
        ring_seconds=3.0,
        talk_seconds=5.0 if answered else 0.0,
        recordings=(f"/var/spool/asterisk/monitor/out_{callee}_{at:.0f}.wav",) if answered else (),
        originate_id=None,
    )
    fields.update(extra)
    return CallRecord(**fields)


def internal(caller: str = "101", callee: str = "102", at: float = T0) -> CallRecord:
    return CallRecord(
        linkedid=f"{at:.0f}.{next(_seq)}",
        direction="internal",
        caller=caller,
        caller_raw=caller,
        caller_name="Alice Adams",
        callee=callee,
        callee_e164=None,
        did=None,
        rang=(callee,),
        answered=True,
        answered_by=callee,
        final_agent=callee,
        transfers=(),
        outcome="answered",
        hangup_by="caller",
        started_at=at,
        answered_at=at + 3,
        ended_at=at + 13,
        ring_seconds=3.0,
        talk_seconds=10.0,
        recordings=(),
        originate_id=None,
    )
