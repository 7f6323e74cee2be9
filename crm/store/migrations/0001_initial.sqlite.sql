-- Initial schema (SQLite).  Times are POSIX seconds (UTC) as REAL, JSON as TEXT.
CREATE TABLE teams (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE pbx_links (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('rep', 'manager', 'admin')),
    password_hash TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 1,
    team_id INTEGER REFERENCES teams(id) ON DELETE SET NULL,
    created_at REAL NOT NULL
);

CREATE TABLE user_extensions (
    extension TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE
);
CREATE INDEX user_extensions_user ON user_extensions(user_id);

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    company TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    custom TEXT NOT NULL DEFAULT '{}',
    lead_status TEXT CHECK (lead_status IN ('new', 'contacted', 'qualified', 'converted', 'junk')),
    lead_source TEXT CHECK (lead_source IN ('inbound_call', 'missed_call', 'outbound_call', 'manual', 'import')),
    lead_created_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_contact_at REAL,
    erased INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX contacts_owner ON contacts(owner_id);
CREATE INDEX contacts_name ON contacts(name COLLATE NOCASE);
CREATE INDEX contacts_company ON contacts(company COLLATE NOCASE);

CREATE TABLE contact_phones (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    raw TEXT NOT NULL,
    e164 TEXT,
    label TEXT NOT NULL DEFAULT ''
);
-- Caller lookup: one index probe on e164, contact id read from the index itself.
CREATE INDEX contact_phones_e164 ON contact_phones(e164, contact_id);
CREATE INDEX contact_phones_contact ON contact_phones(contact_id);

CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    linkedid TEXT NOT NULL UNIQUE,
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
-- Keyset pagination (started_at, id) and the usual filters, each ending in the same key.
CREATE INDEX calls_started ON calls(started_at, id);
CREATE INDEX calls_remote ON calls(remote_e164, started_at, id);
CREATE INDEX calls_user ON calls(user_id, started_at, id);
CREATE INDEX calls_contact ON calls(contact_id, started_at, id);
CREATE INDEX calls_outcome ON calls(outcome, started_at, id);

CREATE TABLE call_recordings (
    id INTEGER PRIMARY KEY,
    call_id INTEGER NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    UNIQUE (call_id, path)
);

CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    call_id INTEGER NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    author_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    topic TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE INDEX notes_call ON notes(call_id);

CREATE TABLE callback_tasks (
    id INTEGER PRIMARY KEY,
    number_e164 TEXT,
    contact_id INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    opened_at REAL NOT NULL,
    due_at REAL NOT NULL,
    closed_at REAL,
    closed_by_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    closed_by_call_id INTEGER REFERENCES calls(id) ON DELETE SET NULL,
    time_to_callback REAL,
    missed_count INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL CHECK (status IN ('open', 'closed'))
);
-- At most one open task per number: repeated misses join it.
CREATE UNIQUE INDEX callback_tasks_open_number ON callback_tasks(number_e164) WHERE status = 'open';
CREATE INDEX callback_tasks_owner ON callback_tasks(owner_id, status, due_at);
CREATE INDEX callback_tasks_contact ON callback_tasks(contact_id);

CREATE TABLE callback_calls (
    task_id INTEGER NOT NULL REFERENCES callback_tasks(id) ON DELETE CASCADE,
    call_id INTEGER NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, call_id)
);
CREATE INDEX callback_calls_call ON callback_calls(call_id);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log(at, id);
CREATE INDEX audit_log_action ON audit_log(action, id);

-- Append-only, enforced by the database itself, not just by the code.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
