package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// ReserveNotifications reserves the keys under one lock; see billing.NotificationStore.
func (s *Store) ReserveNotifications(ctx context.Context, recs []billing.NotificationRecord, token string, now, leaseUntil time.Time) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if token == "" {
		return nil, invalid("notification reservation needs a token")
	}
	for i := range recs {
		if recs[i].Key == "" {
			return nil, invalid("notification %d of %d has no key", i, len(recs))
		}
	}
	now, leaseUntil = t0(now), t0(leaseUntil)
	reserved := make([]bool, len(recs))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range recs {
		in := &recs[i]
		cur, ok := s.notifications[in.Key]
		switch {
		case !ok:
			cur = billing.NotificationRecord{
				Key: in.Key, Kind: in.Kind, SubscriptionID: in.SubscriptionID, UserID: in.UserID,
				Status: billing.NotificationSending, CreatedAt: now, UpdatedAt: now,
			}
			if in.Data != nil {
				d := *in.Data
				cur.Data = &d
			}
			s.consoleNote(cur)
		case cur.Status != billing.NotificationSending:
			continue // sent or failed: done for good
		case cur.Token != token && cur.LeaseUntil.After(now):
			continue // another run's live reservation
		}
		// New, ours already, or a lapsed reservation taken over.
		cur.Token, cur.LeaseUntil = token, leaseUntil
		s.notifications[in.Key] = cur
		reserved[i] = true
	}
	return reserved, nil
}

// FinishNotifications settles the reservations under one lock; see
// billing.NotificationStore.
func (s *Store) FinishNotifications(ctx context.Context, recs []billing.NotificationRecord, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := billing.CheckNotificationOutcomes(recs); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range recs {
		in := &recs[i]
		cur, ok := s.notifications[in.Key]
		if !ok || cur.Status != billing.NotificationSending || cur.Token != token || token == "" {
			continue // no longer ours
		}
		if in.Status == "" { // released: reservable again at once, as if never reserved
			delete(s.notifications, in.Key)
			continue
		}
		cur.Status, cur.Error, cur.UpdatedAt = in.Status, in.Error, t0(in.UpdatedAt)
		cur.Token, cur.LeaseUntil = "", time.Time{} // they hold a reservation; there is none now
		s.notifications[in.Key] = cur
	}
	return nil
}

func (s *Store) GetNotification(ctx context.Context, key string) (billing.NotificationRecord, error) {
	if err := ctx.Err(); err != nil {
		return billing.NotificationRecord{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.notifications[key]
	if !ok {
		return billing.NotificationRecord{}, notFound("notification", key)
	}
	return copyNote(r), nil
}
