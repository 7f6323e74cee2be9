-- Who each callback task's calls rang, one row per (task, extension).  A task nobody owns
-- is seen by the users of these extensions, and every change of a task goes to them
-- (``CallbackTask.rung_user_ids``).  They were read by joining the task's calls to
-- ``call_rang``: a number that keeps calling (an auto-dialler, a caller retrying all day)
-- made each of its next misses and the answer that closes them read every call before,
-- 1 ms each on PostgreSQL at a few hundred calls and growing.  Now a few rows per task.
-- Kept with ``callback_calls`` and ``call_rang`` in the same transactions
-- (crm/store/sql_callbacks.py ``link_callback_call``, sql_calls.py ``_write_rang``);
-- calls are never deleted, so it holds exactly what the join gives (a test compares).
CREATE TABLE callback_rang (
    task_id {{bigint}} NOT NULL REFERENCES callback_tasks(id) ON DELETE CASCADE,
    extension TEXT NOT NULL,
    PRIMARY KEY (task_id, extension)
) {{without_rowid}};

INSERT INTO callback_rang (task_id, extension)
SELECT DISTINCT rc.task_id, cr.extension FROM callback_calls rc
JOIN call_rang cr ON cr.call_id = rc.call_id;
