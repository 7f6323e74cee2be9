"""Words the pages show for their own keys (a rep's state on the board, what came of a
callback attempt, a queue setting's label...): one table of msgids, given in the reader's
language by ``words(kind)`` when a page is rendered (never at import: the language is the
request's).
"""

from __future__ import annotations

from web.i18n import N_, gettext

WORDS: dict[str, dict[str, str]] = {
    # A rep's state on the board (and a live call's direction there).
    "rep_state": {
        "available": N_("Available"),
        "ringing": N_("Ringing"),
        "on_call": N_("On a call"),
        "on_hold": N_("On hold"),
        "paused": N_("Paused"),
        "wrapup": N_("Wrap-up"),
        "offline": N_("Offline"),
        "inbound": N_("in"),
        "outbound": N_("out"),
        "internal": N_("internal"),
    },
    # What board.js writes on the page (it has no catalog) besides the states.
    "board_js": {
        "waiting": N_("waiting"),
        "withheld": N_("withheld"),
        "pause": N_("Pause"),
        "unpause": N_("Unpause"),
        "reason": N_("Reason"),
        "pause_reason": N_("Pause reason"),
        "add": N_("Add"),
        "remove": N_("Remove from %(queue)s"),
        "ext": N_("ext %(ext)s"),
        # board.js fills in the number
        "other_teams": N_("Members of other teams: %(num)s"),
        "longest": N_("longest"),
        "longest_wait": N_("longest wait"),
        "failed": N_("The request failed; nothing was changed."),
    },
    # What came of a callback attempt (``crm.models.ATTEMPT_RESULTS``).
    "attempt": {
        "no_answer": N_("No answer"),
        "left_message": N_("Left a message"),
        "reached": N_("Reached"),
        "wrong_number": N_("Wrong number"),
    },
    # Why a callback was closed (``crm.callback_work.CLOSE_REASONS``).
    "close_reason": {
        "reached": N_("Reached"),
        "wrong_number": N_("Wrong number"),
        "not_needed": N_("Not needed any more"),
        "duplicate": N_("Duplicate"),
        "other": N_("Other"),
        "called_back": N_("Called back"),
    },
    # The queue settings form's field labels (``crm.queue_settings.FIELDS``).
    "queue_field": {
        "service_level_seconds": N_("Service level: answered within"),
        "short_abandon_seconds": N_("Short abandon: hung up within"),
        "waiting_amber": N_("Callers waiting: amber from"),
        "waiting_red": N_("Callers waiting: red from"),
        "longest_wait_amber": N_("Longest wait: amber from"),
        "longest_wait_red": N_("Longest wait: red from"),
        "service_level_amber": N_("Service level: amber at or below"),
        "service_level_red": N_("Service level: red at or below"),
    },
    # What the queue settings page says after a save or a reset.
    "queue_notice": {
        "saved": N_("Queue settings saved."),
        "reset": N_("The queue uses the default settings again."),
    },
}


def words(kind: str) -> dict[str, str]:
    """The table ``kind`` of ``WORDS`` in the reader's language."""
    return {key: gettext(msgid) for key, msgid in WORDS[kind].items()}
