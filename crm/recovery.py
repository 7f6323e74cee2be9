"""Calls a dead consumer left behind: written as incomplete records, never lost.

When the process running a PBX link dies, the one taking the link over starts with an
empty tracker and learns of the calls still up from the PBX's channel list
(CoreShowChannels).  A call that ended in between is on no list; the only trace of it is
the ``live_calls`` row the ingest kept.  ``finish_orphans`` turns every such row whose
call is no longer on the PBX into a ``CallRecord`` with ``complete=False`` and what was
known (who rang, who answered, when), through the normal ingest so leads, callbacks and
events follow.  Calls still up are left alone: the tracker finishes them and the record
lands once, keyed by its linkedid.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from ami_bridge.facts import CallProgress, CallRecord

from .eventjson import from_jsonable
from .ingest import Ingest
from .models import LiveCallRow

log = logging.getLogger(__name__)


def orphan_record(row: LiveCallRow) -> CallRecord | None:
    """The record a kept snapshot stands for (None if the snapshot is unreadable)."""
    snap = row.snapshot
    try:
        p: CallProgress = from_jsonable(CallProgress, snap["progress"])
    except (KeyError, TypeError, ValueError):
        return None
    started = float(snap.get("started_at") or p.at)
    answered_at = snap.get("answered_at")
    answered = p.answered_by is not None or answered_at is not None
    ended = max(p.at, started)
    unanswered = "missed" if p.direction == "inbound" else "no_answer"
    outcome = "answered" if answered else unanswered
    ring_end = float(answered_at) if answered_at is not None else ended
    rang = tuple(snap.get("rung") or p.ringing)
    # Alike in shape to HoldingSink.status and every CallRecord built: all fields named.
    return CallRecord(
        linkedid=row.linkedid,
        direction=p.direction,
        caller=p.caller,
        caller_raw=p.caller,
        caller_name=p.caller_name,
        callee=p.callee,
        callee_e164=p.callee if p.callee and p.callee.startswith("+") else None,
        did=p.did,
        rang=rang,
        answered=answered,
        answered_by=p.answered_by,
        final_agent=p.agent or p.answered_by,  # a transfer may have handed it on
        transfers=(),
        outcome=outcome,  # type: ignore[arg-type]
        hangup_by=None,
        started_at=started,
        answered_at=float(answered_at) if answered_at is not None else None,
        ended_at=ended,
        ring_seconds=max(0.0, ring_end - started),
        talk_seconds=max(0.0, ended - ring_end) if answered else 0.0,
        recordings=(),
        originate_id=p.originate_id,
        complete=False,
    )


async def finish_orphans(ingest: Ingest, still_live: Collection[str]) -> list[str]:
    """Write the kept calls of ``ingest``'s link that are not in ``still_live`` (the
    linkedids the PBX listed); returns the linkedids written."""
    written: list[str] = []
    store = ingest.store
    link = ingest.pbx_link_id
    for row in await store.live_calls_for_link(link):
        if row.linkedid in still_live:
            continue
        if await store.get_call_by_linkedid(row.linkedid, link) is not None:
            await store.delete_live_call(row.linkedid, link)  # landed after all
            continue
        rec = orphan_record(row)
        if rec is None:
            log.warning("call %s: unreadable snapshot dropped", row.linkedid)
            await store.delete_live_call(row.linkedid, link)
            continue
        await ingest.record(rec)
        await store.delete_live_call(row.linkedid, link)
        written.append(row.linkedid)
    if written:
        log.warning("%d call(s) ended while nobody held the link; written as incomplete",
                    len(written))  # fmt: skip
    return written
