"""Missed calls become callback tasks, and answered calls close them.

One open task per number: a caller who tries five times before anyone rings back is one
task with ``missed_count`` 5, not five tasks.  A task nobody owns (no contact owner, no
default owner) goes to one of the reps the call rang, the one with the fewest open
callbacks, so it never sits in everyone's list.  Links between tasks and calls are stored,
so ingesting the same call again (replay, resync) never counts it twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .models import MISSED_OUTCOMES, Call, CallbackTask
from .policy import LeadPolicy
from .store import Store


@dataclass(frozen=True, slots=True)
class CallbackChange:
    kind: Literal["opened", "joined", "closed"]
    task: CallbackTask


def _missed(call: Call) -> bool:
    return call.direction == "inbound" and not call.answered and call.outcome in MISSED_OUTCOMES


async def apply_call(
    tx: Store,
    call: Call,
    policy: LeadPolicy,
    contact_owner_id: int | None,
    *,
    new: bool = False,
    later: Sequence[int] = (),
    none_open: bool = False,
) -> CallbackChange | None:
    """Open, join or close the callback task this call affects (inside ``tx``).
    ``new``: the call's row was just made, so no task has it yet.  ``later``: calls
    written in the same batch that come after this one (not seen yet, as one by one).
    ``none_open``: the caller knows the number has no open task (a batch's lookup)."""
    if call.id is None or not call.remote_e164 or policy.is_own_number(call.remote_e164):
        return None
    if _missed(call):
        return await _register_miss(tx, call, policy, contact_owner_id, new, later, none_open)
    if call.answered and call.direction in ("inbound", "outbound") and not none_open:
        return await _close_by(tx, call)
    return None


async def _register_miss(
    tx: Store,
    call: Call,
    policy: LeadPolicy,
    contact_owner_id: int | None,
    new: bool,
    later: Sequence[int],
    none_open: bool,
) -> CallbackChange | None:
    assert call.id is not None and call.remote_e164 is not None
    if not new and await tx.callback_for_call(call.id) is not None:
        return None  # seen before
    task = None if none_open else await tx.open_callback_for_number(call.remote_e164)
    if task is not None and task.id is not None:
        if await tx.link_callback_call(task.id, call.id):
            task.missed_count += 1
            if task.contact_id is None:
                task.contact_id = call.contact_id
            if task.owner_id is None:
                task.owner_id = await tx.least_loaded_rung_user(call.id)
            await tx.save_callback(task)
            # the row as saved; who it rang grew with this call
            task.rung_user_ids = await tx.callback_rung_users(task.id)
        return CallbackChange("joined", task)
    opened = call.ended_at
    owner = contact_owner_id if contact_owner_id is not None else policy.default_owner_id
    if owner is None:
        owner = await tx.least_loaded_rung_user(call.id)
    task = CallbackTask(
        id=None,
        number_e164=call.remote_e164,
        contact_id=call.contact_id,
        owner_id=owner,
        opened_at=opened,
        due_at=opened + policy.callback_sla_seconds,
    )
    # Calls can arrive out of order (resync): if the callback already happened, the
    # task is born closed so the audit still shows the miss and how fast it was handled.
    answered = await tx.answered_call_after(call.remote_e164, opened, not_ids=later)
    if answered is not None:
        _close(task, answered)
    task = await tx.add_callback(task)
    assert task.id is not None
    await tx.link_callback_call(task.id, call.id)
    task = await tx.get_callback(task.id) or task  # with the users it rang
    return CallbackChange("closed" if answered else "opened", task)


def _close(task: CallbackTask, by: Call) -> None:
    task.status = "closed"
    task.closed_at = by.answered_at if by.answered_at is not None else by.started_at
    task.closed_by_user_id = by.user_id
    task.closed_by_call = by.id
    task.time_to_callback = max(0.0, by.started_at - task.opened_at)
    task.close_reason = "called_back"


async def _close_by(tx: Store, call: Call) -> CallbackChange | None:
    assert call.remote_e164 is not None
    task = await tx.open_callback_for_number(call.remote_e164)
    if task is None or call.started_at < task.opened_at:
        return None
    _close(task, call)
    await tx.save_callback(task)
    return CallbackChange("closed", task)
