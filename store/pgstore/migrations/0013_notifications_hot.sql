-- HOT settlements. A notification is written twice: its reservation inserts it (status
-- 'sending', the reserving token and lease) and the outcome of its send settles it (status,
-- error, updated_at; token and lease cleared). notifications_status (status, created_at,
-- key), added by 0006 for the console's list by status, named the status column, so no
-- settlement was a HOT update: each wrote a new row version on another page and an entry
-- into every index of the table (five, about 7 WAL records a settlement), and the pages
-- inserts filled had no room for one anyway.
--
-- After this migration no index of notifications names a column the settlement writes, and
-- each page keeps half of its space free, room for the settled version of every record the
-- reservation put there, so a settlement stays on its page and writes no index entry. The
-- console's list by status reads notifications_list (newest first) and filters on status;
-- the table holds the retention period's notifications (Prune), and the explain test keeps
-- that plan an index scan.
DROP INDEX {schema}.notifications_status;
ALTER TABLE {schema}.notifications SET (fillfactor = 50);
