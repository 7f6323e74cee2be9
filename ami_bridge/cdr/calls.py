"""CDR rows into calls, as Asterisk groups them, and each call's facts (``CallRecord``,
``source="cdr"``) with the tracker's number rules."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..facts import CallRecord, Direction, HangupBy, Outcome
from ..numbers import is_withheld, to_e164
from ..profile import PbxProfile
from ..tracker.model import split_channel_name, uniqueid_order
from .rows import CdrRow

_CLID = re.compile(r'^\s*"?(?P<name>.*?)"?\s*<(?P<num>[^>]*)>\s*$')
# Seconds two rows' lifetimes may be apart and still be the same channel (whole-second
# CDR times); beyond it a channel name seen again belongs to another call (the PBX
# restarted and its counters began anew).
_SAME_CHANNEL_SLACK = 2.0


def _channel_key(name: str) -> str:
    """Both halves of a Local pair are one node: ``Local/x@ctx-0001;1`` and ``;2``."""
    name = name.strip()
    if name.startswith("Local/") and name[-2:] in (";1", ";2"):
        return name[:-2]
    return name


class _Groups:
    """Union-find over row indexes."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def group_rows(rows: Sequence[CdrRow]) -> list[list[CdrRow]]:
    """Rows into calls, as Asterisk groups them: by ``linkedid`` when the rows carry it,
    else by party-A uniqueid, joined through the channels rows share (transfers, Local
    pairs) while those channels lived at the same time.  Rows keep their order."""
    groups = _Groups(len(rows))
    first_by_key: dict[str, int] = {}
    for i, row in enumerate(rows):
        key = row.linkedid or row.uniqueid
        if key in first_by_key:
            groups.union(first_by_key[key], i)
        else:
            first_by_key[key] = i
    if not all(r.linkedid for r in rows):
        by_channel: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            for name in {_channel_key(row.channel), _channel_key(row.dstchannel)}:
                if name:
                    by_channel.setdefault(name, []).append(i)
        for members in by_channel.values():
            for a_pos, a in enumerate(members):
                for b in members[a_pos + 1 :]:
                    ra, rb = rows[a], rows[b]
                    if (
                        ra.start <= rb.end + _SAME_CHANNEL_SLACK
                        and rb.start <= ra.end + _SAME_CHANNEL_SLACK
                    ):
                        groups.union(a, b)
    out: dict[int, list[CdrRow]] = {}
    for i, row in enumerate(rows):
        out.setdefault(groups.find(i), []).append(row)
    return list(out.values())


def _clid_name(clid: str) -> str | None:
    m = _CLID.match(clid)
    if m is None:
        return None
    name = m.group("name").strip()
    return name or None


def _app_timeout(row: CdrRow) -> float | None:
    """How long the row's application rings before giving up: Dial(targets,timeout,...)
    or Queue(name,options,URL,announce,timeout,...); None when it does not say."""
    index = {"Dial": 1, "Queue": 4}.get(row.lastapp)
    parts = row.lastdata.split(",")
    if index is None or len(parts) <= index:
        return None
    try:
        return float(parts[index])
    except ValueError:
        return None


