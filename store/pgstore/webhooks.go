package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/renewkit/renewkit/billing"
)

var eventCols = `gateway, event_id, type, state, attempts, error, received_at, updated_at, ` + z("lease_until")

func scanEvent(r pgx.Rows) (billing.WebhookEvent, error) {
	var e billing.WebhookEvent
	var state string
	var attempts int32
	err := r.Scan(&e.Gateway, &e.EventID, &e.Type, &state, &attempts, &e.Error, &e.ReceivedAt, &e.UpdatedAt, &e.LeaseUntil)
	e.State, e.Attempts = billing.WebhookEventState(state), int(attempts)
	e.ReceivedAt, e.UpdatedAt, e.LeaseUntil = t0(e.ReceivedAt), t0(e.UpdatedAt), t0(e.LeaseUntil)
	return e, err
}

// BeginWebhookEvent records a delivery in one INSERT … ON CONFLICT DO UPDATE … WHERE
// <takeable>; see billing.WebhookEventStore.
func (s *Store) BeginWebhookEvent(ctx context.Context, ev billing.WebhookEvent, now, leaseUntil time.Time) (billing.WebhookEvent, bool, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, false, err
	}
	if ev.Gateway == "" || ev.EventID == "" {
		return billing.WebhookEvent{}, false, invalid("webhook event needs a gateway and an id")
	}
	got, err := collect(ctx, s, scanEvent, s.t(`INSERT INTO {schema}.webhook_events AS e
			(gateway, event_id, type, state, attempts, error, received_at, updated_at, lease_until)
		VALUES ($1, $2, $3, 'received', 1, '', $4, $4, $5)
		ON CONFLICT (gateway, event_id) DO UPDATE SET state = 'received', attempts = e.attempts + 1,
			updated_at = excluded.updated_at, lease_until = excluded.lease_until
		WHERE e.state NOT IN ('processed', 'ignored') AND NOT (e.state = 'received' AND e.lease_until > $4)
		RETURNING `+eventCols), ev.Gateway, ev.EventID, ev.Type, rt(now), nt(leaseUntil))
	if err != nil {
		return billing.WebhookEvent{}, false, s.wrap(err, "recording webhook event %q", ev.EventID)
	}
	if len(got) == 1 {
		return got[0], true, nil
	}
	cur, err := s.GetWebhookEvent(ctx, ev.Gateway, ev.EventID)
	return cur, false, err
}

func (s *Store) FinishWebhookEvent(ctx context.Context, gateway, eventID string, state billing.WebhookEventState, errText string, now time.Time) error {
	tag, err := s.exec(ctx, s.t(`UPDATE {schema}.webhook_events SET state = $3, error = $4, updated_at = $5, lease_until = NULL
		WHERE gateway = $1 AND event_id = $2`), gateway, eventID, string(state), errText, rt(now))
	if err != nil {
		return s.wrap(err, "finishing webhook event %q", eventID)
	}
	if tag.RowsAffected() == 0 {
		return notFound("webhook event", eventID)
	}
	return nil
}

func (s *Store) GetWebhookEvent(ctx context.Context, gateway, eventID string) (billing.WebhookEvent, error) {
	return one(ctx, s, scanEvent, "webhook event", eventID,
		s.t(`SELECT `+eventCols+` FROM {schema}.webhook_events WHERE gateway = $1 AND event_id = $2`), gateway, eventID)
}
