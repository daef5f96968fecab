package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/renewkit/renewkit/billing"
)

func (s *Store) BeginWebhookEvent(ctx context.Context, ev billing.WebhookEvent, now, leaseUntil time.Time) (billing.WebhookEvent, bool, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, false, err
	}
	if ev.Gateway == "" || ev.EventID == "" {
		return billing.WebhookEvent{}, false, fmt.Errorf("memstore: webhook event needs a gateway and an id: %w", billing.ErrInvalidInput)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := gwKey(ev.Gateway, ev.EventID)
	cur, ok := s.events[k]
	if !ok {
		ev.State, ev.Attempts, ev.Error = billing.EventReceived, 1, ""
		ev.ReceivedAt, ev.UpdatedAt, ev.LeaseUntil = t0(now), t0(now), t0(leaseUntil)
		s.events[k] = ev
		return ev, true, nil
	}
	switch {
	case cur.State == billing.EventProcessed || cur.State == billing.EventIgnored:
		return cur, false, nil
	case cur.State == billing.EventReceived && cur.LeaseUntil.After(now):
		return cur, false, nil
	}
	cur.State, cur.Attempts, cur.UpdatedAt, cur.LeaseUntil = billing.EventReceived, cur.Attempts+1, t0(now), t0(leaseUntil)
	s.events[k] = cur
	return cur, true, nil
}

func (s *Store) FinishWebhookEvent(ctx context.Context, gateway, eventID string, state billing.WebhookEventState, errText string, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := gwKey(gateway, eventID)
	cur, ok := s.events[k]
	if !ok {
		return notFound("webhook event", eventID)
	}
	cur.State, cur.Error, cur.UpdatedAt, cur.LeaseUntil = state, errText, t0(now), time.Time{}
	s.events[k] = cur
	return nil
}

func (s *Store) GetWebhookEvent(ctx context.Context, gateway, eventID string) (billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ev, ok := s.events[gwKey(gateway, eventID)]
	if !ok {
		return billing.WebhookEvent{}, notFound("webhook event", eventID)
	}
	return ev, nil
}
