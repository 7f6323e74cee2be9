-- Calls backfilled from the PBX's own CDR (crm.backfill) for the time no process held
-- the AMI link: each call says where its facts came from, and each link keeps when it
-- was last known alive (the watermark a backfill starts from) and where its reading of
-- Master.csv stopped.

ALTER TABLE calls ADD COLUMN source TEXT NOT NULL DEFAULT 'ami';

CREATE TABLE cdr_backfill (
    link TEXT PRIMARY KEY,
    alive_at DOUBLE PRECISION,
    file_id TEXT,
    file_offset BIGINT,
    last_run_at DOUBLE PRECISION,
    last_window_start DOUBLE PRECISION,
    last_window_end DOUBLE PRECISION,
    last_count INTEGER NOT NULL DEFAULT 0,
    total_count INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at DOUBLE PRECISION NOT NULL
);
