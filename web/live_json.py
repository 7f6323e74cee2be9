"""The JSON shaping of calls and callbacks for the browser (``web.live``): plain
values only (epoch seconds plus ISO strings), never internal objects, and a contact
reduced to what a viewer may see of it."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from ami_bridge.facts import iso_utc
from crm.models import Call, CallbackTask


def jsonable(value: Any) -> Any:
    """Dataclasses, tuples, sets and dicts as JSON-ready values (epoch floats stay
    numbers); anything else that JSON cannot hold becomes its ``str``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_json = getattr(value, "to_json", None)
        if callable(to_json):
            return jsonable(to_json())
        return {
            f.name.rstrip("_"): jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    return str(value)


def remote_number(direction: str, caller: str | None, callee: str | None) -> str | None:
    """The outside party of a call (inbound: who called; otherwise who was dialled)."""
    return caller if direction == "inbound" else callee


def call_json(call: Call) -> dict[str, Any]:
    """A finished call as the live lists need it."""
    number = call.remote_e164 or remote_number(call.direction, call.caller, call.callee)
    return {
        "id": call.id,
        "url": f"/calls/{call.id}",
        "linkedid": call.linkedid,
        "direction": call.direction,
        "number": number,
        "caller": call.caller,
        "callee": call.callee,
        "did": call.did,
        "outcome": call.outcome,
        "answered": call.answered,
        "answered_by": call.answered_by,
        "rang": list(call.rang),
        "user_id": call.user_id,
        "contact_id": call.contact_id,
        "started_at": call.started_at,
        "started_iso": iso_utc(call.started_at),
        "ended_at": call.ended_at,
        "talk_seconds": call.talk_seconds,
        "ring_seconds": call.ring_seconds,
    }


def task_json(task: CallbackTask, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {
        "id": task.id,
        "number": task.number_e164,
        "contact_id": task.contact_id,
        "owner_id": task.owner_id,
        "status": task.status,
        "opened_at": task.opened_at,
        "due_at": task.due_at,
        "due_iso": iso_utc(task.due_at),
        "overdue": task.status == "open" and task.due_at < now,
        "missed_count": task.missed_count,
        "closed_at": task.closed_at,
    }


def _hidden_contact(other_rep: bool) -> dict[str, Any]:
    """The contact as a viewer who may not see it gets it: no id, name or company.
    ``other_rep``: the number is a known contact someone else owns; False: not known yet
    (the details are still being looked up)."""
    return {"id": None, "name": "", "url": None, "company": "", "owner_id": None,
            "owner": None, "is_lead": False, "lead_status": None, "other_rep": other_rep,
            "pending": not other_rep}  # fmt: skip


def _bare_contact(contact_id: int | None, name: str | None) -> dict[str, Any] | None:
    """The contact as the ingest named it, before (or without) the details."""
    if contact_id is None:
        return None
    return {
        "id": contact_id,
        "name": name or "",
        "url": f"/contacts/{contact_id}",
        "company": "",
        "owner_id": None,
        "owner": None,
        "is_lead": False,
        "lead_status": None,
    }
