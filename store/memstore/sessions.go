package memstore

import (
	"context"
	"sort"
	"time"

	"github.com/renewkit/renewkit/billing"
)

func (s *Store) InsertSession(ctx context.Context, se *billing.Session) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if se.ID == "" {
		se.ID = billing.NewID()
	}
	if _, ok := s.sessions[se.ID]; ok {
		return conflict("session", se.ID)
	}
	se.ExpiresAt, se.CreatedAt, se.DeletedAt = t0(se.ExpiresAt), t0(se.CreatedAt), t0(se.DeletedAt)
	s.sessions[se.ID] = *se
	return nil
}

func (s *Store) GetSession(ctx context.Context, id string) (billing.Session, error) {
	if err := ctx.Err(); err != nil {
		return billing.Session{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	se, ok := s.sessions[id]
	if !ok {
		return billing.Session{}, notFound("session", id)
	}
	return se, nil
}

func (s *Store) DeleteExpiredSessions(ctx context.Context, expiredBefore, now time.Time, limit int) ([]billing.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, se := range s.sessions {
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
		se := s.sessions[id]
		se.Deleted, se.DeletedAt = true, t0(now)
		s.sessions[id] = se
		out = append(out, se)
	}
	return out, nil
}
