-- Which rung reps declined the call (their phone rejected it: SIP 403/603, cause 21),
-- so a manager sees who turned a call away.  A JSON list of extensions, each also in
-- ``rang``; older calls simply have none.
ALTER TABLE calls ADD COLUMN declined {{json}} NOT NULL DEFAULT '[]';
