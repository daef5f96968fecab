-- HOT updates for the jobs' writes. A job writes each record three times: its claim
-- (claim_token, claim_until), its transition (the changed fields and pending) and the
-- completion of its effects (pending and the claim cleared). PostgreSQL keeps an update on
-- the record's page without touching any index (a HOT update) only when no column an index
-- names, in its key, expression or predicate, changes, and the page has room. Before this
-- migration claim_token, claim_until and pending were all indexed, so every one of those
-- writes added an entry to each of the table's indexes.
--
-- After it no index of subscriptions names the claim columns: a run's claims are listed in
-- subscription_claims, one row per claim statement (the token, the ids it claimed, the
-- lease), so ExtendClaims, ReleaseClaims and the pruning of stale claims find their records
-- by primary key instead of by a claim index, and a claim is a HOT update.
--
-- pending stays indexed (subscriptions_due and subscriptions_pending name it in their
-- predicates), so the transition and the completion still write index entries: without
-- an index the claim of the few records with pending effects reads every due record
-- (explain_test.go finds a sequential scan for the expire job's).

CREATE TABLE {schema}.subscription_claims (
	token   text NOT NULL,
	seq     bigint GENERATED ALWAYS AS IDENTITY,
	ids     text[] NOT NULL,
	-- The lease of the batch's records (the claim's, moved by ExtendClaims); NULL when the
	-- claim had none.
	until   timestamptz,
	PRIMARY KEY (token, seq)
);
CREATE INDEX subscription_claims_until ON {schema}.subscription_claims (until);

-- The claims held when this migration runs, one batch per token.
INSERT INTO {schema}.subscription_claims (token, ids, until)
SELECT claim_token, array_agg(id), max(claim_until)
FROM {schema}.subscriptions WHERE claim_token IS NOT NULL GROUP BY claim_token;

DROP INDEX {schema}.subscriptions_claim;
DROP INDEX {schema}.subscriptions_claim_until;

-- Room on each page for the new versions of its records. A job's batch writes most records
-- of a page in one statement, and a version that statement replaced is not reclaimable
-- before it commits, so a page needs room for a new version of most of its records: half
-- of it (in TestJobWritesAreHOT, where a batch's records fill whole pages, 75 made 10% of
-- the job's writes HOT and 50 made 28%: most claims). Applies to pages written from now on; existing pages fill as records move
-- (VACUUM FULL or CLUSTER repack them at once).
ALTER TABLE {schema}.subscriptions SET (fillfactor = 50);
