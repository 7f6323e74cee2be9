-- The queue report (crm/store/sql_queues.py) reads the queue calls of a period: a partial
-- index on their start, so a month of queue figures is one range over queue calls only,
-- never the other calls of the period.
CREATE INDEX calls_queue_started ON calls(started_at, queue) WHERE queue IS NOT NULL;
