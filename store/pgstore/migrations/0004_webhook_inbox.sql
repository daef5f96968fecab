-- The webhook inbox (billing.WebhookEventStore): events are stored with their payload and
-- processed later by a worker that claims them with a lease, retries them on a backoff,
-- parks the ones naming an object not stored yet and applies the events of one gateway
-- object in the order they occurred.
--
-- Every new column is nullable or has a constant default, so adding them rewrites no row.
-- Rows stored before this migration (inline deliveries) keep their state, attempts and
-- times; they have no payload and next_attempt_at stays NULL, so the worker never claims
-- them (it could not decode them): a pending one (received, failed) is still taken by an
-- inline redelivery of the gateway, which carries the event.

ALTER TABLE {schema}.webhook_events
	-- The gateway object the event is about; '' orders it with nothing.
	ADD COLUMN object_key      text NOT NULL DEFAULT '',
	-- The gateway's own time of the event; NULL when it sends none.
	ADD COLUMN occurred_at     timestamptz,
	ADD COLUMN payload         bytea,
	-- A pending event is not claimed by the worker before it; NULL for final events.
	ADD COLUMN next_attempt_at timestamptz,
	ADD COLUMN parked_at       timestamptz,
	ADD COLUMN finished_at     timestamptz,
	-- The claim: lease_until (from 0001) and the claimer's token.
	ADD COLUMN lease_token     text,
	-- The newest attempts, oldest first: [{"at", "state", "error", "duration_ns"}].
	ADD COLUMN history         jsonb,
	-- Set by a wake-up while the event is claimed: if the attempt ends parked, the event
	-- is due at once (the wake-up is not lost to the race).
	ADD COLUMN woken           boolean NOT NULL DEFAULT false;

-- The worker's claim: due pending events. The first index serves a claim when few of the
-- pending events are due (many parked ones waiting), the second walks the pending events
-- in claim order when most are due (a backlog after an outage).
CREATE INDEX webhook_events_due ON {schema}.webhook_events (next_attempt_at)
	WHERE state IN ('received', 'failed', 'parked');
CREATE INDEX webhook_events_pending_order ON {schema}.webhook_events
	(occurred_at NULLS FIRST, received_at, gateway, event_id)
	WHERE state IN ('received', 'failed', 'parked');
-- The per-object order check (an earlier received or failed event of the object) and the
-- wake-up of an object's parked and claimed events.
CREATE INDEX webhook_events_object ON {schema}.webhook_events (gateway, object_key, occurred_at)
	WHERE state IN ('received', 'failed', 'parked');
-- Renewing a claimer's leases.
CREATE INDEX webhook_events_lease ON {schema}.webhook_events (lease_token)
	WHERE lease_token IS NOT NULL;

-- The admin listing, in (received_at, gateway ":" event id) order compared bytewise, the
-- order of billing.WebhookEventCursor; also the retention scan by received_at, which makes
-- 0003's webhook_events_received redundant. By state: the listing of one state and the
-- inbox counts per state.
CREATE INDEX webhook_events_list ON {schema}.webhook_events
	(received_at, ((gateway || ':' || event_id) COLLATE "C"));
CREATE INDEX webhook_events_state_list ON {schema}.webhook_events
	(state, received_at, ((gateway || ':' || event_id) COLLATE "C"));
DROP INDEX {schema}.webhook_events_received;
