package memstore

import (
	"context"

	"github.com/renewkit/renewkit/billing"
)

func newUsers() table[billing.User] {
	return table[billing.User]{
		kind: "user", rows: map[string]billing.User{}, norm: normUser,
		id:     func(u *billing.User) *string { return &u.ID },
		hidden: func(u *billing.User) bool { return u.Deleted },
	}
}

func normUser(u billing.User) billing.User {
	u.AccessUntil, u.CreatedAt, u.UpdatedAt = t0(u.AccessUntil), t0(u.CreatedAt), t0(u.UpdatedAt)
	return u
}

func (s *Store) InsertUser(ctx context.Context, u *billing.User) error {
	return s.update(ctx, func() error {
		if err := s.users.insert(u); err != nil {
			return err
		}
		s.consoleUser(*u)
		return nil
	})
}

func (s *Store) GetUser(ctx context.Context, id string) (billing.User, error) {
	return read(ctx, s, func() (billing.User, error) {
		return s.users.get(id)
	})
}

// ListUsers returns each non-deleted user among ids once, in the order of ids.
func (s *Store) ListUsers(ctx context.Context, ids []string) ([]billing.User, error) {
	return read(ctx, s, func() ([]billing.User, error) {
		out := make([]billing.User, 0, len(ids))
		var seen map[string]struct{} // only when ids are many; a short list is checked in place
		if len(ids) > 16 {
			seen = make(map[string]struct{}, len(ids))
		}
		for i, id := range ids {
			u, ok := s.users.rows[id]
			if !ok || u.Deleted {
				continue
			}
			if seen != nil {
				if _, dup := seen[id]; dup {
					continue
				}
				seen[id] = struct{}{}
			} else if containsBefore(ids, i) {
				continue
			}
			out = append(out, u)
		}
		return out, nil
	})
}

// containsBefore reports whether ids[i] occurs in ids[:i].
func containsBefore(ids []string, i int) bool {
	for _, id := range ids[:i] {
		if id == ids[i] {
			return true
		}
	}
	return false
}

// UpdateUsersAccess applies each change under one lock; see billing.UserStore.
func (s *Store) UpdateUsersAccess(ctx context.Context, changes []billing.UserAccessChange) ([]error, error) {
	return applyEach(ctx, s, changes, s.updateUserAccess)
}

// updateUserAccess applies one change. Caller holds s.mu.
func (s *Store) updateUserAccess(c *billing.UserAccessChange) error {
	id := c.Read.ID
	if id == "" || (c.Changed.ID != "" && c.Changed.ID != id) {
		return invalid("user access change for %q names user %q", id, c.Changed.ID)
	}
	cur, ok := s.users.rows[id]
	if !ok || cur.Deleted {
		return notFound("user", id)
	}
	if cur.PlanID != c.Read.PlanID || cur.SubscriptionID != c.Read.SubscriptionID || cur.Status != c.Read.Status {
		return conflict("user", id)
	}
	r, w := &c.Read, &c.Changed
	if r.PlanID != w.PlanID {
		cur.PlanID = w.PlanID
	}
	if r.SubscriptionID != w.SubscriptionID {
		cur.SubscriptionID = w.SubscriptionID
	}
	if r.Status != w.Status {
		cur.Status = w.Status
	}
	if !sameTime(r.AccessUntil, w.AccessUntil) {
		cur.AccessUntil = t0(w.AccessUntil)
	}
	if !sameTime(r.UpdatedAt, w.UpdatedAt) {
		cur.UpdatedAt = t0(w.UpdatedAt)
	}
	s.users.rows[id] = cur
	return nil
}
