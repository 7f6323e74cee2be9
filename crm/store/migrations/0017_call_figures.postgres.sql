-- Figures kept up to date by ingest (crm/store/sql_figures.py), so the missed-calls audit
-- and the reports add up a month of hourly rows instead of reading a month of calls.
-- One row per UTC hour (floor(started_at / 3600)) and per everything a page filters or
-- groups by: direction, outcome, line (''= none), rep (0 = none) and the owner of the
-- call's callback task (-1 = no task, 0 = a task nobody owns), which with the rep is what
-- a manager's visibility rule (crm.access) reads.  Hours serve any time zone whose offset
-- is whole hours; the pages fall back to the calls otherwise.
CREATE TABLE call_figures (
    hour BIGINT NOT NULL,
    direction TEXT NOT NULL,
    outcome TEXT NOT NULL,
    did TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    task_owner BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    answered BIGINT NOT NULL,
    talk_seconds DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (hour, direction, outcome, did, user_id, task_owner)
);
CREATE INDEX call_figures_user ON call_figures(user_id, hour);
CREATE INDEX call_figures_owner ON call_figures(task_owner, hour);

-- Missed inbound calls that rang each extension, per UTC hour (``call_rang``'s missed rows).
CREATE TABLE rang_figures (
    hour BIGINT NOT NULL,
    extension TEXT NOT NULL,
    missed BIGINT NOT NULL,
    PRIMARY KEY (extension, hour)
);

INSERT INTO call_figures
SELECT CAST(FLOOR(calls.started_at / 3600) AS BIGINT), calls.direction, calls.outcome,
       COALESCE(calls.did, ''), COALESCE(calls.user_id, 0),
       CASE WHEN cc.task_id IS NULL THEN -1 ELSE COALESCE(t.owner_id, 0) END,
       COUNT(*), SUM(CASE WHEN calls.answered THEN 1 ELSE 0 END),
       COALESCE(SUM(calls.talk_seconds), 0)
FROM calls
LEFT JOIN callback_calls cc ON cc.call_id = calls.id
LEFT JOIN callback_tasks t ON t.id = cc.task_id
GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO rang_figures
SELECT CAST(FLOOR(started_at / 3600) AS BIGINT), extension, COUNT(*)
FROM call_rang WHERE missed GROUP BY 1, 2;
