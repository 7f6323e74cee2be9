-- Scale-out: links belong to teams, calls in progress survive their consumer's death
-- (and, on SQLite, a restart), big cross-process events are spilled out of NOTIFY.

-- A PBX link serves one team; its calls, leads and callbacks belong to that team.
ALTER TABLE pbx_links ADD COLUMN team_id {{bigint}} REFERENCES teams(id) ON DELETE SET NULL;
ALTER TABLE contacts ADD COLUMN team_id {{bigint}} REFERENCES teams(id) ON DELETE SET NULL;
ALTER TABLE callback_tasks ADD COLUMN team_id {{bigint}} REFERENCES teams(id) ON DELETE SET NULL;
CREATE INDEX calls_link ON calls(pbx_link_id, started_at, id);

-- The last known state of every call in progress, per link: the process that takes a
-- link over writes the calls that ended while nobody was listening (complete = false).
CREATE TABLE live_calls (
    linkedid TEXT PRIMARY KEY,
    pbx_link_id {{bigint}} REFERENCES pbx_links(id) ON DELETE CASCADE,
    snapshot {{json}} NOT NULL,
    updated_at {{real}} NOT NULL
);
CREATE INDEX live_calls_link ON live_calls(pbx_link_id);

{{postgres notify_spill}}
-- Events too big for a NOTIFY payload (8000 bytes): the notification carries the id.
CREATE TABLE event_spill (
    id {{id_pk}},
    body TEXT NOT NULL,
    created_at {{real}} NOT NULL
);
CREATE INDEX event_spill_created ON event_spill(created_at);
{{end}}
