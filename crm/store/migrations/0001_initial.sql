-- Initial schema.  Times are POSIX seconds (UTC), REAL on SQLite and double precision on
-- PostgreSQL; JSON is TEXT on SQLite, jsonb on PostgreSQL (crm/store/schema_dialect.py).
CREATE TABLE teams (
    id {{id_pk}},
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE pbx_links (
    id {{id_pk}},
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE users (
    id {{id_pk}},
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('rep', 'manager', 'admin')),
    password_hash TEXT NOT NULL DEFAULT '',
    active {{bool}} NOT NULL DEFAULT {{true}},
    team_id {{bigint}} REFERENCES teams(id) ON DELETE SET NULL,
    created_at {{real}} NOT NULL
);

CREATE TABLE user_extensions (
    extension TEXT PRIMARY KEY,
    user_id {{bigint}} NOT NULL REFERENCES users(id) ON DELETE CASCADE
);
CREATE INDEX user_extensions_user ON user_extensions(user_id);

CREATE TABLE contacts (
    id {{id_pk}},
    name TEXT NOT NULL DEFAULT '',
    company TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    owner_id {{bigint}} REFERENCES users(id) ON DELETE SET NULL,
    tags {{json}} NOT NULL DEFAULT '[]',
    custom {{json}} NOT NULL DEFAULT '{}',
    lead_status TEXT CHECK (lead_status IN ('new', 'contacted', 'qualified', 'converted', 'junk')),
    lead_source TEXT CHECK (lead_source IN ('inbound_call', 'missed_call', 'outbound_call', 'manual', 'import')),
    lead_created_at {{real}},
    created_at {{real}} NOT NULL,
    updated_at {{real}} NOT NULL,
    last_contact_at {{real}},
    erased {{bool}} NOT NULL DEFAULT {{false}}
);
CREATE INDEX contacts_owner ON contacts(owner_id);
CREATE INDEX contacts_name ON contacts({{ci(name)}});
CREATE INDEX contacts_company ON contacts({{ci(company)}});

CREATE TABLE contact_phones (
    id {{id_pk}},
    contact_id {{bigint}} NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    raw TEXT NOT NULL,
    e164 TEXT,
    label TEXT NOT NULL DEFAULT ''
);
-- Caller lookup: one index probe on e164, contact id read from the index itself.
CREATE INDEX contact_phones_e164 ON contact_phones(e164, contact_id);
CREATE INDEX contact_phones_contact ON contact_phones(contact_id);

CREATE TABLE calls (
    id {{id_pk}},
    linkedid TEXT NOT NULL UNIQUE,
    direction TEXT NOT NULL,
    caller TEXT,
    caller_raw TEXT,
    caller_name TEXT,
    callee TEXT,
    callee_e164 TEXT,
    did TEXT,
    rang {{json}} NOT NULL DEFAULT '[]',
    answered {{bool}} NOT NULL,
    answered_by TEXT,
    final_agent TEXT,
    transfers {{json}} NOT NULL DEFAULT '[]',
    outcome TEXT NOT NULL,
    hangup_by TEXT,
    started_at {{real}} NOT NULL,
    answered_at {{real}},
    ended_at {{real}} NOT NULL,
    ring_seconds {{real}} NOT NULL DEFAULT 0,
    talk_seconds {{real}} NOT NULL DEFAULT 0,
    recordings {{json}} NOT NULL DEFAULT '[]',
    originate_id TEXT,
    queue TEXT,
    hangup_cause INTEGER,
    complete {{bool}} NOT NULL DEFAULT {{true}},
    uniqueids {{json}} NOT NULL DEFAULT '[]',
    remote_e164 TEXT,
    contact_id {{bigint}} REFERENCES contacts(id) ON DELETE SET NULL,
    user_id {{bigint}} REFERENCES users(id) ON DELETE SET NULL,
    match_reason TEXT NOT NULL DEFAULT 'none',
    pbx_link_id {{bigint}} REFERENCES pbx_links(id) ON DELETE SET NULL,
    ingested_at {{real}} NOT NULL,
    updated_at {{real}} NOT NULL
);
-- Keyset pagination (started_at, id) and the usual filters, each ending in the same key.
CREATE INDEX calls_started ON calls(started_at, id);
CREATE INDEX calls_remote ON calls(remote_e164, started_at, id);
CREATE INDEX calls_user ON calls(user_id, started_at, id);
CREATE INDEX calls_contact ON calls(contact_id, started_at, id);
CREATE INDEX calls_outcome ON calls(outcome, started_at, id);

CREATE TABLE call_recordings (
    id {{id_pk}},
    call_id {{bigint}} NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    UNIQUE (call_id, path)
);

CREATE TABLE notes (
    id {{id_pk}},
    call_id {{bigint}} NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    author_id {{bigint}} REFERENCES users(id) ON DELETE SET NULL,
    topic TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT '',
    created_at {{real}} NOT NULL
);
CREATE INDEX notes_call ON notes(call_id);

CREATE TABLE callback_tasks (
    id {{id_pk}},
    number_e164 TEXT,
    contact_id {{bigint}} REFERENCES contacts(id) ON DELETE SET NULL,
    owner_id {{bigint}} REFERENCES users(id) ON DELETE SET NULL,
    opened_at {{real}} NOT NULL,
    due_at {{real}} NOT NULL,
    closed_at {{real}},
    closed_by_user_id {{bigint}} REFERENCES users(id) ON DELETE SET NULL,
    closed_by_call_id {{bigint}} REFERENCES calls(id) ON DELETE SET NULL,
    time_to_callback {{real}},
    missed_count INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL CHECK (status IN ('open', 'closed'))
);
-- At most one open task per number: repeated misses join it.
CREATE UNIQUE INDEX callback_tasks_open_number ON callback_tasks(number_e164) WHERE status = 'open';
CREATE INDEX callback_tasks_owner ON callback_tasks(owner_id, status, due_at);
CREATE INDEX callback_tasks_contact ON callback_tasks(contact_id);

CREATE TABLE callback_calls (
    task_id {{bigint}} NOT NULL REFERENCES callback_tasks(id) ON DELETE CASCADE,
    call_id {{bigint}} NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, call_id)
);
CREATE INDEX callback_calls_call ON callback_calls(call_id);

CREATE TABLE audit_log (
    id {{id_pk}},
    at {{real}} NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail {{json}} NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log(at, id);
CREATE INDEX audit_log_action ON audit_log(action, id);

-- Append-only, enforced by the database itself, not just by the code.
{{sqlite append_only_trigger}}
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
{{postgres append_only_trigger}}
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
{{end}}
