-- Notes are editable by their author and managers (issue 15); the previous text goes to
-- the audit log, the row keeps who changed it last and when.
ALTER TABLE notes ADD COLUMN updated_at {{real}};
ALTER TABLE notes ADD COLUMN updated_by {{bigint}} REFERENCES users(id) ON DELETE SET NULL;
