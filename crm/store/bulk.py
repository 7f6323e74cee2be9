"""Bulk-load a store with synthetic but realistic history, for benchmarks at scale.

A million contacts and five million calls cannot go through ``Ingest`` (one transaction
per call, hours); this writes rows straight into the tables the migrations made, in
large batches: SQLite through the standard ``sqlite3`` module with the call indexes
dropped and rebuilt after the load (rebuilding is several times faster than keeping them
up to date row by row), PostgreSQL with ``COPY``.  The store must be migrated and hold
the users already; the shapes follow what ``Ingest`` writes, so every page reads them
as it would read live data.

What "realistic" means here: calls spread over ``days`` with office-hour peaks, inbound
60 % / outbound 35 % / internal 5 %, about 18 % of inbound calls missed or abandoned, most
remote numbers belonging to a contact, each rep with their own customers; missed calls
open callback tasks that are mostly closed by a later call of the task's owner.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .sql_common import TASK_RANG_FROM_CALLS

CONTACT_COLUMNS = ("id", "name", "company", "email", "owner_id", "tags", "custom", "lead_status",
                   "lead_source", "lead_created_at", "created_at", "updated_at",
                   "last_contact_at", "erased")  # fmt: skip
PHONE_COLUMNS = ("id", "contact_id", "raw", "e164", "label")
CALL_COLUMNS = ("id", "linkedid", "direction", "caller", "caller_raw", "caller_name", "callee",
                "callee_e164", "did", "rang", "answered", "answered_by", "final_agent",
                "outcome", "hangup_by", "started_at", "answered_at", "ended_at", "ring_seconds",
                "talk_seconds", "remote_e164", "contact_id", "user_id", "match_reason",
                "ingested_at", "updated_at")  # fmt: skip
TASK_COLUMNS = ("id", "number_e164", "contact_id", "owner_id", "opened_at", "due_at",
                "closed_at", "closed_by_user_id", "closed_by_call_id", "time_to_callback",
                "missed_count", "status")  # fmt: skip
LINK_COLUMNS = ("task_id", "call_id")
FIRST = ("Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lea")
LAST = ("Smith", "Ng", "Okafor", "Berg", "Costa", "Haddad", "Ivanova", "Kim", "Lopez", "Moss")
COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "")


@dataclass(frozen=True)
class Rep:
    user_id: int
    extension: str


@dataclass
class BulkSpec:
    contacts: int
    calls: int
    reps: Sequence[Rep]
    days: int = 90
    lines: Sequence[str] = ("+442070000001", "+442070000002", "+442070000003")
    now: float = field(default_factory=time.time)
    seed: int = 6
    batch: int = 50_000
    callback_sla: float = 3600.0


def contact_number(i: int) -> str:
    """The one phone number of contact ``i`` (1-based), E.164."""
    return f"+44207{i:07d}"


def owner_index(i: int, reps: int) -> int | None:
    """Which rep (index into ``reps``) owns contact ``i``; every tenth contact is shared."""
    return None if i % 10 == 0 else i % reps


def _day_offset(rng: random.Random) -> float:
    """Seconds into a day, office hours much busier than the night."""
    if rng.random() < 0.9:
        return rng.uniform(8 * 3600, 18 * 3600)
    return rng.uniform(0, 24 * 3600)


def contact_rows(spec: BulkSpec) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """(contact row, phone row) per contact; ids 1..contacts; 10 % shared (no owner)."""
    rng = random.Random(spec.seed)
    start = spec.now - spec.days * 86400
    for i in range(1, spec.contacts + 1):
        k = owner_index(i, len(spec.reps))
        owner = None if k is None else spec.reps[k].user_id
        created = start - rng.uniform(0, 365 * 86400)
        lead = rng.random() < 0.05
        name = f"{FIRST[i % len(FIRST)]} {LAST[(i // 7) % len(LAST)]} {i}"
        tags = '["vip"]' if i % 50 == 0 else "[]"
        row = (i, name, COMPANIES[i % len(COMPANIES)], f"c{i}@example.com" if i % 3 else "",
               owner, tags, "{}", "new" if lead else None, "inbound_call" if lead else None,
               created if lead else None, created, created, None, False)  # fmt: skip
        number = contact_number(i)
        yield row, (i, i, number, number, "")


def contact_batches(
    spec: BulkSpec,
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """``contact_rows`` as (contacts, phones) lists of ``spec.batch`` rows; the last pair
    is shorter, empty when the rows came out even (a full batch is worth a progress note)."""
    contacts: list[tuple[Any, ...]] = []
    phones: list[tuple[Any, ...]] = []
    for contact, phone in contact_rows(spec):
        contacts.append(contact)
        phones.append(phone)
        if len(contacts) >= spec.batch:
            yield contacts, phones
            contacts, phones = [], []
    yield contacts, phones


@dataclass
class _Open:
    task_id: int
    opened_at: float
    owner_id: int | None
    contact_id: int | None
    number: str
    missed: int = 1


def call_rows(spec: BulkSpec) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """("call" | "task" | "link", row) in id order of calls; tasks are emitted when
    they are closed (or at the end, still open)."""
    rng = random.Random(spec.seed + 1)
    start = spec.now - spec.days * 86400
    per_day = spec.calls / spec.days
    reps, lines = list(spec.reps), list(spec.lines)
    by_user = {r.user_id: r for r in reps}
    open_tasks: dict[str, _Open] = {}
    task_id = 0
    call_id = 0
    for day in range(spec.days):
        n = int(per_day * (day + 1)) - int(per_day * day)
        times = sorted(start + day * 86400 + _day_offset(rng) for _ in range(n))
        for t in times:
            if t > spec.now - 60:
                t = spec.now - 60 - rng.random() * 60
            call_id += 1
            kind = rng.random()
            rep = reps[rng.randrange(len(reps))]
            contact_id: int | None = None
            if rng.random() < 0.8 and spec.contacts:
                contact_id = rng.randrange(1, spec.contacts + 1)
                number = contact_number(contact_id)
                k = owner_index(contact_id, len(reps))
                owner = None if k is None else reps[k]
                if owner is not None and rng.random() < 0.7:
                    rep = owner  # most calls with a customer are with their own rep
            else:
                number = f"+44161{rng.randrange(10_000_000):07d}"
            linkedid = f"{t:.6f}.{call_id}"
            ring = rng.uniform(2, 25)
            talk = rng.expovariate(1 / 180)
            if kind < 0.6:  # inbound
                did = lines[call_id % len(lines)]
                others = rng.sample(reps, k=min(3, len(reps)))
                rang = sorted({rep.extension, *(r.extension for r in others)})
                roll = rng.random()
                outcome = "answered" if roll < 0.82 else ("missed" if roll < 0.96 else "abandoned")
                answered = outcome == "answered"
                row = (call_id, linkedid, "inbound", number, number, None, did, did, did,
                       json.dumps(rang), answered, rep.extension if answered else None,
                       rep.extension if answered else None, outcome,
                       "caller" if answered else "pbx", t, t + ring if answered else None,
                       t + ring + (talk if answered else 0), ring, talk if answered else 0.0,
                       number, contact_id, rep.user_id if answered else None,
                       "unique" if contact_id else "none", t, t)  # fmt: skip
                yield "call", row
                if not answered:
                    task = open_tasks.get(number)
                    if task is None:
                        task_id += 1
                        k = None if contact_id is None else owner_index(contact_id, len(reps))
                        owner_id = rep.user_id if contact_id is None else (
                            None if k is None else reps[k].user_id
                        )
                        task = _Open(task_id, t, owner_id, contact_id, number, 0)
                        open_tasks[number] = task
                    task.missed += 1
                    yield "link", (task.task_id, call_id)
                    if rng.random() < 0.85:  # a callback: an outbound call a bit later
                        delay = rng.expovariate(1 / 2400)
                        if t + delay < spec.now - 60:
                            closer = by_user.get(task.owner_id or -1, rep)
                            yield "task", _closed_task(spec, task, t + delay, closer)
                            del open_tasks[number]
            elif kind < 0.95:  # outbound
                answered = rng.random() < 0.7
                row = (call_id, linkedid, "outbound", rep.extension, rep.extension, None,
                       number, number, None, "[]", answered, None, None,
                       "answered" if answered else "no_answer", "caller", t,
                       t + ring if answered else None, t + ring + (talk if answered else 0),
                       ring, talk if answered else 0.0, number, contact_id, rep.user_id,
                       "unique" if contact_id else "none", t, t)  # fmt: skip
                yield "call", row
            else:  # internal
                other = reps[(reps.index(rep) + 1) % len(reps)]
                row = (call_id, linkedid, "internal", rep.extension, rep.extension, None,
                       other.extension, None, None, json.dumps([other.extension]), True,
                       other.extension, other.extension, "answered", "caller", t, t + 3,
                       t + 3 + talk, 3.0, talk, None, None, rep.user_id, "internal", t, t)
                yield "call", row
    for task in open_tasks.values():
        yield "task", (task.task_id, task.number, task.contact_id, task.owner_id,
                       task.opened_at, task.opened_at + spec.callback_sla, None, None, None,
                       None, task.missed, "open")  # fmt: skip


def _closed_task(spec: BulkSpec, task: _Open, at: float, closer: Rep) -> tuple[Any, ...]:
    """Closed by ``closer``'s call back (not itself generated: the missed-calls audit
    reads who and when from the task)."""
    return (task.task_id, task.number, task.contact_id, task.owner_id, task.opened_at,
            task.opened_at + spec.callback_sla, at, closer.user_id, None,
            at - task.opened_at, task.missed, "closed")  # fmt: skip


# Who each call rang (``call_rang``, as ``upsert_call`` writes it), from the loaded calls.
_RANG_SQLITE = (
    "INSERT OR IGNORE INTO call_rang (call_id, extension, started_at, missed) "
    "SELECT calls.id, CAST(r.value AS TEXT), calls.started_at, calls.direction = 'inbound' "
    "AND calls.outcome IN ('missed', 'abandoned', 'busy', 'no_answer') "
    "FROM calls CROSS JOIN json_each(calls.rang) AS r WHERE r.value IS NOT NULL ORDER BY calls.id"
)
_RANG_POSTGRES = (
    "INSERT INTO call_rang (call_id, extension, started_at, missed) "
    "SELECT calls.id, r.value, calls.started_at, calls.direction = 'inbound' "
    "AND calls.outcome IN ('missed', 'abandoned', 'busy', 'no_answer') "
    "FROM calls CROSS JOIN LATERAL jsonb_array_elements_text(calls.rang) AS r(value) "
    "WHERE r.value IS NOT NULL ON CONFLICT DO NOTHING"
)


# -- SQLite ----------------------------------------------------------------------------
def load_sqlite(path: str, spec: BulkSpec, progress: Any = None) -> dict[str, int]:
    """Append ``spec``'s rows to the (migrated, empty of contacts and calls) database at
    ``path``; returns the row counts."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-400000")
    con.execute("PRAGMA temp_store=MEMORY")
    tables = ("contacts", "contact_phones", "calls", "callback_tasks", "callback_calls",
              "call_rang")  # fmt: skip
    indexes = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({','.join('?' * len(tables))})", tables
    ).fetchall()
    counts = dict.fromkeys(("contacts", "calls", "tasks", "links"), 0)
    try:
        con.execute("BEGIN")
        for name, _sql in indexes:
            con.execute(f'DROP INDEX "{name}"')

        def flush(table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
            if rows:
                marks = ",".join("?" * len(columns))
                con.executemany(f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})",
                                rows)  # fmt: skip
                rows.clear()

        for contacts, phones in contact_batches(spec):
            full = len(contacts) == spec.batch
            counts["contacts"] += len(contacts)
            flush("contacts", CONTACT_COLUMNS, contacts)
            flush("contact_phones", PHONE_COLUMNS, phones)
            if progress and full:
                progress("contacts", counts["contacts"])
        buffers: dict[str, list[tuple[Any, ...]]] = {"call": [], "task": [], "link": []}
        target = {"call": ("calls", CALL_COLUMNS), "task": ("callback_tasks", TASK_COLUMNS),
                  "link": ("callback_calls", LINK_COLUMNS)}  # fmt: skip
        names = {"call": "calls", "task": "tasks", "link": "links"}
        for kind, row in call_rows(spec):
            buf = buffers[kind]
            buf.append(row)
            if len(buf) >= spec.batch:
                counts[names[kind]] += len(buf)
                flush(*target[kind], buf)
                if progress and kind == "call":
                    progress("calls", counts["calls"])
        for kind, buf in buffers.items():
            counts[names[kind]] += len(buf)
            flush(*target[kind], buf)
        con.execute(_RANG_SQLITE)
        con.execute(TASK_RANG_FROM_CALLS)
        con.execute(_NUMBERS_SQL + " ON CONFLICT DO NOTHING")
        if progress:
            progress("indexes", len(indexes))
        for _name, sql in indexes:
            con.execute(sql)
        con.execute(
            "UPDATE contacts SET last_contact_at = m.last FROM (SELECT contact_id, "
            "max(started_at) AS last FROM calls WHERE contact_id IS NOT NULL "
            "GROUP BY contact_id) AS m WHERE contacts.id = m.contact_id"
        )
        con.execute("COMMIT")
        con.execute("ANALYZE")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return counts


