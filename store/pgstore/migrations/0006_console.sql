-- The operations console (billing.Console and billing.SnapshotStore): the data a
-- notification rendered, one snapshot of the subscription figures per day, and the indexes
-- the console's lists page by. Lists run newest first by (created_at, id) with ids compared
-- byte by byte as Go compares strings, hence COLLATE "C" on the id columns.

-- What a notification rendered (billing.NotificationData as JSON), written by the first
-- reservation; NULL for records written before it was kept.
ALTER TABLE {schema}.notifications ADD COLUMN data jsonb;

CREATE TABLE {schema}.daily_snapshots (
	day       date PRIMARY KEY,
	by_status jsonb NOT NULL DEFAULT '{}',
	mrr       jsonb NOT NULL DEFAULT '{}',
	taken_at  timestamptz NOT NULL
);

-- Subscriptions: every live record newest first; a search by gateway subscription id
-- without the gateway; users by email prefix, any case (LIKE on a "C" collation column
-- uses the index for a constant prefix).
CREATE INDEX subscriptions_created ON {schema}.subscriptions (created_at DESC, (id COLLATE "C") DESC)
	WHERE NOT flag_del;
CREATE INDEX subscriptions_gateway_id ON {schema}.subscriptions (gateway_subscription_id)
	WHERE NOT flag_del AND gateway_subscription_id <> '';
CREATE INDEX users_email_lower ON {schema}.users ((lower(email) COLLATE "C"))
	WHERE NOT flag_del;

-- Payments newest first: all, by status, by subscription.
CREATE INDEX payments_created ON {schema}.payments (created_at DESC, (id COLLATE "C") DESC)
	WHERE NOT flag_del;
CREATE INDEX payments_status_created ON {schema}.payments (status, created_at DESC, (id COLLATE "C") DESC)
	WHERE NOT flag_del;
CREATE INDEX payments_subscription_created ON {schema}.payments (subscription_id, created_at DESC, (id COLLATE "C") DESC)
	WHERE NOT flag_del;

-- Notifications newest first: all, by kind, by status, by subscription. The audit entries
-- of an entity are read newest first by audit_logs_entity (0002), scanned backwards.
CREATE INDEX notifications_list ON {schema}.notifications (created_at DESC, (key COLLATE "C") DESC);
CREATE INDEX notifications_kind ON {schema}.notifications (kind, created_at DESC, (key COLLATE "C") DESC);
CREATE INDEX notifications_status ON {schema}.notifications (status, created_at DESC, (key COLLATE "C") DESC);
CREATE INDEX notifications_subscription ON {schema}.notifications (subscription_id, created_at DESC, (key COLLATE "C") DESC);
