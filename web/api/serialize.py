"""Domain objects as the API's JSON: times in ISO 8601 UTC, only the fields the OpenAPI
document promises (tests validate every answer against it)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from crm.models import Call, CallbackTask, Contact, User


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return (
        dt.datetime.fromtimestamp(ts, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def me_json(user: User, auth: str | None) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "extensions": list(user.extensions),
        "team_id": user.team_id,
        "auth": auth or "session",
    }


def contact_json(c: Contact) -> dict[str, Any]:
    lead = None
    if c.lead is not None:
        lead = {"status": c.lead.status, "source": c.lead.source,
                "created_at": iso(c.lead.created_at)}  # fmt: skip
    return {
        "id": c.id,
        "name": c.name,
        "company": c.company,
        "email": c.email,
        "owner_id": c.owner_id,
        "tags": list(c.tags),
        "custom": dict(c.custom),
        "phones": [{"raw": p.raw, "e164": p.e164, "label": p.label} for p in c.phones],
        "lead": lead,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "last_contact_at": iso(c.last_contact_at),
    }


# Deliberately alike in shape to callback_json (and contact_json): one explicit line a
# field keeps every name the API promises greppable and type-checked.
def call_json(c: Call) -> dict[str, Any]:
    return {
        "id": c.id,
        "linkedid": c.linkedid,
        "direction": c.direction,
        "caller": c.caller,
        "caller_name": c.caller_name,
        "callee": c.callee,
        "remote_e164": c.remote_e164,
        "did": c.did,
        "rang": list(c.rang),
        "answered": c.answered,
        "answered_by": c.answered_by,
        "final_agent": c.final_agent,
        "outcome": c.outcome,
        "hangup_by": c.hangup_by,
        "started_at": iso(c.started_at),
        "answered_at": iso(c.answered_at),
        "ended_at": iso(c.ended_at),
        "ring_seconds": round(c.ring_seconds, 3),
        "talk_seconds": round(c.talk_seconds, 3),
        "contact_id": c.contact_id,
        "user_id": c.user_id,
        "match_reason": c.match_reason,
        "recording_ids": list(c.recording_ids),
        "originate_id": c.originate_id,
        "queue": c.queue,
        "declined": list(c.declined),
        "transfers": [t.to_json() for t in c.transfers],
        "complete": c.complete,
        "source": c.source,
    }


def callback_json(t: CallbackTask) -> dict[str, Any]:
    return {
        "id": t.id,
        "number_e164": t.number_e164,
        "contact_id": t.contact_id,
        "owner_id": t.owner_id,
        "status": t.status,
        "opened_at": iso(t.opened_at),
        "due_at": iso(t.due_at),
        "closed_at": iso(t.closed_at),
        "closed_by_user_id": t.closed_by_user_id,
        "closed_by_call": t.closed_by_call,
        "time_to_callback": t.time_to_callback,
        "missed_count": t.missed_count,
        "attempts": t.attempts,
        "kind": t.kind,
        "snoozed_until": iso(t.snoozed_until),
        "close_reason": t.close_reason,
    }
