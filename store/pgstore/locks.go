package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/renewkit/renewkit/billing"
)

// Lease locks are rows of the locks table. A row stays after a release (expires_at NULL),
// so its token, the fencing counter, grows with every acquisition of the key.

func scanLease(r pgx.Rows) (billing.Lease, error) {
	var l billing.Lease
	err := r.Scan(&l.Key, &l.Owner, &l.Token, &l.ExpiresAt)
	l.ExpiresAt = t0(l.ExpiresAt)
	return l, err
}

const leaseCols = `key, owner, token, coalesce(expires_at, ` + zeroTS + `)`

// AcquireLock takes key for owner when it is free, atomically; see billing.Locker.
func (s *Store) AcquireLock(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (billing.Lease, error) {
	// Implementation:
	// AcquireLock takes key for owner in one INSERT … ON CONFLICT DO UPDATE … WHERE <free>.
	if err := ctx.Err(); err != nil {
		return billing.Lease{}, err
	}
	if key == "" || owner == "" || ttl <= 0 {
		return billing.Lease{}, invalid("lock needs a key, an owner and a positive ttl")
	}
	ls, err := collect(ctx, s, scanLease, s.t(`INSERT INTO {schema}.locks AS l (key, owner, token, expires_at, acquired_at) VALUES ($1, $2, 1, $4, $3)
		ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, token = l.token + 1, expires_at = excluded.expires_at,
			acquired_at = excluded.acquired_at
		WHERE l.expires_at IS NULL OR l.expires_at <= $3
		RETURNING `+leaseCols), key, owner, rt(now), rt(now.Add(ttl)))
	if err != nil {
		return billing.Lease{}, s.wrap(err, "acquiring lock %q", key)
	}
	if len(ls) == 0 {
		return billing.Lease{}, lockErr(key, billing.ErrLockHeld)
	}
	return ls[0], nil
}

func lockErr(key string, err error) error {
	return &lockError{key: key, err: err}
}

type lockError struct {
	key string
	err error
}

func (e *lockError) Error() string { return "pgstore: lock " + quote(e.key) + ": " + e.err.Error() }
func (e *lockError) Unwrap() error { return e.err }

func quote(s string) string { return `"` + s + `"` }

// RenewLock extends a live lease l still holds.
func (s *Store) RenewLock(ctx context.Context, l billing.Lease, now time.Time, ttl time.Duration) (billing.Lease, error) {
	if err := ctx.Err(); err != nil {
		return billing.Lease{}, err
	}
	ls, err := collect(ctx, s, scanLease, s.t(`UPDATE {schema}.locks SET expires_at = $5
		WHERE key = $1 AND owner = $2 AND token = $3 AND expires_at > $4 RETURNING `+leaseCols),
		l.Key, l.Owner, l.Token, rt(now), rt(now.Add(ttl)))
	if err != nil {
		return billing.Lease{}, s.wrap(err, "renewing lock %q", l.Key)
	}
	if len(ls) == 0 {
		return billing.Lease{}, lockErr(l.Key, billing.ErrLockLost)
	}
	return ls[0], nil
}

// ReleaseLock frees the lease l still holds.
func (s *Store) ReleaseLock(ctx context.Context, l billing.Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tag, err := s.exec(ctx, s.t(`UPDATE {schema}.locks SET expires_at = NULL, owner = ''
		WHERE key = $1 AND owner = $2 AND token = $3 AND expires_at IS NOT NULL`), l.Key, l.Owner, l.Token)
	if err != nil {
		return s.wrap(err, "releasing lock %q", l.Key)
	}
	if tag.RowsAffected() == 0 {
		return lockErr(l.Key, billing.ErrLockLost)
	}
	return nil
}

// CurrentLease returns the live lease of key at now, if any, without taking it
// (billing.LockInspector).
func (s *Store) CurrentLease(ctx context.Context, key string, now time.Time) (billing.Lease, bool, error) {
	ls, err := collect(ctx, s, scanLease, s.t(`SELECT `+leaseCols+` FROM {schema}.locks WHERE key = $1 AND expires_at > $2`), key, rt(now))
	if err != nil {
		return billing.Lease{}, false, s.wrap(err, "reading lock %q", key)
	}
	if len(ls) == 0 {
		return billing.Lease{}, false, nil
	}
	return ls[0], true, nil
}
