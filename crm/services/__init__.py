"""The operations the web UI calls.  Each one validates its input, runs in one store
transaction where it touches more than one row, and leaves an audit entry where a
manager would later ask "who did that?".

Bad input raises ``InvalidInput`` (a ValueError) with a message fit to show the user,
and changes nothing.

``CrmService`` is the one object the web layer holds; each area it is made of lives in a
module of its own (``users``, ``teams``, ``contacts``, ``leads``, ``calls``, ``notes``,
``callbacks`` here, reports, queues, tokens, recordings, settings and handover beside
them in ``crm/``), all standing on ``core.ServiceCore`` (store, policy, clock, audit).
"""

from __future__ import annotations

from ..access import Scope
from ..admin_settings import SettingsServices
from ..catalogue import RecordingServices
from ..errors import Forbidden, InvalidInput, NotFound
from ..handover import HandoverServices
from ..queue_settings import QueueSettingsServices
from ..queue_stats import QueueStatsServices
from ..reports import ReportServices
from ..tokens import TokenServices
from .callbacks import CallbackServices
from .calls import decode_cursor, encode_cursor
from .leads import OPEN_LEAD_STATUSES, UNSET, LeadServices, Unset
from .notes import NoteServices
from .users import UserServices

__all__ = [
    "OPEN_LEAD_STATUSES",
    "UNSET",
    "CrmService",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "Scope",
    "Unset",
    "decode_cursor",
    "encode_cursor",
]


class CrmService(
    UserServices, LeadServices, NoteServices, CallbackServices, ReportServices,
    QueueStatsServices, QueueSettingsServices, TokenServices, RecordingServices,
    SettingsServices, HandoverServices
):
    """Every operation of the UI and the API, one object (built with the store, the lead
    policy and the clock: ``core.ServiceCore``)."""
