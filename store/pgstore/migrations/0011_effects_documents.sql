-- Small transitions. After 0009 no index of subscriptions named pending, yet a job's
-- transition (the warning) was seldom a HOT update: its new row version carried the pending
-- effects, about 1 KB for a warning, which a page seldom had room for next to the versions of
-- its other records, so the version moved to another page and every index of the table got an
-- entry for it.
--
-- After this migration the effects document lives in subscription_effects, one row per record
-- with pending effects (id, the token that recorded them, the document), written by the same
-- statement as the transition. The record itself keeps only pending_token, the token of its
-- pending effects (NULL when none): what the claim, the conditional transitions and
-- CompleteEffects test. Those tests read the row, which a statement that waited on the row's
-- lock re-checks on its newest version, so they stay exact under concurrent writers. A reader
-- takes the document whose token is the record's pending_token (a row of subscription_effects
-- with another token is left over and ignored), and the claim of records with pending effects
-- joins the two in its UPDATE, so it never returns a record without the document it carries.

-- No write of pending may fall between the copy below and the end of this migration's
-- transaction: the lock holds them off until it commits.
LOCK TABLE {schema}.subscriptions IN SHARE ROW EXCLUSIVE MODE;

ALTER TABLE {schema}.subscription_effects ADD COLUMN token text, ADD COLUMN effects jsonb;
ALTER TABLE {schema}.subscriptions ADD COLUMN pending_token text;

-- The pending effects held when this migration runs move to the side table (the listed ids
-- of 0009 were at least every record with pending effects; those listed with none go). A
-- document without a token keeps the empty one, which no completion matches, as before.
INSERT INTO {schema}.subscription_effects (id, token, effects)
SELECT id, coalesce(pending->>'token', ''), pending FROM {schema}.subscriptions WHERE pending IS NOT NULL
ON CONFLICT (id) DO UPDATE SET token = excluded.token, effects = excluded.effects;
DELETE FROM {schema}.subscription_effects WHERE effects IS NULL;
UPDATE {schema}.subscriptions SET pending_token = coalesce(pending->>'token', '') WHERE pending IS NOT NULL;

ALTER TABLE {schema}.subscription_effects ALTER COLUMN token SET NOT NULL, ALTER COLUMN effects SET NOT NULL;
ALTER TABLE {schema}.subscriptions DROP COLUMN pending;
