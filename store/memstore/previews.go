package memstore

import (
	"context"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// CountExpiredSessions implements billing.CleanupCounter: it counts what
// DeleteExpiredSessions deletes.
func (s *Store) CountExpiredSessions(ctx context.Context, t time.Time) (int, error) {
	return read(ctx, s, func() (int, error) {
		return s.sessions.count(expiredSession(t)), nil
	})
}

// CountStalePayments implements billing.CleanupCounter: it counts what CancelStalePayments
// cancels.
func (s *Store) CountStalePayments(ctx context.Context, t time.Time) (int, error) {
	return read(ctx, s, func() (int, error) {
		return s.payments.count(stalePayment(t)), nil
	})
}

// CountAudit implements billing.AuditCounter.
func (s *Store) CountAudit(ctx context.Context, f billing.AuditFilter) (int, error) {
	return read(ctx, s, func() (int, error) {
		n := 0
		for i, list := 0, s.auditSince(&f); i < len(list); i++ {
			if auditMatch(&f, list[i]) {
				n++
			}
		}
		return n, nil
	})
}
