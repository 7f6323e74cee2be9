-- A manager's figures (crm/store/sql_reports.py) read the rows of their team's reps and
-- of the callback tasks their team owns: ``f.user_id IN (team) OR f.task_owner IN (team)``.
-- With an index on each side, both engines read the two sets of index ranges (SQLite's
-- multi-index OR, PostgreSQL's BitmapOr) instead of the whole period's figures of every
-- team.  Indexes only: nothing to recount, ``run.py rebuild-figures`` is unchanged.
CREATE INDEX call_figures_user ON call_figures(user_id, day);
CREATE INDEX call_figures_owner ON call_figures(task_owner, day);
CREATE INDEX hour_figures_user ON hour_figures(user_id, day);
CREATE INDEX hour_figures_owner ON hour_figures(task_owner, day);
-- the audit's tasks of the team's reps (their owner side is ``callback_figures_owner``)
CREATE INDEX callback_figures_user ON callback_figures(user_id, day);

-- The audit's "called back" per rep: the tasks each of the team's reps closed in the
-- period, one index range per rep (was every task closed in the period, of every team).
-- It serves what the narrower index it replaces served (tasks closed by one user).
DROP INDEX callback_tasks_closed_by;
CREATE INDEX callback_tasks_closed_by
    ON callback_tasks(closed_by_user_id, closed_at, time_to_callback);

