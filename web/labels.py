"""Words for the domain's code values (an outcome, a direction, a status, a role) as the
reader sees them: the stored value never changes, its label follows the reader's language.

Templates write ``{{ call.outcome|label }}``; an unknown value is shown as it is, with
underscores as spaces, so a new value is readable before it has a label here.
"""

from __future__ import annotations

from web.i18n import N_, gettext

LABELS: dict[str, str] = {
    # call directions
    "inbound": N_("inbound"),
    "outbound": N_("outbound"),
    "internal": N_("internal"),
    # call outcomes
    "answered": N_("answered"),
    "missed": N_("missed"),
    "abandoned": N_("abandoned"),
    "busy": N_("busy"),
    "no_answer": N_("no answer"),
    "failed": N_("failed"),
    "declined": N_("declined"),
    "voicemail": N_("voicemail"),
    "congestion": N_("congestion"),
    "unknown": N_("unknown"),
    # lead statuses and sources
    "open": N_("open"),
    "new": N_("new"),
    "contacted": N_("contacted"),
    "qualified": N_("qualified"),
    "converted": N_("converted"),
    "junk": N_("junk"),
    "inbound_call": N_("inbound call"),
    "missed_call": N_("missed call"),
    "outbound_call": N_("outbound call"),
    "manual": N_("entered by hand"),
    "import": N_("import"),
    "all": N_("all"),
    # callbacks
    "closed": N_("closed"),
    # roles
    "rep": N_("rep"),
    "manager": N_("manager"),
    "admin": N_("admin"),
    # recordings
    "pending": N_("pending"),
    "ready": N_("ready"),
    "missing": N_("missing"),
    "corrupt": N_("corrupt"),
    "deleted": N_("deleted"),
    # PBX link states
    "connected": N_("connected"),
    "connecting": N_("connecting"),
    "disconnected": N_("disconnected"),
    "authenticating": N_("authenticating"),
    "auth_failed": N_("login refused"),
    "stopped": N_("stopped"),
    # click-to-call progress
    "ringing_you": N_("ringing your phone"),
    "dialling": N_("dialling"),
    "connected_call": N_("connected"),
    "ended": N_("ended"),
    "ringing": N_("ringing"),
    # lead policy
    "every_call": N_("every call from an unknown number"),
    "missed_only": N_("missed calls from unknown numbers only"),
    "never": N_("never"),
    # token scopes
    "full": N_("read and change"),
    "read": N_("read only"),
}


PHRASES: tuple[str, ...] = (
    # click-to-call failure reasons as crm/clicktocall.py words them (shown in the toast)
    N_("your phone did not answer"),
    N_("the number did not answer"),
    N_("number unreachable"),
    N_("busy"),
    N_(
        "the PBX refused: the CRM's AMI user has no permission to originate calls "
        "(an admin must add originate to its write= permissions)"
    ),
    N_("PBX link down"),
)
"""Fixed English phrases the domain sends to the browser; the page gives the browser
their translations (``phrases`` in ``#crm-i18n``)."""


def label(value: object) -> str:
    """The reader's word for a code value."""
    if value is None:
        return ""
    key = str(value)
    known = LABELS.get(key)
    return gettext(known) if known else key.replace("_", " ")
