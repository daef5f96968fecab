package memstore

import (
	"context"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// Optional capabilities memstore implements (declared in billing/store.go).
var (
	_ billing.CleanupCounter = (*Store)(nil)
	_ billing.AuditCounter   = (*Store)(nil)
	_ billing.Console        = (*Store)(nil)
	_ billing.SnapshotStore  = (*Store)(nil)
	_ billing.Pruner         = (*Store)(nil)
	_ billing.LockInspector  = (*Store)(nil)
	_ billing.Pinger         = (*Store)(nil)
)

// CountExpiredSessions implements billing.CleanupCounter.
func (s *Store) CountExpiredSessions(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, se := range s.sessions {
		if !se.Deleted && !se.ExpiresAt.After(t) {
			n++
		}
	}
	return n, nil
}

// CountStalePayments implements billing.CleanupCounter.
func (s *Store) CountStalePayments(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, p := range s.payments {
		if !p.Deleted && p.Status == billing.PaymentStatusPending && !p.CreatedAt.After(t) {
			n++
		}
	}
	return n, nil
}
