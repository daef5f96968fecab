package memstore

import (
	"context"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// CountExpiredSessions implements billing.CleanupCounter.
func (s *Store) CountExpiredSessions(ctx context.Context, t time.Time) (int, error) {
	return read(ctx, s, func() (int, error) {
		n := 0
		for _, se := range s.sessions.rows {
			if !se.Deleted && !se.ExpiresAt.After(t) {
				n++
			}
		}
		return n, nil
	})
}

// CountStalePayments implements billing.CleanupCounter.
func (s *Store) CountStalePayments(ctx context.Context, t time.Time) (int, error) {
	return read(ctx, s, func() (int, error) {
		n := 0
		for _, p := range s.payments.rows {
			if !p.Deleted && p.Status == billing.PaymentPending && !p.CreatedAt.After(t) {
				n++
			}
		}
		return n, nil
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
