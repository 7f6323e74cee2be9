-- The audit's median time to callback counts the period's tasks per minute of time to
-- callback, then sorts only the minute that holds the middle (crm/store/sql_reports.py,
-- ``_task_figures``): this index finds that minute's tasks without reading the period's.
CREATE INDEX callback_figures_ttc
    ON callback_figures(time_to_callback, day, last_day, user_id, task_owner);
