-- Callbacks as a workflow (issue 15): a rep claims a task, logs attempts (each one a row,
-- so "attempts" is counted apart from "missed calls"), snoozes it until a time, closes it
-- with a reason; ``overdue_at`` records when the overdue signal went out (once per task).
-- ``kind`` tells a missed-call task from a follow-up a rep set in a call's wrap-up.
ALTER TABLE callback_tasks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE callback_tasks ADD COLUMN snoozed_until {{real}};
ALTER TABLE callback_tasks ADD COLUMN close_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE callback_tasks ADD COLUMN claimed_at {{real}};
ALTER TABLE callback_tasks ADD COLUMN overdue_at {{real}};
ALTER TABLE callback_tasks ADD COLUMN kind TEXT NOT NULL DEFAULT 'missed'
    CHECK (kind IN ('missed', 'follow_up'));

CREATE TABLE callback_attempts (
    id {{id_pk}},
    task_id {{bigint}} NOT NULL REFERENCES callback_tasks(id) ON DELETE CASCADE,
    user_id {{bigint}} REFERENCES users(id) ON DELETE SET NULL,
    at {{real}} NOT NULL,
    result TEXT NOT NULL CHECK (result IN ('no_answer', 'left_message', 'reached', 'wrong_number')),
    comment TEXT NOT NULL DEFAULT ''
);
CREATE INDEX callback_attempts_task ON callback_attempts(task_id, at);
-- The overdue sweep: open tasks past due that were not signalled yet.
CREATE INDEX callback_tasks_overdue ON callback_tasks(due_at) WHERE status = 'open' AND overdue_at IS NULL;
