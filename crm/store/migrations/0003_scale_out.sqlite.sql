-- Scale-out (SQLite): the same tables as on PostgreSQL, so one process on SQLite keeps
-- its calls in progress across a restart and links carry their team.

ALTER TABLE pbx_links ADD COLUMN team_id INTEGER REFERENCES teams(id) ON DELETE SET NULL;
ALTER TABLE contacts ADD COLUMN team_id INTEGER REFERENCES teams(id) ON DELETE SET NULL;
ALTER TABLE callback_tasks ADD COLUMN team_id INTEGER REFERENCES teams(id) ON DELETE SET NULL;
CREATE INDEX calls_link ON calls(pbx_link_id, started_at, id);

CREATE TABLE live_calls (
    linkedid TEXT PRIMARY KEY,
    pbx_link_id INTEGER REFERENCES pbx_links(id) ON DELETE CASCADE,
    snapshot TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX live_calls_link ON live_calls(pbx_link_id);
