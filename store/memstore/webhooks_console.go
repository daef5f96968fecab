package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/renewkit/renewkit/billing"
)

// ListObjectWebhookEvents implements billing.WebhookEventStore. memstore scans its events
// under the read lock, as ListWebhookEvents does: the cost grows with the inbox, not with
// the subscriptions.
func (s *Store) ListObjectWebhookEvents(ctx context.Context, gateway string, objectKeys []string, limit int) ([]billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if gateway == "" || limit < 1 || limit > billing.MaxPageSize || len(objectKeys) > billing.MaxPageSize {
		return nil, fmt.Errorf("memstore: listing an object's webhook events needs a gateway, a limit of 1 to %d and at most %d keys: %w",
			billing.MaxPageSize, billing.MaxPageSize, billing.ErrInvalidInput)
	}
	out := []billing.WebhookEvent{}
	if len(objectKeys) == 0 {
		return out, nil
	}
	s.mu.RLock()
	for _, ev := range s.events {
		if ev.Gateway == gateway && ev.ObjectKey != "" && slices.Contains(objectKeys, ev.ObjectKey) {
			ev = cloneEvent(ev)
			ev.Payload = nil
			out = append(out, ev)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b billing.WebhookEvent) int {
		return cmp.Or(b.ReceivedAt.Compare(a.ReceivedAt), cmp.Compare(b.EventID, a.EventID))
	})
	return out[:min(len(out), limit)], nil
}
