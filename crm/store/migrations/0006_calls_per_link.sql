-- Calls are keyed by (link, linkedid), not linkedid alone: two PBXes (two offices) may
-- report the same Linkedid, and each call must keep its own row.  A call written with
-- no link (an ingest outside the link manager) counts as link 0.  The same for the calls
-- kept in progress (``live_calls``).
--
-- SQLite cannot drop the UNIQUE of a column: the tables are rebuilt (the migration runner
-- turns foreign keys off around migrations, so dropping ``calls`` does not cascade to
-- its notes, recordings, callbacks; it checks them before committing).  The rebuild
-- repeats 0001's columns of ``calls`` (SQLite's words, without the UNIQUE) and the
-- indexes of 0001-0005 that the drop took with it: SQL has no "copy this table but one
-- constraint", and this text is history (the SQLite databases migrated by it hold it in
-- sqlite_master), so it stays as shipped.

{{sqlite drop_constraint}}
CREATE TABLE calls_new (
    id INTEGER PRIMARY KEY,
    linkedid TEXT NOT NULL,
    direction TEXT NOT NULL,
    caller TEXT,
    caller_raw TEXT,
    caller_name TEXT,
    callee TEXT,
    callee_e164 TEXT,
    did TEXT,
    rang TEXT NOT NULL DEFAULT '[]',
    answered INTEGER NOT NULL,
    answered_by TEXT,
    final_agent TEXT,
    transfers TEXT NOT NULL DEFAULT '[]',
    outcome TEXT NOT NULL,
    hangup_by TEXT,
    started_at REAL NOT NULL,
    answered_at REAL,
    ended_at REAL NOT NULL,
    ring_seconds REAL NOT NULL DEFAULT 0,
    talk_seconds REAL NOT NULL DEFAULT 0,
    recordings TEXT NOT NULL DEFAULT '[]',
    originate_id TEXT,
    queue TEXT,
    hangup_cause INTEGER,
    complete INTEGER NOT NULL DEFAULT 1,
    uniqueids TEXT NOT NULL DEFAULT '[]',
    remote_e164 TEXT,
    contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    match_reason TEXT NOT NULL DEFAULT 'none',
    pbx_link_id INTEGER REFERENCES pbx_links(id) ON DELETE SET NULL,
    ingested_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
INSERT INTO calls_new SELECT id, linkedid, direction, caller, caller_raw, caller_name, callee,
    callee_e164, did, rang, answered, answered_by, final_agent, transfers, outcome, hangup_by,
    started_at, answered_at, ended_at, ring_seconds, talk_seconds, recordings, originate_id,
    queue, hangup_cause, complete, uniqueids, remote_e164, contact_id, user_id, match_reason,
    pbx_link_id, ingested_at, updated_at FROM calls;
DROP TABLE calls;
ALTER TABLE calls_new RENAME TO calls;
{{postgres drop_constraint}}
ALTER TABLE calls DROP CONSTRAINT calls_linkedid_key;
{{end}}

CREATE UNIQUE INDEX calls_link_linkedid ON calls(COALESCE(pbx_link_id, 0), linkedid);
CREATE INDEX calls_linkedid ON calls(linkedid);
{{sqlite drop_constraint}}
CREATE INDEX calls_started ON calls(started_at, id);
CREATE INDEX calls_remote ON calls(remote_e164, started_at, id);
CREATE INDEX calls_user ON calls(user_id, started_at, id);
CREATE INDEX calls_contact ON calls(contact_id, started_at, id);
CREATE INDEX calls_outcome ON calls(outcome, started_at, id);
CREATE INDEX calls_did ON calls(did, started_at);
CREATE INDEX calls_link ON calls(pbx_link_id, started_at, id);
CREATE INDEX calls_missed ON calls(started_at, id)
    WHERE direction = 'inbound' AND outcome IN ('missed', 'abandoned', 'busy', 'no_answer');
CREATE INDEX calls_missed_did ON calls(did, started_at, id)
    WHERE direction = 'inbound' AND outcome IN ('missed', 'abandoned', 'busy', 'no_answer');
CREATE INDEX calls_inbound_report ON calls(direction, started_at, outcome, did, answered, user_id);
CREATE INDEX calls_report ON calls(started_at, outcome, user_id, answered, talk_seconds);
{{end}}

{{sqlite drop_constraint}}
CREATE TABLE live_calls_new (
    linkedid TEXT NOT NULL,
    pbx_link_id INTEGER REFERENCES pbx_links(id) ON DELETE CASCADE,
    snapshot TEXT NOT NULL,
    updated_at REAL NOT NULL
);
INSERT INTO live_calls_new SELECT linkedid, pbx_link_id, snapshot, updated_at FROM live_calls;
DROP TABLE live_calls;
ALTER TABLE live_calls_new RENAME TO live_calls;
{{postgres drop_constraint}}
ALTER TABLE live_calls DROP CONSTRAINT live_calls_pkey;
{{end}}
CREATE UNIQUE INDEX live_calls_key ON live_calls(COALESCE(pbx_link_id, 0), linkedid);
{{sqlite drop_constraint}}
CREATE INDEX live_calls_link ON live_calls(pbx_link_id);
CREATE INDEX live_calls_updated ON live_calls(updated_at);
{{end}}
