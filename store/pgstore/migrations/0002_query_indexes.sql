-- Indexes for the job and console queries (store/pgstore's explain_test.go checks the
-- plans). The job queries read live records by status and period end, oldest end first.

-- Claims and lists of records without pending effects: status, then period end order.
CREATE INDEX subscriptions_due ON {schema}.subscriptions (status, current_period_end, id)
	WHERE NOT flag_del AND pending IS NULL;
-- Records with pending effects (few): their own small index.
CREATE INDEX subscriptions_pending ON {schema}.subscriptions (current_period_end, id)
	WHERE NOT flag_del AND pending IS NOT NULL;
-- Every live record by period end, for filters without a status.
CREATE INDEX subscriptions_period_end ON {schema}.subscriptions (current_period_end, id)
	WHERE NOT flag_del;
CREATE INDEX subscriptions_user ON {schema}.subscriptions (user_id, created_at DESC)
	WHERE NOT flag_del;
CREATE INDEX subscriptions_claim ON {schema}.subscriptions (claim_token)
	WHERE claim_token IS NOT NULL;

CREATE INDEX payments_stale ON {schema}.payments (created_at, id)
	WHERE status = 'pending' AND NOT flag_del;
CREATE INDEX sessions_expired ON {schema}.sessions (expires_at, id)
	WHERE NOT flag_del;

CREATE INDEX audit_logs_created ON {schema}.audit_logs (created_at, seq);
CREATE INDEX audit_logs_action ON {schema}.audit_logs (action, created_at, seq);
CREATE INDEX audit_logs_entity ON {schema}.audit_logs (entity_id, created_at, seq);

CREATE INDEX job_runs_job ON {schema}.job_runs (job_id, started_at DESC, id DESC);
CREATE INDEX job_runs_started ON {schema}.job_runs (started_at DESC, id DESC);
