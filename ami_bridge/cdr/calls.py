"""CDR rows into calls, as Asterisk groups them, and each call's facts (``CallRecord``,
``source="cdr"``) with the tracker's number rules."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..dialrules import clicked_number
from ..facts import CallRecord, Direction, HangupBy, Outcome
from ..numbers import is_withheld
from ..profile import PbxProfile
from ..tracker.model import split_channel_name, uniqueid_order
from ..tracker.summary import unconnected_originate
from .rows import CdrRow

_CLID = re.compile(r'^\s*"?(?P<name>.*?)"?\s*<(?P<num>[^>]*)>\s*$')
# Seconds two rows' lifetimes may be apart and still be the same channel (whole-second
# CDR times); beyond it a channel name seen again belongs to another call (the PBX
# restarted and its counters began anew).
_SAME_CHANNEL_SLACK = 2.0
# Seconds by which a leg must have stopped ringing before the rest of its call for the
# phone to have turned the call down itself (CDR times are whole seconds).
_EARLY = 1.0
# Dispositions of a leg whose phone never rang: the tracker does not count them as rung.
_NOT_RUNG = frozenset({"BUSY", "FAILED", "CONGESTION"})
# Applications that end a call from the dialplan (after a Dial gave up).
_PBX_ENDS = ("Hangup", "Busy", "Congestion")
# An Originate's own channel runs no dialplan until it answers; until then its CDR shows
# the dummy application Asterisk gives it (``AppDial2`` "(Outgoing Line)", ``AppDial``
# before Asterisk 12) and dst ``s``.
_ORIGINATE_APPS = ("AppDial", "AppDial2")
_NUMBER = re.compile(r"\+?\d{3,}")


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


def _clid_number(clid: str) -> str | None:
    m = _CLID.match(clid)
    return (m.group("num").strip() or None) if m is not None else None


def _ring_stop(row: CdrRow) -> float:
    """When the leg stopped ringing: its answer (a queue leg's billing start: the PBX
    answered the caller before the member), else its end."""
    if row.disposition == "ANSWERED" and row.answer is not None:
        return max(row.answer, row.end - row.billsec if row.billsec else row.answer)
    return row.end


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

    def _outside_number(self, trunk_channel: str, rows: Sequence[CdrRow]) -> str | None:
        """The number a leg sent out to ``trunk_channel``: as its Dial data names it (the
        target through that trunk), else the row's dst (what was dialled in the outbound
        context; for a DID forwarded out, dst is the DID, so the Dial data comes first)."""
        _tech, endpoint = self._endpoint(trunk_channel)
        for row in rows:
            if row.dstchannel != trunk_channel:
                continue
            targets = [t.split("/", 1)[-1] for t in row.lastdata.split(",")[0].split("&")]
            targets.sort(key=lambda t: endpoint not in t)  # the target through this trunk
            for target in targets:
                numbers = _NUMBER.findall(target)
                if numbers:
                    return max(numbers, key=len)
            if row.dst and row.dst != "s":
                return row.dst
        return None

    def _party(self, row: CdrRow, rows: Sequence[CdrRow]) -> str | None:
        """Who took ``row``'s leg, named as the tracker names parties: a rep by extension,
        an outside party (a call sent out through a trunk) in E.164."""
        party = self._real_party(row.dstchannel, rows)
        if self._is_trunk(party):
            number = self._outside_number(party, rows)
            if number is None:
                return None
            return self.profile.e164(number)
        return self._extension(party)

    def _did(self, main: Sequence[CdrRow], rows: Sequence[CdrRow]) -> str | None:
        """The number the carrier called, from the party-A rows that still hold it.

        Asterisk keeps a party-A row's dst/dcontext in step with the channel's place in
        the dialplan until the row is written: a blind transfer sends the caller to the
        target's extension (in the transferer's context), so every row still open then
        names the target, not the DID (a ring-group leg that ended before keeps it).  A row
        in a carriers' context (``trunk_contexts``) has the number as delivered; without
        one, a dst that some leg of the caller dialled (a transfer target, an extension
        or a number sent out) is no DID.  None when no row kept it."""
        profile = self.profile
        placed = [r for r in main if r.dst and r.dst != "s"]
        arrived = [r for r in placed if r.dcontext in profile.trunk_contexts]
        if not arrived:
            dialled = {p for r in main if r.dstchannel and (p := self._dialled(r, rows))}
            arrived = [r for r in placed if r.dst not in dialled]
        dsts = [r.dst for r in arrived]
        did = next((d for d in dsts if d in profile.own_numbers), None)
        did = did or next((d for d in dsts if not profile.is_extension(d)), None)
        return did or (dsts[0] if dsts else None)

    def _dialled(self, row: CdrRow, rows: Sequence[CdrRow]) -> str | None:
        """What ``row``'s leg dialled: the extension it rang, or the number it sent out."""
        party = self._real_party(row.dstchannel, rows)
        if self._is_trunk(party):
            return self._outside_number(party, rows)
        return self._extension(party)

    def _refused(self, leg: CdrRow, rows: Sequence[CdrRow]) -> bool:
        """The phone turned the call down (SIP 403/603; the tracker's "declined"): its leg
        ended unanswered while another phone of the call still rang well after it, or its
        Dial gave up before its timeout and the dialplan went on (the caller was still
        there: a ``Hangup`` row or another leg followed).  A caller hanging up ends every
        leg at once and nothing follows; ring-group legs that lose the race end when the
        winner answers; legs that time out ring for the whole timeout."""
        if leg.disposition != "NO ANSWER" or leg.lastapp != "Dial" or leg.answer is not None:
            return False
        stopped = leg.end + _EARLY
        for other in rows:
            if other is leg or not other.dstchannel or other.lastapp in _PBX_ENDS:
                continue
            if other.start <= leg.end and _ring_stop(other) > stopped:
                return True
        same_dial = [
            r for r in rows
            if r.uniqueid == leg.uniqueid and r.lastdata == leg.lastdata
            and abs(r.start - leg.start) <= _EARLY
        ]  # fmt: skip
        if any(r.disposition == "ANSWERED" for r in same_dial):
            return False  # the Dial was answered: what follows is not the dialplan going on
        timeout = _app_timeout(leg)
        if timeout is not None and leg.duration >= timeout - _EARLY:
            return False
        return any(
            r.uniqueid == leg.uniqueid
            and r is not leg
            and (r.lastapp in _PBX_ENDS or (r.dstchannel and r.start >= stopped))
            for r in rows
        )

    def _unanswered_originate(self, rows: Sequence[CdrRow], linkedid: str) -> CallRecord | None:
        """A click-to-call the rep's own phone never took: the Originate's channel is the
        only party and its row still shows the dummy application (no dialplan ran), so
        nothing was dialled.  ``failed`` as the tracker has it (``busy`` if the rep's phone
        was busy): "no answer" would read as "the customer did not answer".  The number
        clicked is known only from the CallerID the CRM's Originate sets."""
        row = rows[0]
        if not all(
            r.lastapp in _ORIGINATE_APPS and not r.dstchannel and r.answer is None
            and r.dst in ("", "s")
            for r in rows
        ) or len({r.uniqueid for r in rows}) != 1:  # fmt: skip
            return None
        if self._is_trunk(row.channel, row.dcontext):
            return None
        profile = self.profile
        _tech, resource = self._endpoint(row.channel)
        caller = self._extension(row.channel) or resource or None
        callee = clicked_number(_clid_name(row.clid), _clid_number(row.clid))
        busy = row.disposition == "BUSY"
        rang_out = row.disposition == "NO ANSWER"
        # No caller_raw: the row's src is the Originate's CallerID, not the rep.
        return unconnected_originate(
            profile,
            linkedid=linkedid,
            caller=caller,
            callee=callee,
            outcome="busy" if busy else "failed",
            hangup_by="callee" if busy else "pbx",
            started_at=min(r.start for r in rows),
            ended_at=max(r.end for r in rows),
            rang=(caller,) if caller and rang_out else (),
            ring_seconds=float(row.duration) if rang_out else 0.0,
            complete=True,
            uniqueids=(row.uniqueid,),
            source="cdr",
        )

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
        if (failed_click := self._unanswered_originate(rows, linkedid)) is not None:
            return failed_click
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

        legs = [r for r in rows if r.dstchannel and r.lastapp not in _PBX_ENDS]
        answered_rows = [r for r in legs if r.disposition == "ANSWERED" and r.answer is not None]
        answered_rows.sort(key=lambda r: (r.answer or 0.0, r.start))
        answering = answered_rows[0] if answered_rows else None

        # The parties.
        name = _clid_name(first.clid)
        click = False
        if direction == "inbound":
            raw = first.src or None
            caller = None
            if not is_withheld(raw):
                caller = profile.e164(raw)
            did = self._did(main, rows)
            callee = did
        else:
            raw = first.src or None
            caller = self._extension(a_channel, first.src) or raw
            callee = first.dst if first.dst and first.dst != "s" else None
            did = None
            # A click-to-call's first channel is the rep's phone, rung by the Originate,
            # whose CallerID (the clid) is what the phone showed, not the rep's name.
            click = clicked_number(name, _clid_number(first.clid)) is not None
            if click:
                name = None

        # Rung: phones offered the call, in the order they were dialled.  A busy (or
        # unreachable) phone never rang; one that declined did, and is listed in both.
        rang: list[str] = [caller] if click and caller else []
        declined: list[str] = []
        for r in sorted(legs, key=lambda r: r.start):
            ext = self._extension(self._real_party(r.dstchannel, rows))
            if not ext or (direction == "internal" and ext == caller):
                continue
            if r.disposition not in _NOT_RUNG and ext not in rang:
                rang.append(ext)
            if self._refused(r, rows) and ext not in declined:
                declined.append(ext)
        taken = {self._party(r, rows) for r in answered_rows}
        declined = [ext for ext in declined if ext not in taken and ext in rang]

        # Who took the call first, and whom it ended with (a transfer out of the PBX ends
        # it with an outside party, named in E.164 like every outside party).
        answered_by: str | None = None
        agents: list[str] = []
        for r in answered_rows:
            who = self._party(r, rows)
            if who and who not in agents:
                agents.append(who)
        if answering is not None:
            answered_by = self._party(answering, rows)
            if answered_by is None and not self._is_trunk(
                self._real_party(answering.dstchannel, rows)
            ):
                answered_by = callee
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
        # Alike in shape to summary.unconnected_originate on purpose: all fields named.
        return CallRecord(
            linkedid=linkedid,
            direction=direction,
            caller=caller,
            caller_raw=raw,
            caller_name=name,
            callee=callee,
            callee_e164=profile.callee_e164(callee),
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
            declined=tuple(declined),
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
        pbx_ended = any(r.lastapp in _PBX_ENDS for r in rows)
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
