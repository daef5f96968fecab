-- Refunds and chargebacks (billing.Payment's reversal fields), and the indexes the pruning
-- step (billing.Pruner) reads by.

ALTER TABLE {schema}.payments
	ADD COLUMN refunded_amount bigint NOT NULL DEFAULT 0,
	ADD COLUMN reversal_reason text NOT NULL DEFAULT '',
	ADD COLUMN reversed_at     timestamptz;

-- When a lock key was last acquired: a key idle for a day is pruned with its fencing state.
ALTER TABLE {schema}.locks ADD COLUMN acquired_at timestamptz;

CREATE INDEX notifications_created ON {schema}.notifications (created_at);
CREATE INDEX webhook_events_received ON {schema}.webhook_events (received_at);
CREATE INDEX locks_acquired ON {schema}.locks (acquired_at);
CREATE INDEX subscriptions_claim_until ON {schema}.subscriptions (claim_until)
	WHERE claim_until IS NOT NULL AND pending IS NULL;
