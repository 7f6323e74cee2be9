"""Asterisk's own CDR rows -> the same call facts the tracker emits, for calls no link saw.

A call that starts and ends while no process holds the AMI link is never seen by the
tracker; the PBX still writes its CDR (``cdr_csv``'s Master.csv, or the ``cdr`` table of
``cdr_pgsql`` / ``cdr_adaptive_odbc``).  This package is pure: rows in, ``CallRecord``
out (``source="cdr"``), no I/O, no clock.  Reading files and tables is ``crm.backfill``'s.

How Asterisk writes CDR (see tests/fixtures/asterisk-22/README.md), and what follows:

* One row per dialled leg, all carrying the party-A channel's uniqueid: a ring group
  gives an ANSWERED row and a NO ANSWER row, a missed call two NO ANSWER rows plus one for
  the ``Hangup`` application.  Rows sharing the party-A uniqueid are one call, and for a
  plain call that uniqueid is the call's Linkedid, the key the tracker uses too.
* Transfers and Local channels add rows whose party A is another channel.  Without a
  ``linkedid`` column (Master.csv by default) they are tied to their call through the
  channels they share (a transferer's second channel, the two halves ``;1``/``;2`` of a
  Local pair), and the call keeps the oldest uniqueid, which is its Linkedid.
* The userfield of the party-A row is ``partyA;partyB``: ``;file.wav`` when the
  recording's name was set on the answering channel.
* A party-A row's dst/dcontext follow the channel through the dialplan until the row is
  written: after a blind transfer they name the transfer target.  The DID comes from rows
  that still hold it (one in a carriers' context, a ring-group leg that ended before);
  when none does, the record has no DID rather than the target.
* The tracker's rules hold here too: outside parties (who answered an outbound call, whom
  a transfer out ended with) are named in E.164; a BUSY (or FAILED) leg never rang; a
  phone whose leg stopped at once while the call went on declined it (listed in ``rang``
  and ``declined``); an Originate whose channel never answered (its row still shows
  ``AppDial2`` and dst ``s``) is a ``failed`` click, its number read back from the
  CallerID the CRM gave the Originate (``dialrules.clicked_number``).
* What CDR cannot tell is left None or empty rather than guessed: who hung up an answered
  call, that a transfer happened (only its legs show), hold and a blind transfer's target
  ringing (counted as talk), the Q.850 cause that tells a decline from another quick
  refusal, a queue member declining, and a click-to-call's number and rep ring when the
  Originate carried a configured outbound caller ID instead of the CRM's own.
"""

from .calls import CdrCalls, group_rows
from .rows import (
    CSV_COLUMNS,
    CdrRow,
    csv_line,
    format_time,
    parse_line,
    parse_lines,
    parse_time,
    row_from_cdr_event,
    row_from_fields,
    row_from_mapping,
    zone,
)

__all__ = [
    "CSV_COLUMNS",
    "CdrCalls",
    "CdrRow",
    "csv_line",
    "format_time",
    "group_rows",
    "parse_line",
    "parse_lines",
    "parse_time",
    "row_from_cdr_event",
    "row_from_fields",
    "row_from_mapping",
    "zone",
]
