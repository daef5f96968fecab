package pgstore

import (
	"context"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// Optional capabilities pgstore implements (declared in billing/store.go).
var (
	_ billing.CleanupCounter = (*Store)(nil)
	_ billing.AuditCounter   = (*Store)(nil)
	_ billing.Pruner         = (*Store)(nil)
	_ billing.LockInspector  = (*Store)(nil)
	_ billing.Pinger         = (*Store)(nil)
	_ billing.Console        = (*Store)(nil)
	_ billing.SnapshotStore  = (*Store)(nil)
)

func (s *Store) count(ctx context.Context, what, q string, args ...any) (int, error) {
	var n int
	err := s.retry(ctx, func() error { return s.pool.QueryRow(ctx, s.t(q), args...).Scan(&n) })
	return n, s.wrap(err, "counting %s", what)
}

// CountExpiredSessions implements billing.CleanupCounter.
func (s *Store) CountExpiredSessions(ctx context.Context, t time.Time) (int, error) {
	return s.count(ctx, "expired sessions", `SELECT count(*) FROM {schema}.sessions WHERE NOT flag_del AND expires_at <= $1`, rt(t))
}

// CountStalePayments implements billing.CleanupCounter.
func (s *Store) CountStalePayments(ctx context.Context, t time.Time) (int, error) {
	return s.count(ctx, "stale payments", `SELECT count(*) FROM {schema}.payments WHERE status = 'pending' AND NOT flag_del AND created_at <= $1`, rt(t))
}
