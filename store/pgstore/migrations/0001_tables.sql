-- renewkit's tables. {schema} is the configured schema (default renewkit), quoted.
-- Money is bigint minor units plus a char(3) ISO 4217 code; times are timestamptz at
-- millisecond precision; soft delete is flag_del.

CREATE TABLE {schema}.plans (
	id             text PRIMARY KEY,
	name           text NOT NULL DEFAULT '',
	billing_cycle  text NOT NULL DEFAULT '',
	price_amount   bigint NOT NULL DEFAULT 0,
	price_currency char(3) NOT NULL DEFAULT '',
	active         boolean NOT NULL DEFAULT false,
	created_at     timestamptz NOT NULL,
	updated_at     timestamptz NOT NULL,
	flag_del       boolean NOT NULL DEFAULT false
);

CREATE TABLE {schema}.users (
	id                  text PRIMARY KEY,
	email               text NOT NULL DEFAULT '',
	name                text NOT NULL DEFAULT '',
	locale              text NOT NULL DEFAULT '',
	timezone            text NOT NULL DEFAULT '',
	plan_id             text NOT NULL DEFAULT '',
	subscription_id     text NOT NULL DEFAULT '',
	subscription_status text NOT NULL DEFAULT '',
	access_until        timestamptz,
	created_at          timestamptz NOT NULL,
	updated_at          timestamptz NOT NULL,
	flag_del            boolean NOT NULL DEFAULT false
);

CREATE TABLE {schema}.subscriptions (
	id                      text PRIMARY KEY,
	user_id                 text NOT NULL DEFAULT '',
	plan_id                 text NOT NULL DEFAULT '',
	status                  text NOT NULL,
	billing_cycle           text NOT NULL DEFAULT '',
	current_period_start    timestamptz NOT NULL,
	current_period_end      timestamptz NOT NULL,
	gateway                 text NOT NULL DEFAULT '',
	gateway_subscription_id text NOT NULL DEFAULT '',
	cancel_at_period_end    boolean NOT NULL DEFAULT false,
	expiration_warning_sent boolean NOT NULL DEFAULT false,
	expiration_warning_days integer NOT NULL DEFAULT 0,
	gateway_updated_at      timestamptz,
	applied_payments        text[] NOT NULL DEFAULT '{}',
	cancelled_at            timestamptz,
	created_at              timestamptz NOT NULL,
	updated_at              timestamptz NOT NULL,
	flag_del                boolean NOT NULL DEFAULT false,
	-- The effects a job's transition left to do (billing.Effects), written by the same
	-- UPDATE as the transition; NULL when none.
	pending                 jsonb,
	version                 bigint NOT NULL DEFAULT 0,
	-- A job run's lease on the record.
	claim_token             text,
	claim_until             timestamptz
);

-- One live subscription per gateway subscription id.
CREATE UNIQUE INDEX subscriptions_gateway_unique ON {schema}.subscriptions (gateway, gateway_subscription_id)
	WHERE NOT flag_del AND gateway_subscription_id <> '';

CREATE TABLE {schema}.payments (
	id                      text PRIMARY KEY,
	user_id                 text NOT NULL DEFAULT '',
	plan_id                 text NOT NULL DEFAULT '',
	subscription_id         text NOT NULL DEFAULT '',
	amount                  bigint NOT NULL DEFAULT 0,
	currency                char(3) NOT NULL DEFAULT '',
	status                  text NOT NULL,
	gateway                 text NOT NULL DEFAULT '',
	gateway_payment_id      text NOT NULL DEFAULT '',
	gateway_subscription_id text NOT NULL DEFAULT '',
	reason                  text NOT NULL DEFAULT '',
	processed_at            timestamptz,
	created_at              timestamptz NOT NULL,
	updated_at              timestamptz NOT NULL,
	flag_del                boolean NOT NULL DEFAULT false,
	version                 bigint NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX payments_gateway_unique ON {schema}.payments (gateway, gateway_payment_id)
	WHERE gateway_payment_id <> '';

CREATE TABLE {schema}.sessions (
	id         text PRIMARY KEY,
	user_id    text NOT NULL DEFAULT '',
	expires_at timestamptz NOT NULL,
	created_at timestamptz NOT NULL,
	flag_del   boolean NOT NULL DEFAULT false,
	deleted_at timestamptz
);

CREATE TABLE {schema}.audit_logs (
	seq         bigserial PRIMARY KEY,
	id          text NOT NULL UNIQUE,
	action      text NOT NULL DEFAULT '',
	entity_type text NOT NULL DEFAULT '',
	entity_id   text NOT NULL DEFAULT '',
	user_id     text NOT NULL DEFAULT '',
	actor       text NOT NULL DEFAULT '',
	details     jsonb,
	created_at  timestamptz NOT NULL
);

CREATE TABLE {schema}.notifications (
	key             text PRIMARY KEY,
	kind            text NOT NULL DEFAULT '',
	subscription_id text NOT NULL DEFAULT '',
	user_id         text NOT NULL DEFAULT '',
	status          text NOT NULL,
	error           text NOT NULL DEFAULT '',
	token           text,
	lease_until     timestamptz,
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz
);

CREATE TABLE {schema}.job_runs (
	id            text PRIMARY KEY,
	job_id        text NOT NULL,
	trigger       text NOT NULL DEFAULT '',
	status        text NOT NULL DEFAULT '',
	started_at    timestamptz NOT NULL,
	finished_at   timestamptz,
	duration_ms   bigint NOT NULL DEFAULT 0,
	result        jsonb,
	error         text NOT NULL DEFAULT '',
	replica       text NOT NULL DEFAULT '',
	scheduled_for timestamptz
);

CREATE TABLE {schema}.job_states (
	job_id                 text PRIMARY KEY,
	paused                 boolean NOT NULL DEFAULT false,
	paused_at              timestamptz,
	consecutive_failures   integer NOT NULL DEFAULT 0,
	last_scheduled_success timestamptz,
	alerts                 text[] NOT NULL DEFAULT '{}',
	updated_at             timestamptz,
	version                bigint NOT NULL
);

-- Lease locks. A row outlives its releases so token, the fencing counter, keeps growing.
CREATE TABLE {schema}.locks (
	key        text PRIMARY KEY,
	owner      text NOT NULL DEFAULT '',
	token      bigint NOT NULL,
	expires_at timestamptz
);

CREATE TABLE {schema}.webhook_events (
	gateway     text NOT NULL,
	event_id    text NOT NULL,
	type        text NOT NULL DEFAULT '',
	state       text NOT NULL,
	attempts    integer NOT NULL DEFAULT 0,
	error       text NOT NULL DEFAULT '',
	received_at timestamptz NOT NULL,
	updated_at  timestamptz NOT NULL,
	lease_until timestamptz,
	PRIMARY KEY (gateway, event_id)
);
