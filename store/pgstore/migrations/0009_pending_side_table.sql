-- HOT transitions and completions. After 0008 a job's claim of a record was a HOT update,
-- but its transition and the completion of its effects were not: both change pending, which
-- the predicates of subscriptions_due and subscriptions_pending named, so each wrote an
-- entry into every index of the table.
--
-- After this migration no index of subscriptions names pending. The ids of the records that
-- carry pending effects are listed in subscription_effects instead, written by the same
-- statement as the pending effects: UpdateSubscriptions (and InsertSubscription) add the id,
-- CompleteEffects removes it. The claim of the records with pending effects (few: the ones a
-- crashed run left, and those of runs in flight) finds them there by primary key; the claim of
-- the others reads subscriptions_due and skips the few with pending effects on the row.
-- Every completion is then a HOT update where the page has room. A transition that writes
-- no indexed column (the warning) could be one too, but its new version carries the pending
-- effects (about 1 KB for a warning), which a page seldom has room for next to the versions
-- of its other records, so most transitions still move to another page.
--
-- The table lists at least every record with pending effects (a listed id whose record has
-- none, or is gone, is skipped by the claim).

-- No write of pending may fall between the copy below and the end of this migration's
-- transaction: the lock holds them off until it commits.
LOCK TABLE {schema}.subscriptions IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE {schema}.subscription_effects (
	id text PRIMARY KEY
);

INSERT INTO {schema}.subscription_effects (id)
SELECT id FROM {schema}.subscriptions WHERE pending IS NOT NULL;

DROP INDEX {schema}.subscriptions_pending;
DROP INDEX {schema}.subscriptions_due;
CREATE INDEX subscriptions_due ON {schema}.subscriptions (status, current_period_end, id)
	WHERE NOT flag_del;
