-- Leads, search and handover (issue 15).

-- When a lead became a customer: the lead statistics' converted share and time to
-- conversion per period.  Older conversions have none (they count as converted, with no
-- time).  The statistics walk leads by creation time.
ALTER TABLE contacts ADD COLUMN lead_converted_at {{real}};
CREATE INDEX contacts_lead_created ON contacts(lead_created_at) WHERE lead_status IS NOT NULL;

-- Partial-number search on calls ("any part of a number"): every distinct remote number
-- once, so a search scans the numbers (about one per contact) instead of every call, then
-- reads the calls of the numbers found through calls_remote.
CREATE TABLE call_numbers (e164 TEXT PRIMARY KEY) {{without_rowid}};
INSERT INTO call_numbers (e164)
    SELECT DISTINCT remote_e164 FROM calls WHERE remote_e164 IS NOT NULL;

-- A contact's timeline shows its lead status changes (who, when) from the audit log.
CREATE INDEX audit_log_target ON audit_log(target, id);
