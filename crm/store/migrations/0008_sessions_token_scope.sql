-- Server-side web sessions, and API token expiry and scope.

-- One row per login.  The cookie carries a random id; only its SHA-256 is kept here, so
-- a read of the database gives nobody a working session.  A session ends at logout, at
-- "log out everywhere", when the password changes or the user is deactivated, and when
-- it has been idle or alive too long (checked by the web layer against its settings).
-- Every web process reads the same rows, so a logout holds in all of them.
CREATE TABLE web_sessions (
    id TEXT PRIMARY KEY,
    user_id {{bigint}} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at {{real}} NOT NULL,
    last_seen_at {{real}} NOT NULL,
    ended_at {{real}},
    address TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX web_sessions_user ON web_sessions(user_id, ended_at);

-- A token may expire, and may be read-only ('read': GET/HEAD only) instead of 'full'.
ALTER TABLE api_tokens ADD COLUMN expires_at {{real}};
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'full'
    CHECK (scope IN ('full', 'read'));
