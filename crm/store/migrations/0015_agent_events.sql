CREATE TABLE agent_events (
    id {{id_pk}},
    pbx_link_id {{bigint}} REFERENCES pbx_links(id) ON DELETE SET NULL,
    ts {{real}} NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('paused', 'unpaused', 'added', 'removed',
                                       'registered', 'unregistered')),
    queue TEXT,            -- NULL: about the device / extension, not one queue
    extension TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX agent_events_ts ON agent_events(ts);
CREATE INDEX agent_events_ext ON agent_events(extension, ts);
