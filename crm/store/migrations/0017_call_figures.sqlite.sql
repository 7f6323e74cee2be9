-- Figures kept up to date by ingest (crm/store/sql_figures.py), so the missed-calls audit
-- and the reports add up a month of hourly rows instead of reading a month of calls.
-- One row per UTC hour (floor(started_at / 3600)) and per everything a page filters or
-- groups by: direction, outcome, line (''= none), rep (0 = none) and the owner of the
-- call's callback task (-1 = no task, 0 = a task nobody owns), which with the rep is what
-- a manager's visibility rule (crm.access) reads.  Hours serve any time zone whose offset
-- is whole hours; the pages fall back to the calls otherwise.
CREATE TABLE call_figures (
    hour INTEGER NOT NULL,
    direction TEXT NOT NULL,
    outcome TEXT NOT NULL,
    did TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    task_owner INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    answered INTEGER NOT NULL,
    talk_seconds REAL NOT NULL,
    PRIMARY KEY (hour, direction, outcome, did, user_id, task_owner)
);
CREATE INDEX call_figures_user ON call_figures(user_id, hour);
CREATE INDEX call_figures_owner ON call_figures(task_owner, hour);

-- Missed inbound calls that rang each extension, per UTC hour (``call_rang``'s missed rows).
CREATE TABLE rang_figures (
    hour INTEGER NOT NULL,
    extension TEXT NOT NULL,
    missed INTEGER NOT NULL,
    PRIMARY KEY (extension, hour)
);

INSERT INTO call_figures
SELECT CAST(calls.started_at / 3600 AS INTEGER), calls.direction, calls.outcome,
       COALESCE(calls.did, ''), COALESCE(calls.user_id, 0),
       CASE WHEN cc.task_id IS NULL THEN -1 ELSE COALESCE(t.owner_id, 0) END,
       COUNT(*), SUM(CASE WHEN calls.answered THEN 1 ELSE 0 END),
       COALESCE(SUM(calls.talk_seconds), 0)
FROM calls
LEFT JOIN callback_calls cc ON cc.call_id = calls.id
LEFT JOIN callback_tasks t ON t.id = cc.task_id
GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO rang_figures
SELECT CAST(started_at / 3600 AS INTEGER), extension, COUNT(*)
FROM call_rang WHERE missed GROUP BY 1, 2;
