"""Callbacks as a rep's work: claim a task, log an attempt, snooze it, close it with a
reason, set a follow-up from a call's wrap-up; and the overdue signal.

``crm.callbacks`` opens and closes tasks from calls (the ingest); this module is what a
person does to them.  Every change is checked against the actor's scope
(``crm.access``), audited, and published on the bus (``callback_updated``,
``callback_closed``, ``callback_overdue``) so the live lists and the webhooks follow.

Attempts are rows of their own (``callback_attempts``) and a count on the task, apart from
``missed_count``: "the caller tried 3 times" and "we tried twice" are different figures.
An attempt that reached the caller, or found the number wrong, closes the task; no answer
and a left message keep it open.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .access import Scope, can_see_callback
from .errors import Forbidden, InvalidInput, NotFound
from .events import Event, EventBus
from .limits import NOTE_COMMENT_MAX, check_text
from .models import ATTEMPT_RESULTS, Call, CallbackAttempt, CallbackTask, User
from .services import CrmService

log = logging.getLogger(__name__)

CLOSE_REASONS: tuple[str, ...] = ("reached", "wrong_number", "not_needed", "duplicate", "other")
"""Why a person closed a task (an answered call closes it as ``called_back``)."""
CLOSING_ATTEMPTS = {"reached": "reached", "wrong_number": "wrong_number"}
"""Attempt results that close the task, and the close reason they record."""
SNOOZE_MAX_SECONDS = 90 * 86400.0


@dataclass(frozen=True, slots=True)
class CallbackView:
    """A task with its attempts, for the callbacks page."""

    task: CallbackTask
    attempts: list[CallbackAttempt]


class CallbackWork:
    def __init__(self, service: CrmService, bus: EventBus) -> None:
        self.service = service
        self.store = service.store
        self.bus = bus

    # -- reading -----------------------------------------------------------------------
    async def for_user(
        self, user: User, scope: Scope, status: str = "open", limit: int = 200
    ) -> list[CallbackView]:
        """The tasks ``user`` works on: a rep's own and the unowned ones that rang them,
        a manager's team's, everything for an admin; oldest due first."""
        tasks = await self.service.list_callbacks(
            None, "open" if status == "open" else "closed", limit, scope=scope
        )
        if status != "open":
            tasks.sort(key=lambda t: t.closed_at or 0.0, reverse=True)
        attempts = await self.store.callback_attempts([t.id for t in tasks if t.id is not None])
        by_task: dict[int, list[CallbackAttempt]] = {}
        for a in attempts:
            by_task.setdefault(a.task_id, []).append(a)
        return [CallbackView(t, by_task.get(t.id or 0, [])) for t in tasks]

    async def _task_for(self, user: User, task_id: int, scope: Scope) -> CallbackTask:
        task = await self.store.get_callback(task_id)
        if task is None or not can_see_callback(scope, task):
            raise NotFound(f"callback {task_id}")
        return task

    @staticmethod
    def _may_work(user: User, task: CallbackTask) -> None:
        """A rep works on their own tasks and unowned ones (seeing one means it rang
        them); managers and admins on any they see."""
        if user.role == "rep" and task.owner_id not in (None, user.id):
            raise Forbidden("this callback belongs to another rep")

    def _publish(self, kind: str, task: CallbackTask) -> None:
        users = frozenset({task.owner_id} if task.owner_id is not None else ())
        self.bus.publish(Event(kind, task, user_ids=users))

    async def _open_task(self, user: User, task_id: int, scope: Scope) -> CallbackTask:
        """The open task ``user`` may work on (not found, forbidden or closed raise)."""
        task = await self._task_for(user, task_id, scope)
        self._may_work(user, task)
        if task.status != "open":
            raise InvalidInput("this callback is already closed")
        return task

    async def _save(
        self,
        user: User,
        task: CallbackTask,
        action: str,
        detail: dict[str, object],
        kind: str,
        attempt: CallbackAttempt | None = None,
    ) -> CallbackTask:
        """Store the changed task (and the try that changed it) with its audit entry in
        one transaction, then tell the boards (``kind``)."""
        async with self.store.transaction() as tx:
            if attempt is not None:
                await tx.add_callback_attempt(attempt)
            await tx.save_callback(task)
            await self.service.audit(user.username, action, f"callback:{task.id}", detail, tx)
        self._publish(kind, task)
        return task

    # -- changes -----------------------------------------------------------------------
    async def claim(self, user: User, task_id: int, scope: Scope) -> CallbackTask:
        """Take an unowned task (a manager may also take one from their team)."""
        task = await self._task_for(user, task_id, scope)
        if task.status != "open":
            raise InvalidInput("this callback is already closed")
        if task.owner_id == user.id:
            return task
        if user.role == "rep" and task.owner_id is not None:
            raise Forbidden("this callback belongs to another rep")
        before = task.owner_id
        task.owner_id, task.claimed_at = user.id, self.service.clock()
        return await self._save(
            user, task, "callback.claimed", {"from": before}, "callback_updated"
        )

    async def attempt(
        self, user: User, task_id: int, scope: Scope, result: str, comment: str = ""
    ) -> CallbackTask:
        """Log one try; ``reached`` and ``wrong_number`` close the task."""
        if result not in ATTEMPT_RESULTS:
            raise InvalidInput("result: choose one from the list")
        comment = comment.strip()
        check_text("comment", comment, NOTE_COMMENT_MAX)
        task = await self._open_task(user, task_id, scope)
        now = self.service.clock()
        if task.owner_id is None:
            task.owner_id, task.claimed_at = user.id, now
        task.attempts += 1
        reason = CLOSING_ATTEMPTS.get(result)
        if reason is not None:
            self._close(task, user, reason, now)
        return await self._save(
            user,
            task,
            "callback.attempt",
            {"result": result, "closed": reason is not None},
            "callback_closed" if reason else "callback_updated",
            CallbackAttempt(None, task_id, user.id, now, result, comment),
        )

    async def snooze(self, user: User, task_id: int, scope: Scope, until: float) -> CallbackTask:
        """Quiet until ``until``: not overdue before then (signalled again after)."""
        now = self.service.clock()
        if until <= now:
            raise InvalidInput("snooze: choose a time in the future")
        if until - now > SNOOZE_MAX_SECONDS:
            raise InvalidInput("snooze: at most 90 days")
        task = await self._open_task(user, task_id, scope)
        task.snoozed_until, task.overdue_at = until, None
        return await self._save(
            user, task, "callback.snoozed", {"until": until}, "callback_updated"
        )

    async def close(self, user: User, task_id: int, scope: Scope, reason: str) -> CallbackTask:
        if reason not in CLOSE_REASONS:
            raise InvalidInput("reason: choose one from the list")
        task = await self._open_task(user, task_id, scope)
        self._close(task, user, reason, self.service.clock())
        return await self._save(
            user, task, "callback.closed", {"reason": reason}, "callback_closed"
        )

    @staticmethod
    def _close(task: CallbackTask, user: User, reason: str, now: float) -> None:
        task.status, task.close_reason = "closed", reason
        task.closed_at, task.closed_by_user_id = now, user.id
        if reason == "reached":
            task.time_to_callback = max(0.0, now - task.opened_at)

    async def follow_up(self, user: User, call: Call, due_at: float) -> CallbackTask:
        """A task to ring the call's other party at ``due_at`` (a wrap-up's follow-up
        date), owned by ``user``.  An open task for the number takes the new due time
        instead of a second task (one open task per number)."""
        now = self.service.clock()
        if due_at <= now:
            raise InvalidInput("follow-up: choose a time in the future")
        if not call.remote_e164:
            raise InvalidInput("follow-up: this call has no outside number to ring back")
        async with self.store.transaction() as tx:
            await tx.lock_number(call.remote_e164)
            task = await tx.open_callback_for_number(call.remote_e164)
            if task is None:
                task = CallbackTask(
                    id=None,
                    number_e164=call.remote_e164,
                    contact_id=call.contact_id,
                    owner_id=user.id,
                    opened_at=now,
                    due_at=due_at,
                    missed_count=0,
                    kind="follow_up",
                )
                task = await tx.add_callback(task)
                kind = "callback_opened"
            else:
                task.due_at, task.overdue_at, task.snoozed_until = due_at, None, None
                if task.owner_id is None:
                    task.owner_id = user.id
                await tx.save_callback(task)
                kind = "callback_updated"
            assert task.id is not None
            await self.service.audit(
                user.username,
                "callback.follow_up",
                f"callback:{task.id}",
                {"call": call.id, "due_at": due_at},
                tx,
            )
        self._publish(kind, task)
        return task

    # -- overdue -----------------------------------------------------------------------
    async def signal_overdue(self) -> list[CallbackTask]:
        """Announce every task that went past due (or past its snooze) since the last
        sweep, once each across all processes (``mark_callback_overdue``):
        ``callback_overdue`` on the bus, for the live lists and the webhook."""
        now = self.service.clock()
        out = []
        for task in await self.store.overdue_unsignalled(now):
            assert task.id is not None
            if await self.store.mark_callback_overdue(task.id, now):
                task.overdue_at = now
                self._publish("callback_overdue", task)
                out.append(task)
        return out
