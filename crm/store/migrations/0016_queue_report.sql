-- The queue report (crm/store/sql_queues.py) reads the queue calls of a period: a partial
-- index on their start holding every column the report groups and sums, so a month of
-- queue figures is one range over this index alone, never the table nor the other calls.
CREATE INDEX calls_queue_report ON calls(started_at, queue, answered, ring_seconds,
                                         talk_seconds, user_id, answered_by)
    WHERE queue IS NOT NULL;
