-- The missed-calls audit's callback figures (tasks, returned, within the SLA, median time
-- to callback) read one row per callback task instead of a month of calls
-- (crm/store/sql_figures.py, ``_count_callbacks``): the day of its calls in the figures'
-- zone, the rep they had (0 = none) and its owner (0 = nobody), as the visibility rule
-- reads them, its time to callback and, for a task nobody owns, the extensions its calls
-- rang (",201,205,": a manager sees it when it rang someone in the team).  A task whose calls span several days, have
-- different reps or are not all missed inbound calls (``user_id`` -1, or ``last_day``
-- after ``day``) is "spread": the audit checks its calls one by one.
--
-- Counted here in UTC days, so only when the figures are (``figures_zone``);
-- ``callbacks_counted`` says whether the rows match the zone, else the audit reads the
-- calls until ``run.py rebuild-figures`` recounts everything.
CREATE TABLE callback_figures (
    task_id {{bigint}} PRIMARY KEY REFERENCES callback_tasks(id) ON DELETE CASCADE,
    day {{bigint}} NOT NULL,
    last_day {{bigint}} NOT NULL,
    task_owner {{bigint}} NOT NULL,
    user_id {{bigint}} NOT NULL,
    time_to_callback {{real}},
    rang TEXT NOT NULL
);
CREATE INDEX callback_figures_day
    ON callback_figures(day, task_owner, user_id, last_day, time_to_callback);
-- the tasks nobody owns with calls in a period: a scope sees their calls by who they rang
CREATE INDEX callback_figures_owner ON callback_figures(task_owner, last_day, day);
CREATE INDEX callback_figures_spread
    ON callback_figures(last_day, day) WHERE last_day > day OR user_id < 0;

ALTER TABLE figures_zone ADD COLUMN callbacks_counted BOOLEAN NOT NULL DEFAULT FALSE;

INSERT INTO callback_figures
SELECT t.id, {{int_div(MIN(calls.started_at), 86400)}},
       {{int_div(MAX(calls.started_at), 86400)}}, COALESCE(t.owner_id, 0),
       CASE WHEN COUNT(DISTINCT COALESCE(calls.user_id, 0)) = 1
             AND MIN(CASE WHEN calls.direction = 'inbound'
                           AND calls.outcome IN ('missed', 'abandoned', 'busy', 'no_answer')
                          THEN 1 ELSE 0 END) = 1
            THEN MIN(COALESCE(calls.user_id, 0)) ELSE -1 END,
       t.time_to_callback,
       CASE WHEN t.owner_id IS NULL
            THEN COALESCE((SELECT ',' || {{comma_list(cr.extension)}} || ',' FROM callback_calls rc
                  JOIN call_rang cr ON cr.call_id = rc.call_id WHERE rc.task_id = t.id), '')
            ELSE '' END
FROM callback_tasks t
JOIN callback_calls cc ON cc.task_id = t.id
JOIN calls ON calls.id = cc.call_id
WHERE (SELECT zone FROM figures_zone WHERE id = 1) = 'UTC'
GROUP BY t.id, t.owner_id, t.time_to_callback;

UPDATE figures_zone SET callbacks_counted = (zone = 'UTC');
