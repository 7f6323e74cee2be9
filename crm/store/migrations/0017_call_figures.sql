-- Figures kept up to date by every write that changes them (crm/store/sql_figures.py), so
-- the missed-calls audit and the reports add up a month of daily rows instead of reading
-- a month of calls.  Days and hours are those of one time zone, ``figures_zone`` (UTC
-- here; ``run.py rebuild-figures`` recounts them in the install's display zone); a page
-- whose period is not whole days of that zone at one offset reads the calls instead.
--
-- ``call_figures``: per day and per everything a page filters or groups by: direction,
-- outcome, line ('' = none), rep (0 = none) and the owner of the call's callback task
-- (-1 = no task, 0 = a task nobody owns), which with the rep is what a manager's
-- visibility rule (crm.access) reads.  ``hour_figures``: calls per hour of the day (the
-- busiest hours), with the visibility columns only.  ``rang_figures``: missed inbound
-- calls that rang each extension (``call_rang``'s missed rows), per day.
CREATE TABLE figures_zone (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    zone TEXT NOT NULL
);
INSERT INTO figures_zone (id, zone) VALUES (1, 'UTC');

CREATE TABLE call_figures (
    day {{bigint}} NOT NULL,
    direction TEXT NOT NULL,
    outcome TEXT NOT NULL,
    did TEXT NOT NULL,
    user_id {{bigint}} NOT NULL,
    task_owner {{bigint}} NOT NULL,
    calls {{bigint}} NOT NULL,
    answered {{bigint}} NOT NULL,
    talk_seconds {{real}} NOT NULL,
    PRIMARY KEY (day, direction, outcome, did, user_id, task_owner)
);

CREATE TABLE hour_figures (
    day {{bigint}} NOT NULL,
    hour {{bigint}} NOT NULL,
    user_id {{bigint}} NOT NULL,
    task_owner {{bigint}} NOT NULL,
    calls {{bigint}} NOT NULL,
    PRIMARY KEY (day, hour, user_id, task_owner)
);

CREATE TABLE rang_figures (
    day {{bigint}} NOT NULL,
    extension TEXT NOT NULL,
    missed {{bigint}} NOT NULL,
    PRIMARY KEY (extension, day)
);

INSERT INTO call_figures
SELECT {{int_div(calls.started_at, 86400)}}, calls.direction, calls.outcome,
       COALESCE(calls.did, ''), COALESCE(calls.user_id, 0),
       CASE WHEN cc.task_id IS NULL THEN -1 ELSE COALESCE(t.owner_id, 0) END,
       COUNT(*), SUM(CASE WHEN calls.answered THEN 1 ELSE 0 END),
       COALESCE(SUM(calls.talk_seconds), 0)
FROM calls
LEFT JOIN callback_calls cc ON cc.call_id = calls.id
LEFT JOIN callback_tasks t ON t.id = cc.task_id
GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO hour_figures
SELECT {{int_div(calls.started_at, 86400)}},
       {{int_div(calls.started_at, 3600)}} % 24,
       COALESCE(calls.user_id, 0),
       CASE WHEN cc.task_id IS NULL THEN -1 ELSE COALESCE(t.owner_id, 0) END,
       COUNT(*)
FROM calls
LEFT JOIN callback_calls cc ON cc.call_id = calls.id
LEFT JOIN callback_tasks t ON t.id = cc.task_id
GROUP BY 1, 2, 3, 4;

INSERT INTO rang_figures
SELECT {{int_div(started_at, 86400)}}, extension, COUNT(*)
FROM call_rang WHERE missed GROUP BY 1, 2;
