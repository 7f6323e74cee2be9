"""Which calls turn into leads, what the lead is called, who owns it.

Pure functions over a call record and the policy, so every rule variant can be tested
without a database; ``crm.ingest`` applies them inside its transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime

from ami_bridge.facts import CallRecord

from .models import MISSED_OUTCOMES, Contact, Lead, LeadSource, PhoneNumber
from .phones import format_display, is_withheld, normalize
from .policy import LeadPolicy


def remote_party(rec: CallRecord, policy: LeadPolicy) -> tuple[str | None, str]:
    """The outside party's E.164, or None with the reason there is none to match on.

    Inbound: the caller.  Outbound: the number dialled.  Internal: nobody.
    """
    if rec.direction == "internal":
        return None, "internal"
    if rec.direction == "inbound":
        raw, given = rec.caller_raw or rec.caller, rec.caller
    else:
        raw, given = rec.callee, rec.callee_e164
    if is_withheld(raw) and is_withheld(given):
        return None, "withheld"
    e164 = given if given and given.startswith("+") else None
    e164 = e164 or normalize(given, policy.default_region) or normalize(raw, policy.default_region)
    if policy.is_own_number(raw) or policy.is_own_number(e164):
        return None, "own_number"
    if e164 is None:
        return None, "unreadable"
    return e164, "none"


def is_missed(rec: CallRecord) -> bool:
    return rec.direction == "inbound" and not rec.answered and rec.outcome in MISSED_OUTCOMES


def lead_source(rec: CallRecord) -> LeadSource:
    if is_missed(rec):
        return "missed_call"
    return "inbound_call" if rec.direction == "inbound" else "outbound_call"


def wants_lead(rec: CallRecord, policy: LeadPolicy) -> bool:
    """Whether this call (from/to an unknown outside number) should create a lead."""
    if rec.direction == "internal" or policy.create_on == "never":
        return False
    if rec.outcome == "failed" and (rec.originate_id or (rec.caller and rec.caller in rec.rang)):
        # A click-to-call the rep's phone never took: the number was never dialled, so
        # nobody out there is a prospect yet.  The tracker knows the click by its
        # Originate; a record from the PBX's CDR (no link saw it) only by the rep's own
        # phone being the one that rang, as an Originate rings the rep first.
        return False
    if policy.create_on == "missed_only":
        return is_missed(rec)
    return True


def N_(phrase: str) -> str:
    """Marks generated text for the catalogs (``scripts/i18n extract``); translated by
    ``LeadPolicy.words`` into the install's language when used."""
    return phrase


_KIND = {
    "missed_call": N_("missed call"),
    "inbound_call": N_("inbound call"),
    "outbound_call": N_("outbound call"),
}


def _day_and_time(when: dt.datetime, language: str) -> str:
    """The day and time of a lead name in the install's language: "23 Nov 14:05",
    "23 нояб. 14:05", "11月23日 14:05"."""
    if language == "en":
        return f"{when.day} {when:%b %H:%M}"
    try:
        locale = Locale.parse(language)
        day = locale.datetime_skeletons["MMMd"].pattern
    except (ValueError, KeyError, UnknownLocaleError):
        return f"{when.day} {when:%b %H:%M}"
    return format_datetime(when, f"{day} HH:mm", locale=locale)


def lead_name(e164: str, rec: CallRecord, policy: LeadPolicy) -> str:
    """A name a rep can tell apart in a list: the number, what happened and when, and
    the caller-ID name when the carrier sent a real one."""
    number = format_display(e164, policy.default_region, style="international")
    when = dt.datetime.fromtimestamp(rec.started_at, tz=ZoneInfo(policy.display_tz))
    detail = f"{policy.words(_KIND[lead_source(rec)])}, {_day_and_time(when, policy.language)}"
    name = (rec.caller_name or "").strip() if rec.direction == "inbound" else ""
    if name and not is_withheld(name) and normalize(name, policy.default_region) is None:
        return f"{name} · {number} ({detail})"
    return f"{number} ({detail})"


def new_lead(
    e164: str, rec: CallRecord, policy: LeadPolicy, owner_id: int | None, now: float
) -> Contact:
    raw = (rec.caller_raw or rec.caller or e164) if rec.direction == "inbound" else rec.callee
    return Contact(
        id=None,
        name=lead_name(e164, rec, policy),
        owner_id=owner_id,
        phones=[PhoneNumber(raw=raw or e164, e164=e164, label="")],
        lead=Lead(status="new", source=lead_source(rec), created_at=rec.started_at),
        created_at=now,
        updated_at=now,
    )


def should_reopen(contact: Contact, rec: CallRecord, policy: LeadPolicy) -> bool:
    """A junked lead keeps swallowing calls within the repeat window; after it, a call
    that would make a lead brings it back as ``new`` instead of making a twin."""
    if contact.lead is None or contact.lead.status != "junk" or not wants_lead(rec, policy):
        return False
    last = contact.last_contact_at
    return last is None or rec.started_at - last > policy.repeat_window_seconds


_MADE_NAME = re.compile(
    r"^(?:(?P<name>.+) · )?\+?[\d ()+\-]+ \((?:missed|inbound|outbound) call, [^)]*\)$"
)


def customer_name_suggestion(name: str) -> str:
    """What the convert form offers as the customer's name: a name the ingest made
    ("+44 20 7946 0000 (missed call, 3 Mar 10:12)") is no name, except for the caller-ID
    name it may start with; a name a person typed stays."""
    found = _MADE_NAME.match(name.strip())
    if found is None:
        return name.strip()
    return (found.group("name") or "").strip()
