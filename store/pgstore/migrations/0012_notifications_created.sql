-- One index fewer on notifications. notifications_created (created_at), added by 0003 for
-- Prune, is made redundant by notifications_list (created_at DESC, key), added by 0006 for
-- the console: a B-tree scans its leading column in either direction, so Prune's range on
-- created_at reads notifications_list as well (TestExplainJobQueries, "prune
-- notifications"). Every reservation inserted an entry into both, and so did every
-- settlement that was not a HOT update: about 65 bytes of WAL of each of those writes.
-- TestNoRedundantIndexes keeps the schema free of such pairs.
DROP INDEX {schema}.notifications_created;
