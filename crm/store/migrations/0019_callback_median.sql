-- The audit's median time to callback counts the period's tasks per minute of time to
-- callback, then sorts only the minute that holds the middle (crm/store/sql_reports.py,
-- ``_task_figures``): this index finds that minute's tasks without reading the period's.
CREATE INDEX callback_figures_ttc
    ON callback_figures(time_to_callback, day, last_day, user_id, task_owner);

-- The calls of the callback tasks the audit checks call by call: those spread over days
-- or reps, and those nobody owns (a scope sees their calls by who they rang).  A narrow
-- copy, kept with the task's ``callback_figures`` row (``_count_callbacks``), so the
-- audit and the reports read a few thousand short rows next to each other instead of
-- looking each call up among millions.
CREATE TABLE callback_figure_calls (
    task_id {{bigint}} NOT NULL REFERENCES callback_figures(task_id) ON DELETE CASCADE,
    call_id {{bigint}} NOT NULL,
    started_at {{real}} NOT NULL,
    direction TEXT NOT NULL,
    outcome TEXT NOT NULL,
    did TEXT,
    user_id {{bigint}},
    PRIMARY KEY (task_id, call_id)
) {{without_rowid}};

INSERT INTO callback_figure_calls
SELECT cc.task_id, calls.id, calls.started_at, calls.direction, calls.outcome, calls.did,
       calls.user_id
FROM callback_figures f
JOIN callback_calls cc ON cc.task_id = f.task_id
JOIN calls ON calls.id = cc.call_id
WHERE f.task_owner = 0 OR f.last_day > f.day OR f.user_id < 0;

-- planned from its statistics from the first audit on, not from an empty table's guess
{{postgres planner_statistics}}
ANALYZE callback_figure_calls;
ANALYZE callback_figures;
{{end}}
