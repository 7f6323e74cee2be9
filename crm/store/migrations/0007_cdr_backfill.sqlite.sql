-- Calls backfilled from the PBX's own CDR (crm.backfill) for the time no process held
-- the AMI link: each call says where its facts came from, and each link keeps when it
-- was last known alive (the watermark a backfill starts from) and where its reading of
-- Master.csv stopped.

ALTER TABLE calls ADD COLUMN source TEXT NOT NULL DEFAULT 'ami';

CREATE TABLE cdr_backfill (
    link TEXT PRIMARY KEY,
    alive_at REAL,
    file_id TEXT,
    file_offset INTEGER,
    last_run_at REAL,
    last_window_start REAL,
    last_window_end REAL,
    last_count INTEGER NOT NULL DEFAULT 0,
    total_count INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at REAL NOT NULL
);