class CdrCalls:
    """Turns CDR rows into ``CallRecord``s with one PBX's number rules (the tracker's
    ``PbxProfile``: trunks, extension pattern, own numbers)."""

    def __init__(self, profile: PbxProfile | None = None) -> None:
        self.profile = profile or PbxProfile()

    # -- who is who

    def _endpoint(self, channel: str) -> tuple[str, str]:
        tech, resource, _base = split_channel_name(channel) if channel else ("", "", "")
        return tech, resource

    def _is_trunk(self, channel: str, context: str = "") -> bool:
        tech, resource = self._endpoint(channel)
        if not channel or tech == "Local":
            return False
        return self.profile.is_trunk(resource, context)

    def _extension(self, channel: str, cid: str = "") -> str | None:
        tech, resource = self._endpoint(channel)
        if not channel or tech == "Local" or self._is_trunk(channel):
            return None
        mapped = self.profile.extension_map.get(resource)
        if mapped:
            return mapped
        for candidate in (resource, cid):
            if self.profile.is_extension(candidate):
                return candidate
        return None

    def _real_party(self, channel: str, rows: Sequence[CdrRow]) -> str:
        """A Local channel stands for whoever its other half dialled (queue members,
        follow-me): that channel, else the Local channel itself."""
        if not channel.startswith("Local/"):
            return channel
        key = _channel_key(channel)
        for row in rows:
            if (
                _channel_key(row.channel) == key
                and row.channel != channel
                and row.dstchannel
                and not row.dstchannel.startswith("Local/")
            ):
                return row.dstchannel
        return channel

    # -- one call

    def record(self, rows: Sequence[CdrRow]) -> CallRecord | None:
        """The call ``rows`` (one group of ``group_rows``) stand for."""
        if not rows:
            return None
        profile = self.profile
        linkedid = next((r.linkedid for r in rows if r.linkedid), "") or min(
            (r.uniqueid for r in rows), key=uniqueid_order
        )
        main = [r for r in rows if r.uniqueid == linkedid] or [
            r for r in rows if r.uniqueid == min((x.uniqueid for x in rows), key=uniqueid_order)
        ]
        first = main[0]
        a_channel = first.channel
        if a_channel.startswith("Local/"):  # an Originate into a Local channel
            a_channel = self._real_party(a_channel, rows)
        dials_out = any(self._is_trunk(self._real_party(r.dstchannel, rows)) for r in rows)
        dials_number = bool(first.dst) and first.dst != "s" and not profile.is_extension(first.dst)
        direction: Direction
        if self._is_trunk(a_channel, first.dcontext):
            direction = "inbound"
        elif dials_out or dials_number:
            direction = "outbound"
        else:
            direction = "internal"

        legs = [
            r for r in rows if r.dstchannel and r.lastapp not in ("Hangup", "Busy", "Congestion")
        ]
        answered_rows = [r for r in legs if r.disposition == "ANSWERED" and r.answer is not None]
        answered_rows.sort(key=lambda r: (r.answer or 0.0, r.start))
        answering = answered_rows[0] if answered_rows else None

        # The parties.
        name = _clid_name(first.clid)
        if direction == "inbound":
            raw = first.src or None
            caller = None
            if not is_withheld(raw):
                caller = to_e164(raw, profile.default_region, profile.intl_prefixes) or raw
            dsts = [r.dst for r in main if r.dst and r.dst != "s"]
            did = next((d for d in dsts if d in profile.own_numbers), None)
            did = did or next((d for d in dsts if not profile.is_extension(d)), None)
            did = did or (dsts[0] if dsts else None)
            callee = did
        else:
            raw = first.src or None
            caller = self._extension(a_channel, first.src) or raw
            callee = first.dst if first.dst and first.dst != "s" else None
            did = None

        rang: list[str] = []
        for r in sorted(legs, key=lambda r: r.start):  # in the order they were dialled
            ext = self._extension(self._real_party(r.dstchannel, rows))
            if ext and ext not in rang and (direction != "internal" or ext != caller):
                rang.append(ext)

        answered_by: str | None = None
        agents: list[str] = []
        for r in answered_rows:
            ext = self._extension(self._real_party(r.dstchannel, rows))
            if ext and ext not in agents:
                agents.append(ext)
        if answering is not None:
            party = self._real_party(answering.dstchannel, rows)
            if direction == "outbound" and self._is_trunk(party):
                answered_by = callee
            else:
                answered_by = self._extension(party) or callee
        if direction == "outbound":
            final_agent = caller if answering is not None and caller else None
        else:
            final_agent = agents[-1] if agents else None

        outcome, hangup_by = self._outcome(direction, rows, legs, answering)

        started_at = min(r.start for r in rows)
        ended_at = max(r.end for r in rows)
        answered_at = None
        ring = 0.0
        if answering is not None and answering.answer is not None:
            # A queue (or an IVR) answered the caller first: the leg's own answer time is
            # the caller's; the member picked up when the leg's billing began.
            billed_from = answering.end - answering.billsec
            answered_at = max(answering.answer, billed_from if answering.billsec else 0.0)
            if answering.start <= started_at:  # the leg began with the call: its figures
                ring = max(0.0, float(answering.duration - answering.billsec))
            else:
                ring = max(0.0, answered_at - started_at)
        if answering is not None and answered_at is not None:
            if len(answered_rows) == 1:
                talk = float(answering.billsec)
            else:
                talk = max(0.0, ended_at - answered_at)
        else:  # rang until the last leg stopped ringing
            ring = max((r.end - started_at for r in legs), default=0.0)
            talk = 0.0
        ended_at = max(ended_at, answered_at or started_at)
        span = ended_at - started_at
        recordings: list[str] = []
        for r in rows:
            for part in r.userfield.split(";"):
                file = part.strip().rsplit("/", 1)[-1]
                if file and "." in file and file not in recordings:
                    recordings.append(file)
        queue = next((r.lastdata.split(",")[0] or None for r in rows if r.lastapp == "Queue"), None)
        cause = None
        for r in rows:
            if r.lastapp == "Hangup" and r.lastdata.strip().isdigit():
                cause = int(r.lastdata.strip())
        callee_e164 = None
        if callee and not profile.is_extension(callee):
            callee_e164 = to_e164(callee, profile.default_region, profile.intl_prefixes)
        return CallRecord(
            linkedid=linkedid,
            direction=direction,
            caller=caller,
            caller_raw=raw,
            caller_name=name,
            callee=callee,
            callee_e164=callee_e164,
            did=did,
            rang=tuple(rang),
            answered=answering is not None,
            answered_by=answered_by,
            final_agent=final_agent,
            transfers=(),
            outcome=outcome,
            hangup_by=hangup_by,
            started_at=started_at,
            answered_at=answered_at,
            ended_at=ended_at,
            ring_seconds=min(ring, span),
            talk_seconds=min(talk, span),
            recordings=tuple(recordings),
            originate_id=None,
            queue=queue,
            hangup_cause=cause,
            complete=True,
            uniqueids=tuple(sorted({r.uniqueid for r in rows}, key=uniqueid_order)),
            source="cdr",
        )

    def _outcome(
        self,
        direction: Direction,
        rows: Sequence[CdrRow],
        legs: Sequence[CdrRow],
        answering: CdrRow | None,
    ) -> tuple[Outcome, HangupBy | None]:
        """How the call ended, as well as CDR can tell.

        Inbound, nobody answered: the PBX giving up shows as a ``Hangup``/``Busy``/
        ``Congestion`` row, or as legs that rang for the whole Dial timeout (missed); legs
        that stopped sooner mean the caller hung up while ringing (abandoned), and so
        does a caller who left a queue.
        """
        if answering is not None:
            return "answered", None
        dispositions = {r.disposition for r in legs}
        pbx_ended = any(r.lastapp in ("Hangup", "Busy", "Congestion") for r in rows)
        waited = max(r.end for r in rows) - min(r.start for r in rows)
        timed_out = any(
            (t := _app_timeout(r)) is not None
            and (r.duration if r.lastapp == "Dial" else waited) >= t - 1
            for r in legs
        )
        if direction == "inbound":
            if legs and dispositions <= {"BUSY"}:
                return "busy", "callee"
            if pbx_ended or timed_out:
                return "missed", "pbx"
            if not legs and any(r.lastapp == "Queue" for r in rows):
                return "abandoned", "caller"
            if legs:
                return "abandoned", "caller"
            return "missed", "pbx"
        if legs and dispositions <= {"BUSY"}:
            return "busy", "callee"
        if legs and dispositions <= {"FAILED", "CONGESTION"}:
            return "failed", "pbx"
        if not legs and any(r.disposition in ("FAILED", "CONGESTION") for r in rows):
            return "failed", "pbx"
        if timed_out:
            return "no_answer", "pbx"
        return "no_answer", "caller" if legs else None

    def calls(self, rows: Sequence[CdrRow]) -> list[CallRecord]:
        """Every call among ``rows``, in the order they ended (a row read twice, from
        two sources, counts once)."""
        rows = list(dict.fromkeys(rows))
        out = [rec for group in group_rows(rows) if (rec := self.record(group)) is not None]
        out.sort(key=lambda r: (r.ended_at, uniqueid_order(r.linkedid)))
        return out
