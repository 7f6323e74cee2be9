-- Indexes for the filters the store now runs itself (leads list, missed-calls audit,
-- live calls on page load) instead of the web layer filtering batches in Python.

-- Leads: one range per status, in id order (the list's keyset); customers (no lead
-- status) stay out of the index.
CREATE INDEX contacts_lead ON contacts(lead_status, id) WHERE lead_status IS NOT NULL;

-- The missed-calls audit walks only unanswered inbound calls, newest first; by line too.
CREATE INDEX calls_missed ON calls(started_at, id)
    WHERE direction = 'inbound' AND outcome IN ('missed', 'abandoned', 'busy', 'no_answer');
CREATE INDEX calls_missed_did ON calls(did, started_at, id)
    WHERE direction = 'inbound' AND outcome IN ('missed', 'abandoned', 'busy', 'no_answer');

-- Calls in progress newest first, for pages and hubs that start mid-call.
CREATE INDEX live_calls_updated ON live_calls(updated_at);
