package memstore

import (
	"context"
	"sort"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// newSessions holds the sessions; a soft-deleted one is still found by id.
func newSessions() table[billing.Session] {
	return table[billing.Session]{
		kind: "session", rows: map[string]billing.Session{}, norm: normSession,
		id: func(se *billing.Session) *string { return &se.ID },
	}
}

func normSession(se billing.Session) billing.Session {
	se.ExpiresAt, se.CreatedAt, se.DeletedAt = t0(se.ExpiresAt), t0(se.CreatedAt), t0(se.DeletedAt)
	return se
}

func (s *Store) InsertSession(ctx context.Context, se *billing.Session) error {
	return s.update(ctx, func() error {
		return s.sessions.insert(se)
	})
}

func (s *Store) GetSession(ctx context.Context, id string) (billing.Session, error) {
	return read(ctx, s, func() (billing.Session, error) {
		return s.sessions.get(id)
	})
}

func (s *Store) DeleteExpiredSessions(ctx context.Context, expiredBefore, now time.Time, limit int) ([]billing.Session, error) {
	return write(ctx, s, func() ([]billing.Session, error) {
		var ids []string
		for id, se := range s.sessions.rows {
			if !se.Deleted && !se.ExpiresAt.After(expiredBefore) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		if limit > 0 && len(ids) > limit {
			ids = ids[:limit]
		}
		out := make([]billing.Session, 0, len(ids))
		for _, id := range ids {
			se := s.sessions.rows[id]
			se.Deleted, se.DeletedAt = true, t0(now)
			s.sessions.rows[id] = se
			out = append(out, se)
		}
		return out, nil
	})
}
