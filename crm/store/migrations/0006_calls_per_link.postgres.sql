-- Calls are keyed by (link, linkedid), not linkedid alone: two PBXes (two offices) may
-- report the same Linkedid, and each call must keep its own row.  A call written with
-- no link (an ingest outside the link manager) counts as link 0.  The same for the calls
-- kept in progress (``live_calls``).

ALTER TABLE calls DROP CONSTRAINT calls_linkedid_key;
CREATE UNIQUE INDEX calls_link_linkedid ON calls(COALESCE(pbx_link_id, 0), linkedid);
CREATE INDEX calls_linkedid ON calls(linkedid);

ALTER TABLE live_calls DROP CONSTRAINT live_calls_pkey;
CREATE UNIQUE INDEX live_calls_key ON live_calls(COALESCE(pbx_link_id, 0), linkedid);
