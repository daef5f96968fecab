-- Pending effects of the session cleanup (billing.Session.Pending: the audit entry of the
-- batch a soft delete belongs to), written by the same UPDATE as the soft delete and cleared
-- once the entry is written; NULL when nothing is pending.
ALTER TABLE {schema}.sessions ADD COLUMN pending jsonb;

-- Sessions with pending effects (few: the batches a crashed or failing run left), by token
-- and id as Go compares strings: the cleanup finds those batches here, whole, and clears one
-- by its token.
CREATE INDEX sessions_pending ON {schema}.sessions (((pending->>'token') COLLATE "C"), (id COLLATE "C"))
	WHERE pending IS NOT NULL;
