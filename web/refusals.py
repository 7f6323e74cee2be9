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

_SLOTS: dict[str, str] = {
    "value": r".+", "values": r".+", "fields": r".+", "name": r".+",
    "ext": r"\S+", "user": r"\S+", "field": r"[\w ]+", "label": r"[^:]+: [^:]+",
    "limit": r"\d+", "got": r"\d+", "days": r"\d+", "num": r"\d+", "low": r"\d+", "high": r"\d+",
}  # fmt: skip
"""What each ``%(name)s`` of a refusal stands for in the domain's English message."""

_MESSAGES: list[str] = [
    # crm/services/
    N_("bad page cursor"),
    N_("not a phone number: %(value)s"),
    N_("username: 1-64 letters, digits, . _ @ -"),
    N_("role must be one of %(values)s"),
    N_("password: at least 8 characters"),
    N_("username %(value)s is taken"),
    N_("extension %(ext)s belongs to another user"),
    N_("extension %(ext)s: 2-6 digits"),
    N_("extension %(ext)s belongs to %(user)s"),
    N_("team name: 1-100 characters"),
    N_("team %(value)s exists"),
    N_("not an e-mail address: %(value)s"),
    N_("a contact needs a name or a number"),
    N_("lead status must be one of %(values)s"),
    N_("cannot change %(fields)s"),
    N_("choose at least one lead status"),
    N_("lead source must be one of %(values)s"),
    N_("cannot merge a contact into itself"),
    N_("this contact is not a lead"),
    N_("outcome must be one of %(values)s"),
    N_("callback status must be one of %(values)s"),
    N_("this call's personal data was erased"),
    N_("an empty note"),
    N_("choose a different user"),
    N_("the new owner must be an active user"),
    # crm/access.py
    N_(
        "owner: only a manager can change the owner of a contact you "
        "do not own (shared contacts stay visible to everyone)"
    ),
    N_("owner: you can share your contact or keep it, not give it to someone else"),
    N_("owner: you can only assign contacts within your own team"),
    N_(
        "merge: these contacts have different owners; a manager can merge "
        "them (a merge would move a shared contact's history to one rep)"
    ),
    # crm/limits.py
    N_("%(field)s: at most %(limit)s characters (got %(got)s)"),
    N_("tags: at most %(limit)s"),
    N_("phones: at most %(limit)s numbers"),
    # crm/callback_work.py
    N_("this callback belongs to another rep"),
    N_("this callback is already closed"),
    N_("snooze: choose a time in the future"),
    N_("snooze: at most %(days)s days"),
    N_("reason: choose one from the list"),
    N_("result: choose one from the list"),
    N_("follow-up: choose a time in the future"),
    N_("follow-up: this call has no outside number to ring back"),
    # crm/wrapup.py
    N_("results: write at least one"),
    N_("results: at most %(limit)s"),
    N_("results: keep each under %(limit)s characters"),
    # crm/handover.py
    N_("only managers and admins hand work over"),
    N_("choose at least one rep to receive the work"),
    N_("choose the receiving reps from the list"),
    N_("the leaving rep cannot also receive the work"),
    N_("choose at most %(limit)s receiving reps"),
    N_("%(name)s is deactivated and cannot receive work"),
    # crm/services/ (notes, lead conversion, search, preferences, teams)
    N_("only the author of a note (or a manager) can change it"),
    N_("the customer needs a name"),
    N_("this lead is already converted"),
    N_("type at least %(num)s digits of the number"),
    N_("choose at least one user"),
    N_("language: not a language code"),
    N_("time zone: not a known time zone"),
    # crm/queue_settings.py (``label`` is one of its field labels, translated as well)
    N_("%(label)s: a whole number"),
    N_("%(label)s: from %(low)s to %(high)s"),
    N_("Callers waiting: red must be at or above amber"),
    N_("Longest wait: red must be at or above amber"),
    N_("Service level: red must be at or below amber"),
    N_("queue: a queue name as the PBX knows it (letters, digits, . _ - @ +)"),
    N_("the default settings cannot be removed"),
    # crm/reports.py, crm/tokens.py
    N_("the period must end after it starts"),
    N_("token name: 1-100 characters"),
    N_("token expiry: must be in the future"),
]
"""The domain's refusals, most specific first where two could match the same message."""


def _pattern(msgid: str) -> re.Pattern[str]:
    """The English message as a pattern: its words as they are, each value a named group."""
    parts = re.split(r"%\((\w+)\)s", msgid)
    return re.compile("".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>{_SLOTS[part]})"
        for i, part in enumerate(parts)
    ))  # fmt: skip


_COMPILED = [(_pattern(msgid), msgid) for msgid in _MESSAGES]


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
