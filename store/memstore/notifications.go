package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// newNotifications holds the notification records by key. They come in through
// ReserveNotifications, never whole.
func newNotifications() table[billing.NotificationRecord] {
	return table[billing.NotificationRecord]{
		kind: "notification", rows: map[string]billing.NotificationRecord{}, clone: copyNote,
		id: func(n *billing.NotificationRecord) *string { return &n.Key },
	}
}

// ReserveNotifications reserves the keys under one lock; see billing.NotificationStore.
func (s *Store) ReserveNotifications(ctx context.Context, recs []billing.NotificationRecord, token string, now, leaseUntil time.Time) ([]bool, error) {
	return write(ctx, s, func() ([]bool, error) {
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
		for i := range recs {
			in := &recs[i]
			cur, ok := s.notifications.rows[in.Key]
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
			s.notifications.rows[in.Key] = cur
			reserved[i] = true
		}
		return reserved, nil
	})
}

// FinishNotifications settles the reservations under one lock; see
// billing.NotificationStore.
func (s *Store) FinishNotifications(ctx context.Context, recs []billing.NotificationRecord, token string) error {
	return s.update(ctx, func() error {
		if err := billing.CheckNotificationOutcomes(recs); err != nil {
			return fmt.Errorf("memstore: %w", err)
		}
		for i := range recs {
			in := &recs[i]
			cur, ok := s.notifications.rows[in.Key]
			if !ok || cur.Status != billing.NotificationSending || cur.Token != token || token == "" {
				continue // no longer ours
			}
			if in.Status == "" { // released: reservable again at once, as if never reserved
				delete(s.notifications.rows, in.Key)
				continue
			}
			cur.Status, cur.Error, cur.UpdatedAt = in.Status, in.Error, t0(in.UpdatedAt)
			cur.Token, cur.LeaseUntil = "", time.Time{} // they hold a reservation; there is none now
			s.notifications.rows[in.Key] = cur
		}
		return nil
	})
}

func (s *Store) GetNotification(ctx context.Context, key string) (billing.NotificationRecord, error) {
	return read(ctx, s, func() (billing.NotificationRecord, error) {
		return s.notifications.get(key)
	})
}
