-- Calls backfilled from the PBX's own CDR (crm.backfill) for the time no process held
-- the AMI link: each call says where its facts came from, and each link keeps when it
-- was last known alive (the watermark a backfill starts from) and where its reading of
-- Master.csv stopped.

ALTER TABLE calls ADD COLUMN source TEXT NOT NULL DEFAULT 'ami';

CREATE TABLE cdr_backfill (
    link TEXT PRIMARY KEY,
    alive_at {{real}},
    file_id TEXT,
    file_offset {{bigint}},
    last_run_at {{real}},
    last_window_start {{real}},
    last_window_end {{real}},
    last_count INTEGER NOT NULL DEFAULT 0,
    total_count INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at {{real}} NOT NULL
);
