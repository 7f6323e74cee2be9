-- The audit's callback figures (tasks, returned, within the SLA, median time to callback)
-- add up the period's tasks per bucket of time to callback from this table: one row per
-- (owner, day, rep, bucket) of the tasks ``callback_figures`` counts from their row
-- (all their calls missed inbound calls of one day and one rep), so a team's month is a
-- few thousand rows, not one per task (crm/store/sql_reports.py, ``_task_figures``).
-- Kept by ``_count_callbacks`` with those rows, in the same transaction; rebuilt by
-- ``run.py rebuild-figures``.  ``bucket``: -1 not returned, else the index of the range of
-- ``CALLBACK_BOUNDS`` (crm/store/sql_figures.py) the time to callback falls in; the CASE
-- below is that list, and a test holds them equal.  The median and the SLA count then look
-- at one bucket's tasks (``callback_figures_ttc``).
-- Alike in shape to 0017's figure tables on purpose: the counted dimensions as the key, a
-- count beside them.
CREATE TABLE callback_buckets (
    task_owner {{bigint}} NOT NULL,
    day {{bigint}} NOT NULL,
    user_id {{bigint}} NOT NULL,
    bucket {{bigint}} NOT NULL,
    tasks {{bigint}} NOT NULL,
    PRIMARY KEY (task_owner, day, user_id, bucket)
) {{without_rowid}};
-- the team's reps' tasks (the owner's side is the key), and every task of the period
CREATE INDEX callback_buckets_user ON callback_buckets(user_id, day);
CREATE INDEX callback_buckets_day ON callback_buckets(day, bucket, tasks);

INSERT INTO callback_buckets
SELECT task_owner, day, user_id, b, COUNT(*)
FROM (
    SELECT task_owner, day, user_id,
           CASE WHEN time_to_callback IS NULL THEN -1
                WHEN time_to_callback < 0 THEN 0
                WHEN time_to_callback < 60 THEN 1
                WHEN time_to_callback < 120 THEN 2
                WHEN time_to_callback < 180 THEN 3
                WHEN time_to_callback < 240 THEN 4
                WHEN time_to_callback < 300 THEN 5
                WHEN time_to_callback < 420 THEN 6
                WHEN time_to_callback < 600 THEN 7
                WHEN time_to_callback < 900 THEN 8
                WHEN time_to_callback < 1200 THEN 9
                WHEN time_to_callback < 1500 THEN 10
                WHEN time_to_callback < 1800 THEN 11
                WHEN time_to_callback < 2100 THEN 12
                WHEN time_to_callback < 2400 THEN 13
                WHEN time_to_callback < 2700 THEN 14
                WHEN time_to_callback < 3000 THEN 15
                WHEN time_to_callback < 3600 THEN 16
                WHEN time_to_callback < 4200 THEN 17
                WHEN time_to_callback < 4800 THEN 18
                WHEN time_to_callback < 5400 THEN 19
                WHEN time_to_callback < 6000 THEN 20
                WHEN time_to_callback < 7200 THEN 21
                WHEN time_to_callback < 9000 THEN 22
                WHEN time_to_callback < 10800 THEN 23
                WHEN time_to_callback < 14400 THEN 24
                WHEN time_to_callback < 21600 THEN 25
                WHEN time_to_callback < 28800 THEN 26
                WHEN time_to_callback < 43200 THEN 27
                WHEN time_to_callback < 86400 THEN 28
                WHEN time_to_callback < 172800 THEN 29
                WHEN time_to_callback < 345600 THEN 30
                WHEN time_to_callback < 604800 THEN 31
                ELSE 32 END AS b
    FROM callback_figures
    WHERE last_day = day AND user_id >= 0
) tasks
GROUP BY task_owner, day, user_id, b;

-- The tasks nobody owns, one row per extension their calls rang (``rang`` split): a scope
-- sees such a task when it rang one of its extensions, so its audit reads one range per
-- extension instead of testing the period's every unowned task's ``rang`` (the lines'
-- unowned calls, the buckets, the spread tasks).  With the task's days, rep and bucket.
CREATE TABLE callback_figure_rang (
    extension TEXT NOT NULL,
    last_day {{bigint}} NOT NULL,
    task_id {{bigint}} NOT NULL REFERENCES callback_figures(task_id) ON DELETE CASCADE,
    day {{bigint}} NOT NULL,
    user_id {{bigint}} NOT NULL,
    bucket {{bigint}} NOT NULL,
    PRIMARY KEY (task_id, extension)
) {{without_rowid}};
CREATE INDEX callback_figure_rang_extension
    ON callback_figure_rang(extension, last_day, day, user_id, bucket);

INSERT INTO callback_figure_rang
SELECT DISTINCT cr.extension, f.last_day, f.task_id, f.day, f.user_id,
           CASE WHEN f.time_to_callback IS NULL THEN -1
                WHEN f.time_to_callback < 0 THEN 0
                WHEN f.time_to_callback < 60 THEN 1
                WHEN f.time_to_callback < 120 THEN 2
                WHEN f.time_to_callback < 180 THEN 3
                WHEN f.time_to_callback < 240 THEN 4
                WHEN f.time_to_callback < 300 THEN 5
                WHEN f.time_to_callback < 420 THEN 6
                WHEN f.time_to_callback < 600 THEN 7
                WHEN f.time_to_callback < 900 THEN 8
                WHEN f.time_to_callback < 1200 THEN 9
                WHEN f.time_to_callback < 1500 THEN 10
                WHEN f.time_to_callback < 1800 THEN 11
                WHEN f.time_to_callback < 2100 THEN 12
                WHEN f.time_to_callback < 2400 THEN 13
                WHEN f.time_to_callback < 2700 THEN 14
                WHEN f.time_to_callback < 3000 THEN 15
                WHEN f.time_to_callback < 3600 THEN 16
                WHEN f.time_to_callback < 4200 THEN 17
                WHEN f.time_to_callback < 4800 THEN 18
                WHEN f.time_to_callback < 5400 THEN 19
                WHEN f.time_to_callback < 6000 THEN 20
                WHEN f.time_to_callback < 7200 THEN 21
                WHEN f.time_to_callback < 9000 THEN 22
                WHEN f.time_to_callback < 10800 THEN 23
                WHEN f.time_to_callback < 14400 THEN 24
                WHEN f.time_to_callback < 21600 THEN 25
                WHEN f.time_to_callback < 28800 THEN 26
                WHEN f.time_to_callback < 43200 THEN 27
                WHEN f.time_to_callback < 86400 THEN 28
                WHEN f.time_to_callback < 172800 THEN 29
                WHEN f.time_to_callback < 345600 THEN 30
                WHEN f.time_to_callback < 604800 THEN 31
                ELSE 32 END
FROM callback_figures f
JOIN callback_calls cc ON cc.task_id = f.task_id
JOIN call_rang cr ON cr.call_id = cc.call_id
WHERE f.task_owner = 0;

-- The audit's spread tasks (calls over several days or reps) of a team: those its team
-- owns or nobody owns, one range per owner, and those with a call of its reps (both read
-- by ``_spread_tasks``), instead of every spread task of the period tested for the team.
CREATE INDEX callback_figures_spread_owner
    ON callback_figures(task_owner, last_day, day) WHERE last_day > day OR user_id < 0;
CREATE INDEX callback_figure_calls_user
    ON callback_figure_calls(user_id, started_at, direction, outcome);

-- planned from their statistics from the first audit on, not from an empty table's guess
-- (callback_figure_calls and callback_figures too: a store filled after 0019 had none, and
-- the unowned tasks' calls were then joined row by row, 1-2 s a request at 5,000,000 calls)
{{postgres planner_statistics}}
ANALYZE callback_buckets;
ANALYZE callback_figure_rang;
ANALYZE callback_figure_calls;
ANALYZE callback_figures;
{{end}}
