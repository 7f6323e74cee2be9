"""The operations the web UI calls.  Each one validates its input, runs in one store
transaction where it touches more than one row, and leaves an audit entry where a
manager would later ask "who did that?".

Bad input raises ``InvalidInput`` (a ValueError) with a message fit to show the user,
and changes nothing.
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import passwords
from .access import Scope, merge_refusal, owner_change_refusal, scope_of
from .access import can_see_call as _can_see_call
from .access import can_see_contact as _can_see_contact
from .admin_settings import SettingsServices
from .catalogue import RecordingServices
from .errors import Forbidden, InvalidInput, NotFound
from .handover import HandoverServices
from .limits import (
    NOTE_COMMENT_MAX,
    NOTE_RESULT_MAX,
    NOTE_TOPIC_MAX,
    check_contact_fields,
    check_custom,
    check_text,
)
from .models import (
    LEAD_SOURCES,
    LEAD_STATUSES,
    MISSED_OUTCOMES,
    ROLES,
    AuditEntry,
    Call,
    CallbackStatus,
    CallbackTask,
    CallFilter,
    Contact,
    Lead,
    LeadStatus,
    MissedCallRow,
    Note,
    Page,
    PhoneNumber,
    Role,
    Team,
    TimelineItem,
    User,
)
from .phones import FRAGMENT_MIN_DIGITS, digits_only, normalize, number_fragment
from .policy import LeadPolicy
from .queue_settings import QueueSettingsServices
from .queue_stats import QueueStatsServices
from .reports import ReportServices
from .store import CallCursor, Store
from .tokens import TokenServices

__all__ = ["CrmService", "Forbidden", "InvalidInput", "NotFound", "Scope"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_EXTENSION = re.compile(r"^\d{2,6}$")
T = TypeVar("T")


class Unset(enum.Enum):
    """A keyword left out (``owner_id`` may be set to None, which means "shared")."""

    UNSET = "unset"


UNSET = Unset.UNSET

OPEN_LEAD_STATUSES: tuple[LeadStatus, ...] = ("new", "contacted", "qualified")
"""A lead still being worked: neither converted nor junk."""


def encode_cursor(cursor: CallCursor) -> str:
    return f"{cursor[0]!r}~{cursor[1]}"


def decode_cursor(text: str | None) -> CallCursor | None:
    if not text:
        return None
    try:
        started, ident = text.split("~", 1)
        return float(started), int(ident)
    except ValueError as exc:
        raise InvalidInput("bad page cursor") from exc


class CrmService(
    ReportServices, QueueStatsServices, QueueSettingsServices, TokenServices,
    RecordingServices, SettingsServices, HandoverServices
):
    def __init__(
        self, store: Store, policy: LeadPolicy, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock

    # -- numbers ---------------------------------------------------------------------
    def phone(self, raw: str | PhoneNumber, label: str = "") -> PhoneNumber:
        """A number typed by a user, normalised; unreadable numbers are refused."""
        if isinstance(raw, PhoneNumber):
            raw, label = raw.raw, raw.label or label
        e164 = normalize(raw, self.policy.default_region)
        if e164 is None:
            raise InvalidInput(f"not a phone number: {raw!r}")
        return PhoneNumber(raw=raw.strip(), e164=e164, label=label)

    # -- audit -----------------------------------------------------------------------
    async def audit(
        self,
        actor: str,
        action: str,
        target: str = "",
        detail: dict[str, Any] | None = None,
        store: Store | None = None,
    ) -> AuditEntry:
        """Append to the audit log (``settings.changed``, ``recording.played``,
        ``contact.exported``, ``contact.erased``, ``call.click_to_call``, ...)."""
        entry = AuditEntry(None, self.clock(), actor, action, target, dict(detail or {}))
        return await (store or self.store).append_audit(entry)

    async def list_audit(
        self,
        action: str | None = None,
        actor: str | None = None,
        since: float | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        return await self.store.list_audit(action, actor, since, limit, before_id)

    # -- users -----------------------------------------------------------------------
    async def create_user(
        self,
        username: str,
        display_name: str,
        password: str,
        role: Role = "rep",
        extensions: Iterable[str] = (),
        team_id: int | None = None,
        actor: str = "system",
    ) -> User:
        if not _USERNAME.match(username or ""):
            raise InvalidInput("username: 1-64 letters, digits, . _ @ -")
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise InvalidInput("password: at least 8 characters")
        exts = self._extensions(extensions)
        password_hash = await asyncio.to_thread(passwords.hash_password, password)
        async with self.store.transaction() as tx:
            if await tx.get_user_by_username(username):
                raise InvalidInput(f"username {username!r} is taken")
            for ext in exts:
                if await tx.user_for_extension(ext):
                    raise InvalidInput(f"extension {ext} belongs to another user")
            user = User(
                None,
                username,
                display_name or username,
                role,
                exts,
                password_hash,
                True,
                team_id,
            )
            user = await tx.add_user(user, self.clock())
            await self.audit(actor, "user.created", f"user:{user.id}", {"role": role}, tx)
        return user

    @staticmethod
    def _extensions(extensions: Iterable[str]) -> list[str]:
        exts = sorted({e.strip() for e in extensions if e.strip()})
        for ext in exts:
            if not _EXTENSION.match(ext):
                raise InvalidInput(f"extension {ext!r}: 2-6 digits")
        return exts

    async def authenticate(self, username: str, password: str) -> User | None:
        """The active user with these credentials, else None; upgrades old hashes."""
        user = await self.store.get_user_by_username(username)
        # argon2 costs tens of milliseconds of CPU by design: keep it off the event loop
        ok = await asyncio.to_thread(
            passwords.verify_password, user.password_hash if user else None, password
        )
        if user is None or not ok or not user.active:
            return None
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = await asyncio.to_thread(passwords.hash_password, password)
            await self.store.update_user(user)
        return user

    async def set_password(self, user_id: int, password: str, actor: str) -> None:
        if len(password) < 8:
            raise InvalidInput("password: at least 8 characters")
        user = await self._user(user_id)
        user.password_hash = await asyncio.to_thread(passwords.hash_password, password)
        async with self.store.transaction() as tx:
            await tx.update_user(user)
            await self.audit(actor, "user.password_changed", f"user:{user_id}", None, tx)

    async def set_preferences(
        self, user_id: int, language: str | None, timezone: str | None, actor: str
    ) -> User:
        """A user's own language and time zone (None: not chosen, the install's apply).
        The web layer knows which languages it has catalogs for and checks that; a time
        zone must be a name the system's zone database knows."""
        if language is not None and not re.fullmatch(r"[a-z]{2,3}(_[A-Za-z]{2,4})?", language):
            raise InvalidInput("language: not a language code")
        if timezone is not None:
            try:
                if timezone.startswith("/") or ".." in timezone:
                    raise ValueError(timezone)
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise InvalidInput("time zone: not a known time zone") from None
        user = await self._user(user_id)
        if (user.language, user.timezone) != (language, timezone):
            old = {"language": user.language, "timezone": user.timezone}
            user.language, user.timezone = language, timezone
            async with self.store.transaction() as tx:
                await tx.update_user(user)
                await self.audit(
                    actor, "user.preferences", f"user:{user_id}",
                    {"from": old, "to": {"language": language, "timezone": timezone}}, tx,
                )  # fmt: skip
        return user

    async def set_extensions(self, user_id: int, extensions: Iterable[str], actor: str) -> User:
        exts = self._extensions(extensions)
        async with self.store.transaction() as tx:
            user = await tx.get_user(user_id)
            if user is None:
                raise NotFound(f"user {user_id}")
            for ext in exts:
                other = await tx.user_for_extension(ext)
                if other and other.id != user_id:
                    raise InvalidInput(f"extension {ext} belongs to {other.username}")
            user.extensions = exts
            await tx.update_user(user)
            await self.audit(actor, "user.extensions", f"user:{user_id}", {"extensions": exts}, tx)
        return user

    async def deactivate_user(self, user_id: int, actor: str) -> User:
        """The user can no longer log in and gets no new calls; history keeps the name."""
        user = await self._user(user_id)
        user.active = False
        async with self.store.transaction() as tx:
            await tx.update_user(user)
            await self.audit(actor, "user.deactivated", f"user:{user_id}", None, tx)
        return user

    async def reactivate_user(self, user_id: int, actor: str) -> User:
        user = await self._user(user_id)
        if not user.active:
            user.active = True
            async with self.store.transaction() as tx:
                await tx.update_user(user)
                await self.audit(actor, "user.reactivated", f"user:{user_id}", None, tx)
        return user

    async def set_role(self, user_id: int, role: Role, actor: str) -> User:
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        user = await self._user(user_id)
        if user.role != role:
            old, user.role = user.role, role
            async with self.store.transaction() as tx:
                await tx.update_user(user)
                await self.audit(
                    actor, "user.role", f"user:{user_id}", {"from": old, "to": role}, tx
                )
        return user

    async def list_users(self, include_inactive: bool = False) -> list[User]:
        return await self.store.list_users(include_inactive)

    async def scope_for(self, user: User) -> Scope:
        """What ``user`` may see: a rep themself, a manager their team, an admin all."""
        team: list[User] = []
        if user.role == "manager" and user.team_id is not None:
            team = [
                u
                for u in await self.store.list_users(include_inactive=True)
                if u.team_id == user.team_id
            ]
        return scope_of(user, team)

    async def can_see_call(self, scope: Scope | None, call: Call) -> bool:
        """For a call's own page: the list rule, including the callback owner."""
        if scope is None or scope.user_ids is None or scope.covers(call.user_id):
            return True
        task = await self.store.callback_for_call(call.id) if call.id is not None else None
        return _can_see_call(scope, call, task)

    @staticmethod
    def can_see_contact(scope: Scope | None, contact: Contact) -> bool:
        return _can_see_contact(scope, contact)

    async def create_team(self, name: str, actor: str) -> Team:
        name = (name or "").strip()
        if not name or len(name) > 100:
            raise InvalidInput("team name: 1-100 characters")
        async with self.store.transaction() as tx:
            if any(t.name.lower() == name.lower() for t in await tx.list_teams()):
                raise InvalidInput(f"team {name!r} exists")
            team = await tx.add_team(name)
            await self.audit(actor, "team.created", f"team:{team.id}", {"name": name}, tx)
        return team

    async def list_teams(self) -> list[Team]:
        return await self.store.list_teams()

    async def set_team(self, user_id: int, team_id: int | None, actor: str) -> User:
        async with self.store.transaction() as tx:
            user = await tx.get_user(user_id)
            if user is None:
                raise NotFound(f"user {user_id}")
            if team_id is not None and all(t.id != team_id for t in await tx.list_teams()):
                raise NotFound(f"team {team_id}")
            user.team_id = team_id
            await tx.update_user(user)
            await self.audit(actor, "user.team", f"user:{user_id}", {"team_id": team_id}, tx)
        return user

    async def set_teams(self, user_ids: Sequence[int], team_id: int | None, actor: str) -> int:
        """Several users into one team (None: no team) at once, one audit entry naming
        them; returns how many users changed."""
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            raise InvalidInput("choose at least one user")
        async with self.store.transaction() as tx:
            if team_id is not None and all(t.id != team_id for t in await tx.list_teams()):
                raise NotFound(f"team {team_id}")
            names = []
            for uid in ids:
                user = await tx.get_user(uid)
                if user is None:
                    raise NotFound(f"user {uid}")
                user.team_id = team_id
                await tx.update_user(user)
                names.append(user.username)
            await self.audit(actor, "users.team", f"team:{team_id}", {"users": names}, tx)
        return len(ids)

    async def _user(self, user_id: int) -> User:
        user = await self.store.get_user(user_id)
        if user is None:
            raise NotFound(f"user {user_id}")
        return user

    # -- contacts --------------------------------------------------------------------
    def _check_email(self, email: str) -> str:
        email = (email or "").strip()
        if email and not _EMAIL.match(email):
            raise InvalidInput(f"not an e-mail address: {email!r}")
        return email

    async def create_contact(
        self,
        name: str,
        company: str = "",
        email: str = "",
        phones: Sequence[str | PhoneNumber] = (),
        owner_id: int | None = None,
        tags: Iterable[str] = (),
        custom: dict[str, Any] | None = None,
        lead_status: LeadStatus | None = None,
        actor: str = "system",
    ) -> Contact:
        name = (name or "").strip()
        check_contact_fields(name, company, email, tags, phones, custom)
        if not name and not phones:
            raise InvalidInput("a contact needs a name or a number")
        if lead_status is not None and lead_status not in LEAD_STATUSES:
            raise InvalidInput(f"lead status must be one of {', '.join(LEAD_STATUSES)}")
        now = self.clock()
        contact = Contact(
            id=None,
            name=name,
            company=(company or "").strip(),
            email=self._check_email(email),
            owner_id=owner_id,
            tags=sorted({t.strip() for t in tags if t.strip()}),
            custom=dict(custom or {}),
            phones=_dedupe([self.phone(p) for p in phones]),
            lead=Lead(lead_status, "manual", now) if lead_status else None,
            created_at=now,
            updated_at=now,
        )
        return await self.store.add_contact(contact)

    async def get_contact(self, contact_id: int) -> Contact:
        contact = await self.store.get_contact(contact_id)
        if contact is None or contact.erased:
            raise NotFound(f"contact {contact_id}")
        return contact

    async def update_contact(
        self, contact_id: int, actor: str = "system", by: User | None = None, **fields: Any
    ) -> Contact:
        """Change any of name, company, email, phones, owner_id, tags, custom.  ``by``, the
        user making the change, is held to the ownership rule (``owner_change_refusal``):
        Forbidden when they may not give the contact that owner."""
        allowed = {"name", "company", "email", "phones", "owner_id", "tags", "custom"}
        unknown = set(fields) - allowed
        if unknown:
            raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}")
        check_contact_fields(fields.get("name"), fields.get("company"), fields.get("email"),
                             fields.get("tags"), fields.get("phones"))  # fmt: skip
        if "custom" in fields:
            fields["custom"] = dict(check_custom(fields["custom"]))
        contact = await self.get_contact(contact_id)
        if by is not None and "owner_id" in fields:
            why = owner_change_refusal(by, await self.scope_for(by), contact.owner_id,
                                       fields["owner_id"])  # fmt: skip
            if why:
                raise Forbidden(why)
        if "email" in fields:
            fields["email"] = self._check_email(fields["email"])
        if "phones" in fields:
            fields["phones"] = _dedupe([self.phone(p) for p in fields["phones"]])
        if "tags" in fields:
            fields["tags"] = sorted({t.strip() for t in fields["tags"] if t.strip()})
        contact = replace(contact, **fields, updated_at=self.clock())
        await self.store.update_contact(contact)
        return contact

    async def delete_contact(self, contact_id: int, actor: str) -> None:
        async with self.store.transaction() as tx:
            await tx.delete_contact(contact_id)
            await self.audit(actor, "contact.deleted", f"contact:{contact_id}", None, tx)

    async def search_contacts(
        self,
        query: str,
        limit: int = 50,
        after_id: int | None = None,
        owner_id: int | None = None,
        scope: Scope | None = None,
    ) -> list[Contact]:
        """By name, company or e-mail (substring, any case) or by any number in any
        format (+1 415..., (415) 555-..., 00 44 ..., or a run of its digits); within
        ``scope`` (owned by someone in it, or by nobody)."""
        query = (query or "").strip()
        e164 = normalize(query, self.policy.default_region) if query else None
        return await self.store.search_contacts(
            text=query or None,
            e164=e164,
            digits=number_fragment(query),
            owner_id=owner_id,
            limit=limit,
            after_id=after_id,
            user_ids=scope.ids() if scope else None,
        )

    async def list_contacts(
        self,
        after_id: int | None = None,
        limit: int = 50,
        owner_id: int | None = None,
        scope: Scope | None = None,
    ) -> list[Contact]:
        """Contacts by id (keyset: pass the last id as ``after_id``), within ``scope``."""
        limit = max(1, min(limit, 1000))
        return await self.store.list_contacts(
            after_id, limit, owner_id, scope.ids() if scope else None
        )

    def _search_terms(self, query: str) -> tuple[str | None, str | None, str | None]:
        """(text, e164, digits) of a search box, read as ``search_contacts`` reads it."""
        query = (query or "").strip()
        e164 = normalize(query, self.policy.default_region) if query else None
        return query or None, e164, number_fragment(query)

    async def list_leads(
        self,
        scope: Scope | None = None,
        statuses: str | Iterable[str] | None = None,
        source: str | None = None,
        query: str = "",
        limit: int = 50,
        cursor: str | None = None,
        owner_id: int | None = None,
    ) -> Page[Contact]:
        """Leads by id, filtered by the database (not by reading contacts in batches):
        ``statuses`` one or several of ``LEAD_STATUSES``, or ``open`` (not converted nor
        junk), None for every lead; ``source`` one of ``LEAD_SOURCES``; ``query`` as in
        ``search_contacts``; within ``scope``.  ``cursor`` is the previous page's
        ``next_cursor`` (the last contact id)."""
        if statuses is None:
            wanted: set[str] = set(LEAD_STATUSES)
        else:
            names = [statuses] if isinstance(statuses, str) else list(statuses)
            wanted = set()
            for name in names:
                if name == "open":
                    wanted.update(OPEN_LEAD_STATUSES)
                elif name in LEAD_STATUSES:
                    wanted.add(name)
                else:
                    raise InvalidInput(
                        f"lead status must be open or one of {', '.join(LEAD_STATUSES)}"
                    )
            if not wanted:
                raise InvalidInput("choose at least one lead status")
        if source is not None and source not in LEAD_SOURCES:
            raise InvalidInput(f"lead source must be one of {', '.join(LEAD_SOURCES)}")
        after_id: int | None = None
        if cursor:
            try:
                after_id = int(cursor)
            except ValueError:
                after_id = -1
            if after_id < 0:
                raise InvalidInput("bad page cursor")
        limit = max(1, min(limit, 1000))
        text, e164, digits = self._search_terms(query)
        found = await self.store.list_leads(
            [s for s in LEAD_STATUSES if s in wanted],
            source,
            text,
            e164,
            digits,
            owner_id,
            limit + 1,
            after_id,
            scope.ids() if scope else None,
        )
        if len(found) > limit:
            found = found[:limit]
            return Page(found, str(found[-1].id))
        return Page(found, None)

    async def merge_contacts(self, keep_id: int, drop_id: int, actor: str,
                             by: User | None = None) -> Contact:  # fmt: skip
        """``drop_id``'s calls, callbacks and numbers move to ``keep_id``; blank fields of
        the kept contact are filled from the other; tags are united.  ``by`` is held to
        ``merge_refusal`` (a rep merges only cards with the same owner)."""
        if keep_id == drop_id:
            raise InvalidInput("cannot merge a contact into itself")
        async with self.store.transaction() as tx:
            keep, drop = await tx.get_contact(keep_id), await tx.get_contact(drop_id)
            if keep is None or drop is None or keep.erased or drop.erased:
                raise NotFound("contact to merge")
            why = merge_refusal(by, keep, drop) if by is not None else None
            if why:
                raise Forbidden(why)
            keep.name = keep.name or drop.name
            keep.company = keep.company or drop.company
            keep.email = keep.email or drop.email
            keep.owner_id = keep.owner_id if keep.owner_id is not None else drop.owner_id
            keep.tags = sorted(set(keep.tags) | set(drop.tags))
            keep.custom = {**drop.custom, **keep.custom}
            if keep.lead is not None and drop.lead is None:
                keep.lead = None  # one side is already a customer: so is the person
            times = [t for t in (keep.last_contact_at, drop.last_contact_at) if t is not None]
            keep.last_contact_at = max(times) if times else None
            keep.updated_at = self.clock()
            await tx.update_contact(keep)
            await tx.merge_contacts(keep_id, drop_id, keep.updated_at)
            await self.audit(actor, "contact.merged", f"contact:{keep_id}", {"merged": drop_id}, tx)
            merged = await tx.get_contact(keep_id)
        assert merged is not None
        return merged

    async def set_lead_status(self, contact_id: int, status: LeadStatus, actor: str) -> Contact:
        if status not in LEAD_STATUSES:
            raise InvalidInput(f"lead status must be one of {', '.join(LEAD_STATUSES)}")
        contact = await self.get_contact(contact_id)
        if contact.lead is None:
            raise InvalidInput("this contact is not a lead")
        before = contact.lead.status
        if before == status:
            return contact
        contact.lead.status = status
        contact.updated_at = self.clock()
        async with self.store.transaction() as tx:
            await tx.update_contact(contact)
            if before == "converted":
                await tx.set_lead_converted_at(contact_id, None)
            # the contact's timeline shows who changed the status and when
            await self.audit(
                actor, "lead.status", f"contact:{contact_id}", {"from": before, "to": status}, tx
            )
        return contact

    async def convert_lead(
        self,
        contact_id: int,
        actor: str,
        *,
        name: str | None = None,
        company: str | None = None,
        owner_id: int | Unset | None = UNSET,
        by: User | None = None,
    ) -> Contact:
        """The lead becomes a customer, named by the rep (not the machine-made "+44 20 ...
        (missed call, 3 Mar 10:12)"), with the company and owner they chose; the time is
        kept for the lead statistics and the change goes on the contact's timeline."""
        contact = await self.get_contact(contact_id)
        if contact.lead is None:
            raise InvalidInput("this contact is not a lead")
        if contact.lead.status == "converted":
            raise InvalidInput("this lead is already converted")
        fields: dict[str, Any] = {}
        if name is not None:
            if not name.strip():
                raise InvalidInput("the customer needs a name")
            fields["name"] = name.strip()
        if company is not None:
            fields["company"] = company.strip()
        if not isinstance(owner_id, Unset):
            fields["owner_id"] = owner_id
        if fields:
            contact = await self.update_contact(contact_id, actor, by=by, **fields)
        before = contact.lead.status if contact.lead else "new"
        assert contact.lead is not None
        contact.lead.status = "converted"
        now = self.clock()
        contact.updated_at = now
        async with self.store.transaction() as tx:
            await tx.update_contact(contact)
            await tx.set_lead_converted_at(contact_id, now)
            await self.audit(
                actor,
                "lead.converted",
                f"contact:{contact_id}",
                {"from": before, "to": "converted", **{k: v for k, v in fields.items()}},
                tx,
            )
        return contact

    async def lead_history(self, contact_id: int, limit: int = 100) -> list[AuditEntry]:
        """The lead's status changes (who, when, from, to), newest first."""
        return await self.store.audit_for_target(f"contact:{contact_id}", "lead.", limit)

    async def erase_contact(self, contact_id: int, actor: str) -> list[tuple[int, str]]:
        """GDPR erasure: personal data goes, anonymous call statistics stay.  Returns
        the (recording id, path) pairs whose files the recordings module must delete."""
        async with self.store.transaction() as tx:
            contact = await tx.get_contact(contact_id)
            if contact is None or contact.erased:
                raise NotFound(f"contact {contact_id}")
            recordings = await tx.erase_contact(contact_id, self.clock())
            await self.audit(
                actor,
                "contact.erased",
                f"contact:{contact_id}",
                {"recordings": len(recordings)},
                tx,
            )
        return recordings

    # -- calls -----------------------------------------------------------------------
    async def get_call(self, call_id: int) -> Call:
        call = await self.store.get_call(call_id)
        if call is None:
            raise NotFound(f"call {call_id}")
        return call

    async def list_calls(
        self,
        flt: CallFilter | None = None,
        limit: int = 50,
        cursor: str | None = None,
        scope: Scope | None = None,
    ) -> Page[Call]:
        flt = flt or CallFilter()
        if flt.number_digits is not None:
            digits = digits_only(flt.number_digits)
            if len(digits) < FRAGMENT_MIN_DIGITS - 1:
                raise InvalidInput(f"type at least {FRAGMENT_MIN_DIGITS} digits of the number")
            flt = replace(flt, number_digits=digits)
        if flt.number_e164 and not flt.number_e164.startswith("+"):
            e164 = normalize(flt.number_e164, self.policy.default_region)
            if e164 is None:
                raise InvalidInput(f"not a phone number: {flt.number_e164!r}")
            flt = replace(flt, number_e164=e164)
        limit = max(1, min(limit, 500))
        calls = await self.store.list_calls(
            flt, limit + 1, decode_cursor(cursor), scope.ids() if scope else None
        )
        return _page(calls, limit, lambda c: (c.started_at, c.id or 0))

    async def missed_calls_audit(
        self,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
        scope: Scope | None = None,
        *,
        rep_id: int | None = None,
        line: str | None = None,
        outcome: str | None = None,
        callback: str | None = None,
    ) -> Page[MissedCallRow]:
        """The audit's rows, every filter applied by the store (see ``Store.missed_calls``:
        ``rep_id`` rung, answered, owns or closed the callback; ``line`` the DID;
        ``outcome``; ``callback`` ``open``/``closed``/``none``)."""
        if outcome and outcome not in MISSED_OUTCOMES:
            raise InvalidInput(f"outcome must be one of {', '.join(sorted(MISSED_OUTCOMES))}")
        if callback and callback not in ("open", "closed", "none"):
            raise InvalidInput("callback status must be one of open, closed, none")
        limit = max(1, min(limit, 500))
        rows = await self.store.missed_calls(
            since,
            until,
            limit + 1,
            decode_cursor(cursor),
            scope.ids() if scope else None,
            rep_id=rep_id,
            line=line or None,
            outcome=outcome or None,
            callback=callback or None,
        )
        return _page(rows, limit, lambda r: (r.call.started_at, r.call.id or 0))

    async def relink_call(self, call_id: int, contact_id: int, actor: str) -> Call:
        """A user picks the right contact for a call (several contacts share a number,
        or the match was wrong).  Stored with match reason ``manual``, which later
        re-ingests of the same call keep."""
        async with self.store.transaction() as tx:
            call = await tx.get_call(call_id)
            if call is None:
                raise NotFound(f"call {call_id}")
            if call.match_reason == "erased":
                raise InvalidInput("this call's personal data was erased")
            contact = await tx.get_contact(contact_id)
            if contact is None or contact.erased:
                raise NotFound(f"contact {contact_id}")
            previous = call.contact_id
            await tx.set_call_contact(call_id, contact_id, "manual", self.clock())
            await tx.touch_contact(contact_id, call.started_at)
            await self.audit(
                actor,
                "call.relinked",
                f"call:{call_id}",
                {"from": previous, "to": contact_id},
                tx,
            )
            updated = await tx.get_call(call_id)
        assert updated is not None
        return updated

    async def contact_timeline(self, contact_id: int, limit: int = 200) -> list[TimelineItem]:
        """A contact's history for its page: calls, notes, callbacks and lead status
        changes, newest first."""
        await self.get_contact(contact_id)
        calls = await self.store.list_calls(CallFilter(contact_id=contact_id), limit)
        notes = await self.store.notes_for_contact(contact_id, limit)
        tasks = await self.store.callbacks_for_contact(contact_id, limit)
        history = await self.lead_history(contact_id, limit)
        items = [
            *(TimelineItem("call", c.started_at, c) for c in calls),
            *(TimelineItem("note", n.created_at, n) for n in notes),
            *(TimelineItem("callback", t.opened_at, t) for t in tasks),
            *(TimelineItem("lead", e.at, e) for e in history),
        ]
        items.sort(key=lambda i: (i.at, i.item.id or 0), reverse=True)
        return items[:limit]

    async def add_note(
        self,
        call_id: int,
        author_id: int | None,
        topic: str = "",
        result: str = "",
        comment: str = "",
    ) -> Note:
        if not (topic.strip() or result.strip() or comment.strip()):
            raise InvalidInput("an empty note")
        check_text("topic", topic.strip(), NOTE_TOPIC_MAX)
        check_text("result", result.strip(), NOTE_RESULT_MAX)
        check_text("comment", comment.strip(), NOTE_COMMENT_MAX)
        await self.get_call(call_id)
        note = Note(
            None, call_id, author_id, topic.strip(), result.strip(), comment.strip(), self.clock()
        )
        return await self.store.add_note(note)

    async def notes(self, call_id: int) -> list[Note]:
        return await self.store.notes_for_call(call_id)

    async def edit_note(
        self, user: User, note_id: int, topic: str = "", result: str = "", comment: str = ""
    ) -> Note:
        """Change a note: its author may, and managers and admins who may see its call.
        The previous text goes to the audit log (``note.edited``), so nothing said is
        lost."""
        note = await self.store.get_note(note_id)
        if note is None:
            raise NotFound(f"note {note_id}")
        call = await self.get_call(note.call_id)
        if not await self.can_see_call(await self.scope_for(user), call):
            raise NotFound(f"note {note_id}")
        if note.author_id != user.id and user.role not in ("manager", "admin"):
            raise Forbidden("only the author of a note (or a manager) can change it")
        topic, result, comment = topic.strip(), result.strip(), comment.strip()
        if not (topic or result or comment):
            raise InvalidInput("an empty note")
        check_text("topic", topic, NOTE_TOPIC_MAX)
        check_text("result", result, NOTE_RESULT_MAX)
        check_text("comment", comment, NOTE_COMMENT_MAX)
        before = {"topic": note.topic, "result": note.result, "comment": note.comment}
        note.topic, note.result, note.comment = topic, result, comment
        note.updated_at, note.updated_by = self.clock(), user.id
        async with self.store.transaction() as tx:
            await tx.update_note(note)
            await self.audit(
                user.username, "note.edited", f"note:{note_id}",
                {"call": note.call_id, "before": before}, tx,
            )  # fmt: skip
        return note

    # -- callbacks -------------------------------------------------------------------
    async def open_callbacks(
        self, user_id: int | None = None, scope: Scope | None = None
    ) -> list[CallbackTask]:
        """Open tasks, oldest due first; ``None`` means everyone's (managers), narrowed
        to ``scope`` (tasks owned by someone in it, or by nobody)."""
        return await self.list_callbacks(user_id, "open", scope=scope)

    async def list_callbacks(
        self,
        owner_id: int | None = None,
        status: CallbackStatus | None = "open",
        limit: int = 200,
        scope: Scope | None = None,
    ) -> list[CallbackTask]:
        return await self.store.list_callbacks(
            owner_id, status, max(1, min(limit, 1000)), scope.ids() if scope else None
        )

    async def reassign(self, from_user_id: int, to_user_id: int, actor: str) -> tuple[int, int]:
        """Hand a rep's contacts and open callbacks to another user, all or nothing."""
        if from_user_id == to_user_id:
            raise InvalidInput("choose a different user")
        async with self.store.transaction() as tx:
            target = await tx.get_user(to_user_id)
            if target is None or not target.active:
                raise InvalidInput("the new owner must be an active user")
            if await tx.get_user(from_user_id) is None:
                raise NotFound(f"user {from_user_id}")
            contacts, callbacks = await tx.reassign_owner(from_user_id, to_user_id)
            await self.audit(
                actor,
                "user.reassigned",
                f"user:{from_user_id}",
                {"to": to_user_id, "contacts": contacts, "callbacks": callbacks},
                tx,
            )
        return contacts, callbacks

    # -- audited actions the web layer reports --------------------------------------
    async def recording_played(self, actor: str, call_id: int, recording_id: int) -> None:
        await self.audit(actor, "recording.played", f"call:{call_id}", {"recording": recording_id})

    async def click_to_call(self, actor: str, number: str, originate_id: str) -> None:
        await self.audit(
            actor, "call.click_to_call", f"number:{number}", {"originate_id": originate_id}
        )

    async def settings_changed(self, actor: str, section: str, changes: dict[str, Any]) -> None:
        await self.audit(actor, "settings.changed", section, changes)


def _dedupe(phones: list[PhoneNumber]) -> list[PhoneNumber]:
    seen: set[str] = set()
    out: list[PhoneNumber] = []
    for p in phones:
        key = p.e164 or p.raw
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _page(items: list[T], limit: int, key: Callable[[T], CallCursor]) -> Page[T]:
    if len(items) > limit:
        items = items[:limit]
        return Page(items, encode_cursor(key(items[-1])))
    return Page(items, None)
