-- Who each call rang, one row per (call, extension), so "missed calls that rang rep X"
-- is an index range per extension instead of unnesting a month of calls per rep.
-- Written by upsert_call in the call's own transaction (rows replaced on update).
-- ``missed`` and ``started_at`` are copies of the call's (inbound and a missed outcome;
-- its start) so the reports read only this table's partial index.
CREATE TABLE call_rang (
    call_id {{bigint}} NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    extension TEXT NOT NULL,
    started_at {{real}} NOT NULL,
    missed {{bool}} NOT NULL,
    PRIMARY KEY (call_id, extension)
) {{without_rowid}};

{{sqlite json_array_rows}}
INSERT OR IGNORE INTO call_rang (call_id, extension, started_at, missed)
SELECT calls.id, CAST(r.value AS TEXT), calls.started_at,
       calls.direction = 'inbound'
       AND calls.outcome IN ('missed', 'abandoned', 'busy', 'no_answer')
FROM calls CROSS JOIN json_each(calls.rang) AS r
WHERE r.value IS NOT NULL
ORDER BY calls.id;
{{postgres json_array_rows}}
INSERT INTO call_rang (call_id, extension, started_at, missed)
SELECT calls.id, r.value, calls.started_at,
       calls.direction = 'inbound'
       AND calls.outcome IN ('missed', 'abandoned', 'busy', 'no_answer')
FROM calls CROSS JOIN LATERAL jsonb_array_elements_text(calls.rang) AS r(value)
WHERE r.value IS NOT NULL
ON CONFLICT DO NOTHING;
{{end}}

CREATE INDEX call_rang_missed ON call_rang(extension, started_at, call_id) WHERE missed;

-- Covering indexes for the report aggregates: inbound calls of a period by outcome,
-- line, rep (missed-calls audit); every call of a period by outcome, rep, talk time
-- (reports).  Each query reads its index alone, never the table.
CREATE INDEX calls_inbound_report ON calls(direction, started_at, outcome, did, answered, user_id);
CREATE INDEX calls_report ON calls(started_at, outcome, user_id, answered, talk_seconds);

-- Callbacks closed per rep over a period (missed-calls audit), and a missed call's task
-- without reading the link table's rows.
CREATE INDEX callback_tasks_closed ON callback_tasks(closed_at, closed_by_user_id, time_to_callback);
CREATE INDEX callback_calls_call_task ON callback_calls(call_id, task_id);
