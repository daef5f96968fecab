package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/renewkit/renewkit/billing"
)

func (s *Store) AcquireLock(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (billing.Lease, error) {
	return write(ctx, s, func() (billing.Lease, error) {
		if key == "" || owner == "" || ttl <= 0 {
			return billing.Lease{}, fmt.Errorf("memstore: lock needs a key, an owner and a positive ttl: %w", billing.ErrInvalidInput)
		}
		if l, ok := s.locks[key]; ok && l.ExpiresAt.After(now) {
			return billing.Lease{}, fmt.Errorf("memstore: lock %q: %w", key, billing.ErrLockHeld)
		}
		st := s.lockState[key]
		st.token++
		st.acquired = t0(now)
		s.lockState[key] = st
		l := billing.Lease{Key: key, Owner: owner, Token: st.token, ExpiresAt: t0(now.Add(ttl))}
		s.locks[key] = l
		return l, nil
	})
}

// lockState is a key's fencing counter (the last token handed out) and when it was last
// acquired; it outlives releases until Prune finds the key idle.
type lockState struct {
	token    int64
	acquired time.Time
}

func (s *Store) RenewLock(ctx context.Context, l billing.Lease, now time.Time, ttl time.Duration) (billing.Lease, error) {
	return write(ctx, s, func() (billing.Lease, error) {
		cur, ok := s.locks[l.Key]
		if !ok || cur.Token != l.Token || cur.Owner != l.Owner || !cur.ExpiresAt.After(now) {
			return billing.Lease{}, fmt.Errorf("memstore: lock %q: %w", l.Key, billing.ErrLockLost)
		}
		cur.ExpiresAt = t0(now.Add(ttl))
		s.locks[l.Key] = cur
		return cur, nil
	})
}

func (s *Store) ReleaseLock(ctx context.Context, l billing.Lease) error {
	return s.update(ctx, func() error {
		cur, ok := s.locks[l.Key]
		if !ok || cur.Token != l.Token || cur.Owner != l.Owner {
			return fmt.Errorf("memstore: lock %q: %w", l.Key, billing.ErrLockLost)
		}
		delete(s.locks, l.Key)
		return nil
	})
}

// CurrentLease returns the live lease of key at now, if any, without taking it
// (billing.LockInspector).
func (s *Store) CurrentLease(ctx context.Context, key string, now time.Time) (billing.Lease, bool, error) {
	if err := ctx.Err(); err != nil {
		return billing.Lease{}, false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.locks[key]
	if !ok || !l.ExpiresAt.After(now) {
		return billing.Lease{}, false, nil
	}
	return l, true, nil
}
