"""Who may see what: a rep sees their own work, a manager their team's, an admin all.

A ``Scope`` is computed once per request (``CrmService.scope_for``) and handed to every
list and report, so the rule lives here and in the store's SQL filter, nowhere else.
Contacts without an owner are shared: everyone sees them.

Ownership decides who sees a contact, so changing it is guarded too
(``owner_change_refusal``): a rep may share a contact they own or keep it, but may not take
a shared contact (nor anyone else's) for themselves, which would hide it from everyone
else; managers and admins assign owners within what they see.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import Call, CallbackTask, Contact, User


@dataclass(frozen=True)
class Scope:
    """The user ids whose calls, contacts and callbacks are visible; None = everything."""

    user_ids: frozenset[int] | None

    @classmethod
    def everything(cls) -> Scope:
        return cls(None)

    @property
    def unrestricted(self) -> bool:
        return self.user_ids is None

    def ids(self) -> list[int] | None:
        """The ids for the store's SQL filter (sorted, so queries are reproducible)."""
        return None if self.user_ids is None else sorted(self.user_ids)

    def covers(self, user_id: int | None) -> bool:
        return self.user_ids is None or (user_id is not None and user_id in self.user_ids)


def scope_of(user: User, team: list[User]) -> Scope:
    """Rep: themself.  Manager: every member of their team (and themself, also without a
    team).  Admin: everything.  ``team`` is the users of ``user.team_id``."""
    if user.role == "admin":
        return Scope(None)
    ids = {user.id} if user.id is not None else set()
    if user.role == "manager" and user.team_id is not None:
        ids.update(u.id for u in team if u.team_id == user.team_id and u.id is not None)
    return Scope(frozenset(ids))


def can_see_call(scope: Scope | None, call: Call, callback: CallbackTask | None = None) -> bool:
    """A call is visible when its rep is in scope, or (a missed call nobody answered)
    when ``callback``, the task it opened or joined, is visible (``can_see_callback``).
    The same rule as the store's list filter; ``CrmService.can_see_call`` looks the
    task up."""
    if scope is None or scope.user_ids is None:
        return True
    return scope.covers(call.user_id) or (
        callback is not None and can_see_callback(scope, callback)
    )


def can_see_contact(scope: Scope | None, contact: Contact) -> bool:
    """Owned by someone in scope, or shared (no owner)."""
    if scope is None or scope.user_ids is None:
        return True
    return contact.owner_id is None or contact.owner_id in scope.user_ids


def can_see_callback(scope: Scope | None, task: CallbackTask) -> bool:
    """Callbacks are visible to their owner's scope; an unowned task only to the scopes
    of the users its calls rang (``task.rung_user_ids``): a rep who was never rung does
    not see it.  The store's ``_visible_task`` is the same rule in SQL."""
    if scope is None or scope.user_ids is None:
        return True
    if task.owner_id is not None:
        return task.owner_id in scope.user_ids
    return any(u in scope.user_ids for u in task.rung_user_ids)


def owner_change_refusal(user: User, scope: Scope, current: int | None,
                         new: int | None) -> str | None:  # fmt: skip
    """Why ``user`` may not move a contact from owner ``current`` to ``new`` (None: they
    may).  Admin: anyone.  Manager: from and to owners in their scope (or shared).  Rep:
    only a contact they own, to themself or to shared."""
    if current == new or user.role == "admin":
        return None
    if user.role == "rep":
        if current != user.id:
            return (
                "owner: only a manager can change the owner of a contact you do not own "
                "(shared contacts stay visible to everyone)"
            )
        if new is not None and new != user.id:
            return "owner: you can share your contact or keep it, not give it to someone else"
        return None
    if not (current is None or scope.covers(current)) or not (new is None or scope.covers(new)):
        return "owner: you can only assign contacts within your own team"
    return None


def merge_refusal(user: User, keep: Contact, drop: Contact) -> str | None:
    """Why ``user`` may not merge ``drop`` into ``keep`` (None: they may).  A merge hands
    one card's calls and numbers to the other's owner: a rep merges only cards with the
    same owner (both theirs, or both shared)."""
    if user.role != "rep" or keep.owner_id == drop.owner_id:
        return None
    return (
        "merge: these contacts have different owners; a manager can merge them "
        "(a merge would move a shared contact's history to one rep)"
    )
