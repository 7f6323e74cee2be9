-- Recordings catalogue, API tokens, admin settings, and indexes for the reports.

-- The recordings helper tracks each file: found and transcoded, missing, corrupt, deleted.
ALTER TABLE call_recordings ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'ready', 'missing', 'corrupt', 'deleted'));
ALTER TABLE call_recordings ADD COLUMN duration_seconds {{real}};
ALTER TABLE call_recordings ADD COLUMN media_path TEXT;
ALTER TABLE call_recordings ADD COLUMN size_bytes {{bigint}};
ALTER TABLE call_recordings ADD COLUMN error TEXT;
ALTER TABLE call_recordings ADD COLUMN checked_at {{real}};
ALTER TABLE call_recordings ADD COLUMN created_at {{real}} NOT NULL DEFAULT 0;
-- Rows from before this version: the call's end is when the file was finished.  (Every
-- recording has its call, a foreign key: the subquery always finds one.)
UPDATE call_recordings SET created_at = (SELECT ended_at FROM calls WHERE calls.id = call_id);
-- The checker's queue (pending/missing, oldest first) and retention (oldest first).
CREATE INDEX call_recordings_status ON call_recordings(status, created_at, id);
CREATE INDEX call_recordings_created ON call_recordings(created_at, id);

-- Integrations authenticate with a bearer token; only its SHA-256 is kept.
CREATE TABLE api_tokens (
    id {{id_pk}},
    user_id {{bigint}} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at {{real}} NOT NULL,
    last_used_at {{real}},
    revoked_at {{real}}
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

-- Admin pages: one JSON object per settings section.
CREATE TABLE settings (
    section TEXT PRIMARY KEY,
    value {{json}} NOT NULL DEFAULT '{}',
    updated_at {{real}} NOT NULL
);

-- Reports group inbound calls by line (DID) over a time range.
CREATE INDEX calls_did ON calls(did, started_at);
-- Tasks closed by a rep (callbacks per rep).
CREATE INDEX callback_tasks_closed_by ON callback_tasks(closed_by_user_id);