_NUMBERS_SQL = (
    "INSERT INTO call_numbers (e164) SELECT DISTINCT remote_e164 FROM calls "
    "WHERE remote_e164 IS NOT NULL"
)
"""The partial-number search's list of distinct remote numbers (migration 0014)."""


# -- PostgreSQL ------------------------------------------------------------------------
async def load_postgres(url: str, spec: BulkSpec, progress: Any = None) -> dict[str, int]:
    """The same rows with ``COPY``; identity sequences are moved past the loaded ids.
    A ``schema=`` in the URL is the store's (``split_url``)."""
    import asyncpg

    from .postgres import split_url

    dsn, schema = split_url(url)
    con = await asyncpg.connect(dsn, server_settings={"search_path": schema} if schema else None)
    counts = dict.fromkeys(("contacts", "calls", "tasks", "links"), 0)
    try:
        async def copy(table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
            if rows:
                await con.copy_records_to_table(table, records=rows, columns=list(columns))
                rows.clear()

        async with con.transaction():
            for contacts, phones in contact_batches(spec):
                full = len(contacts) == spec.batch
                counts["contacts"] += len(contacts)
                await copy("contacts", CONTACT_COLUMNS, contacts)
                await copy("contact_phones", PHONE_COLUMNS, phones)
                if progress and full:
                    progress("contacts", counts["contacts"])
            buffers: dict[str, list[tuple[Any, ...]]] = {"call": [], "task": [], "link": []}
            target = {"call": ("calls", CALL_COLUMNS),
                      "task": ("callback_tasks", TASK_COLUMNS),
                      "link": ("callback_calls", LINK_COLUMNS)}  # fmt: skip
            names = {"call": "calls", "task": "tasks", "link": "links"}
            pending_links: list[tuple[Any, ...]] = []
            for kind, row in call_rows(spec):
                if kind == "link":  # the task row comes later: links go in at the end
                    pending_links.append(row)
                    continue
                buf = buffers[kind]
                buf.append(row)
                if len(buf) >= spec.batch:
                    counts[names[kind]] += len(buf)
                    await copy(*target[kind], buf)
                    if progress and kind == "call":
                        progress("calls", counts["calls"])
            for kind in ("call", "task"):
                counts[names[kind]] += len(buffers[kind])
                await copy(*target[kind], buffers[kind])
            counts["links"] = len(pending_links)
            await copy("callback_calls", LINK_COLUMNS, pending_links)
            await con.execute(_RANG_POSTGRES)
            await con.execute(TASK_RANG_FROM_CALLS)
            await con.execute(_NUMBERS_SQL + " ON CONFLICT DO NOTHING")
            await con.execute(
                "UPDATE contacts SET last_contact_at = m.last FROM (SELECT contact_id, "
                "max(started_at) AS last FROM calls WHERE contact_id IS NOT NULL "
                "GROUP BY contact_id) AS m WHERE contacts.id = m.contact_id"
            )
            for table in ("contacts", "contact_phones", "calls", "callback_tasks"):
                await con.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 1) FROM {table}))"
                )
        await con.execute("ANALYZE")
    finally:
        await con.close()
    return counts
