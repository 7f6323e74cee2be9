"""The domain's refusals in the reader's language.

``crm`` raises ``InvalidInput`` / ``Forbidden`` with an English message fit for a user (it
knows nothing of languages: data flows one way). The pages show that message through
``refusal(exc)``: the known messages are matched here, their values kept, and the
sentence given in the reader's language. A message not listed here is shown as it is, so
a new refusal is readable (in English) before it is translated; the JSON API keeps the
English messages.
"""

from __future__ import annotations

import re

from web import i18n
from web.i18n import N_, gettext

_PATTERNS: list[tuple[str, str]] = [
    # crm/services/
    (r"bad page cursor", N_("bad page cursor")),
    (r"not a phone number: (?P<value>.+)", N_("not a phone number: %(value)s")),
    (r"username: 1-64 letters, digits, \. _ @ -", N_("username: 1-64 letters, digits, . _ @ -")),
    (r"role must be one of (?P<values>.+)", N_("role must be one of %(values)s")),
    (r"password: at least 8 characters", N_("password: at least 8 characters")),
    (r"username (?P<value>.+) is taken", N_("username %(value)s is taken")),
    (
        r"extension (?P<ext>\S+) belongs to another user",
        N_("extension %(ext)s belongs to another user"),
    ),
    (r"extension (?P<ext>\S+): 2-6 digits", N_("extension %(ext)s: 2-6 digits")),
    (
        r"extension (?P<ext>\S+) belongs to (?P<user>\S+)",
        N_("extension %(ext)s belongs to %(user)s"),
    ),
    (r"team name: 1-100 characters", N_("team name: 1-100 characters")),
    (r"team (?P<value>.+) exists", N_("team %(value)s exists")),
    (r"not an e-mail address: (?P<value>.+)", N_("not an e-mail address: %(value)s")),
    (r"a contact needs a name or a number", N_("a contact needs a name or a number")),
    (r"lead status must be one of (?P<values>.+)", N_("lead status must be one of %(values)s")),
    (r"cannot change (?P<fields>.+)", N_("cannot change %(fields)s")),
    (r"choose at least one lead status", N_("choose at least one lead status")),
    (r"lead source must be one of (?P<values>.+)", N_("lead source must be one of %(values)s")),
    (r"cannot merge a contact into itself", N_("cannot merge a contact into itself")),
    (r"this contact is not a lead", N_("this contact is not a lead")),
    (r"outcome must be one of (?P<values>.+)", N_("outcome must be one of %(values)s")),
    (
        r"callback status must be one of (?P<values>.+)",
        N_("callback status must be one of %(values)s"),
    ),
    (r"this call's personal data was erased", N_("this call's personal data was erased")),
    (r"an empty note", N_("an empty note")),
    (r"choose a different user", N_("choose a different user")),
    (r"the new owner must be an active user", N_("the new owner must be an active user")),
    # crm/access.py
    (
        r"owner: only a manager can change the owner of a contact you do not own "
        r"\(shared contacts stay visible to everyone\)",
        N_(
            "owner: only a manager can change the owner of a contact you do not own "
            "(shared contacts stay visible to everyone)"
        ),
    ),
    (
        r"owner: you can share your contact or keep it, not give it to someone else",
        N_("owner: you can share your contact or keep it, not give it to someone else"),
    ),
    (
        r"owner: you can only assign contacts within your own team",
        N_("owner: you can only assign contacts within your own team"),
    ),
    (
        r"merge: these contacts have different owners; a manager can merge them "
        r"\(a merge would move a shared contact's history to one rep\)",
        N_(
            "merge: these contacts have different owners; a manager can merge them "
            "(a merge would move a shared contact's history to one rep)"
        ),
    ),
    # crm/limits.py
    (
        r"(?P<field>[\w ]+): at most (?P<limit>\d+) characters \(got (?P<got>\d+)\)",
        N_("%(field)s: at most %(limit)s characters (got %(got)s)"),
    ),
    (r"tags: at most (?P<limit>\d+)", N_("tags: at most %(limit)s")),
    (r"phones: at most (?P<limit>\d+) numbers", N_("phones: at most %(limit)s numbers")),
    # crm/callback_work.py
    (r"this callback belongs to another rep", N_("this callback belongs to another rep")),
    (r"this callback is already closed", N_("this callback is already closed")),
    (r"snooze: choose a time in the future", N_("snooze: choose a time in the future")),
    (r"snooze: at most (?P<days>\d+) days", N_("snooze: at most %(days)s days")),
    (r"reason: choose one from the list", N_("reason: choose one from the list")),
    (r"result: choose one from the list", N_("result: choose one from the list")),
    (r"follow-up: choose a time in the future", N_("follow-up: choose a time in the future")),
    (
        r"follow-up: this call has no outside number to ring back",
        N_("follow-up: this call has no outside number to ring back"),
    ),
    # crm/wrapup.py
    (r"results: write at least one", N_("results: write at least one")),
    (r"results: at most (?P<limit>\d+)", N_("results: at most %(limit)s")),
    (
        r"results: keep each under (?P<limit>\d+) characters",
        N_("results: keep each under %(limit)s characters"),
    ),
    # crm/handover.py
    (r"only managers and admins hand work over", N_("only managers and admins hand work over")),
    (
        r"choose at least one rep to receive the work",
        N_("choose at least one rep to receive the work"),
    ),
    (r"choose the receiving reps from the list", N_("choose the receiving reps from the list")),
    (
        r"the leaving rep cannot also receive the work",
        N_("the leaving rep cannot also receive the work"),
    ),
    (
        r"choose at most (?P<limit>\d+) receiving reps",
        N_("choose at most %(limit)s receiving reps"),
    ),
    (
        r"(?P<name>.+) is deactivated and cannot receive work",
        N_("%(name)s is deactivated and cannot receive work"),
    ),
    # crm/services/ (notes, lead conversion, search, preferences, teams)
    (
        r"only the author of a note \(or a manager\) can change it",
        N_("only the author of a note (or a manager) can change it"),
    ),
    (r"the customer needs a name", N_("the customer needs a name")),
    (r"this lead is already converted", N_("this lead is already converted")),
    (
        r"type at least (?P<num>\d+) digits of the number",
        N_("type at least %(num)s digits of the number"),
    ),
    (r"choose at least one user", N_("choose at least one user")),
    (r"language: not a language code", N_("language: not a language code")),
    (r"time zone: not a known time zone", N_("time zone: not a known time zone")),
    # crm/queue_settings.py (``label`` is one of its field labels, translated as well)
    (r"(?P<label>[^:]+: [^:]+): a whole number", N_("%(label)s: a whole number")),
    (
        r"(?P<label>[^:]+: [^:]+): from (?P<low>\d+) to (?P<high>\d+)",
        N_("%(label)s: from %(low)s to %(high)s"),
    ),
    (
        r"Callers waiting: red must be at or above amber",
        N_("Callers waiting: red must be at or above amber"),
    ),
    (
        r"Longest wait: red must be at or above amber",
        N_("Longest wait: red must be at or above amber"),
    ),
    (
        r"Service level: red must be at or below amber",
        N_("Service level: red must be at or below amber"),
    ),
    (
        r"queue: a queue name as the PBX knows it \(letters, digits, \. _ - @ \+\)",
        N_("queue: a queue name as the PBX knows it (letters, digits, . _ - @ +)"),
    ),
    (r"the default settings cannot be removed", N_("the default settings cannot be removed")),
    # crm/reports.py, crm/tokens.py
    (r"the period must end after it starts", N_("the period must end after it starts")),
    (r"token name: 1-100 characters", N_("token name: 1-100 characters")),
    (r"token expiry: must be in the future", N_("token expiry: must be in the future")),
]
_COMPILED = [(re.compile(pattern), msgid) for pattern, msgid in _PATTERNS]


def translate(message: str) -> str:
    """An English refusal from the domain in the reader's language (as it is if unknown)."""
    if not message or i18n.CURRENT_LANGUAGE.get() == i18n.SOURCE_LANGUAGE:
        return message
    for pattern, msgid in _COMPILED:
        match = pattern.fullmatch(message)
        if match:
            values = match.groupdict()
            if "label" in values:  # a field label the web layer also shows: its words
                values["label"] = gettext(values["label"])
            return gettext(msgid, **values) if values else gettext(msgid)
    return gettext(message)  # a message the web layer itself marked


def refusal(exc: BaseException) -> str:
    """What to show for a refused input: the exception's message, in the reader's words."""
    text = str(exc)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]  # a KeyError's repr
    return translate(text)
